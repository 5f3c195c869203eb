package aritest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// served is every route the server implements, as declared in api-docs.
var served = []struct{ method, path, example string }{
	{"GET", "/asterisk/info", "/asterisk/info"},
	{"GET", "/asterisk/ping", "/asterisk/ping"},
	{"GET", "/asterisk/config/dynamic/{configClass}/{objectType}/{id}", "/asterisk/config/dynamic/res_pjsip/endpoint/x"},
	{"PUT", "/asterisk/config/dynamic/{configClass}/{objectType}/{id}", "/asterisk/config/dynamic/res_pjsip/endpoint/x"},
	{"DELETE", "/asterisk/config/dynamic/{configClass}/{objectType}/{id}", "/asterisk/config/dynamic/res_pjsip/endpoint/x"},
	{"GET", "/asterisk/variable", "/asterisk/variable?variable=X"},
	{"POST", "/asterisk/variable", "/asterisk/variable?variable=X&value=1"},
	{"GET", "/endpoints", "/endpoints"},
	{"GET", "/endpoints/{tech}", "/endpoints/PJSIP"},
	{"GET", "/endpoints/{tech}/{resource}", "/endpoints/PJSIP/x"},
	{"GET", "/applications", "/applications"},
	{"GET", "/applications/{applicationName}", "/applications/a"},
	{"POST", "/applications/{applicationName}/subscription", "/applications/a/subscription?eventSource=endpoint:PJSIP"},
	{"DELETE", "/applications/{applicationName}/subscription", "/applications/a/subscription?eventSource=endpoint:PJSIP"},
	{"GET", "/events", "/events?app=a"},
}

type apiDoc struct {
	APIs []struct {
		Path       string `json:"path"`
		Operations []struct {
			HTTPMethod string `json:"httpMethod"`
		} `json:"operations"`
	} `json:"apis"`
	Models map[string]struct {
		Properties map[string]struct {
			Type     string `json:"type"`
			Required bool   `json:"required"`
		} `json:"properties"`
	} `json:"models"`
}

func loadDocs(t *testing.T) map[string]apiDoc {
	t.Helper()
	docs := map[string]apiDoc{}
	files, _ := filepath.Glob("testdata/api-docs/*.json")
	if len(files) == 0 {
		t.Fatal("no api-docs in testdata")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d apiDoc
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		docs[filepath.Base(f)] = d
	}
	return docs
}

func TestEveryRouteIsDeclared(t *testing.T) {
	t.Parallel()
	docs := loadDocs(t)
	declared := map[string]bool{}
	for _, d := range docs {
		for _, a := range d.APIs {
			for _, op := range a.Operations {
				declared[op.HTTPMethod+" "+a.Path] = true
			}
		}
	}
	s := NewTest(t, Options{})
	for _, r := range served {
		if !declared[r.method+" "+r.path] {
			t.Errorf("%s %s is served but not declared in api-docs", r.method, r.path)
		}
		code, body := do(t, s, r.method, r.example, "")
		if strings.Contains(body, "Resource not found") || code == http.StatusMethodNotAllowed {
			t.Errorf("%s %s not routed: %d %s", r.method, r.example, code, body)
		}
	}
	if code, _ := do(t, s, "GET", "/nonexistent", ""); code != 404 {
		t.Errorf("unknown path: %d, want 404", code)
	}
}

func do(t *testing.T, s *Server, method, path, body string) (int, string) {
	t.Helper()
	return doAuth(t, s, method, path, body, true)
}

func doAuth(t *testing.T, s *Server, method, path, body string, auth bool) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth {
		req.SetBasicAuth(s.Username(), s.Password())
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }() // read to its end below
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAuth(t *testing.T) {
	t.Parallel()
	s := NewTest(t, Options{})
	if code, _ := doAuth(t, s, "GET", "/asterisk/ping", "", false); code != 401 {
		t.Errorf("no credentials: %d, want 401", code)
	}
	if code, _ := doAuth(t, s, "GET", "/asterisk/ping?api_key=pbxd:wrong", "", false); code != 401 {
		t.Errorf("wrong api_key: %d, want 401", code)
	}
	if code, _ := doAuth(t, s, "GET", "/asterisk/ping?api_key="+url.QueryEscape(s.Username()+":"+s.Password()), "", false); code != 200 {
		t.Errorf("api_key: %d, want 200", code)
	}
	code, body := do(t, s, "GET", "/asterisk/ping", "")
	if code != 200 || !strings.Contains(body, `"ping":"pong"`) {
		t.Errorf("basic auth ping: %d %s", code, body)
	}
}

func tupleMap(t *testing.T, body string) map[string]string {
	t.Helper()
	var ts []tuple
	if err := json.Unmarshal([]byte(body), &ts); err != nil {
		t.Fatalf("tuples %q: %v", body, err)
	}
	m := map[string]string{}
	for _, x := range ts {
		m[x.Attribute] = x.Value
	}
	return m
}

const cfg = "/asterisk/config/dynamic/res_pjsip/"

func TestPushConfig(t *testing.T) {
	t.Parallel()
	s := NewTest(t, Options{})

	code, body := do(t, s, "PUT", cfg+"endpoint/e1", `{"fields":[{"attribute":"allow","value":"ulaw"},{"attribute":"context","value":"pkg-world"},{"attribute":"callerid","value":"Alice <100>"}]}`)
	if code != 200 {
		t.Fatalf("create: %d %s", code, body)
	}
	m := tupleMap(t, body)
	for k, want := range map[string]string{"allow": "(ulaw)", "context": "pkg-world", "callerid": `"Alice" <100>`,
		"dtmf_mode": "rfc4733", "direct_media": "true", "timers_sess_expires": "1800", "100rel": "yes"} {
		if m[k] != want {
			t.Errorf("%s = %q, want %q", k, m[k], want)
		}
	}
	if len(m) < 100 {
		t.Errorf("answer has %d attributes, want every endpoint attribute", len(m))
	}

	// PUT merges: context kept, allow accumulates unless disallowed first.
	code, body = do(t, s, "PUT", cfg+"endpoint/e1", `{"fields":[{"attribute":"allow","value":"alaw"}]}`)
	m = tupleMap(t, body)
	if code != 200 || m["context"] != "pkg-world" || m["allow"] != "(ulaw|alaw)" {
		t.Errorf("merge: %d context=%q allow=%q", code, m["context"], m["allow"])
	}
	_, body = do(t, s, "PUT", cfg+"endpoint/e1", `{"fields":[{"attribute":"disallow","value":"all"},{"attribute":"allow","value":"g722"}]}`)
	if m = tupleMap(t, body); m["allow"] != "(g722)" {
		t.Errorf("disallow=all,allow=g722: allow=%q", m["allow"])
	}

	for _, c := range []struct {
		name, method, path, body string
		code                     int
		msg                      string
	}{
		{"existing without fields", "PUT", cfg + "endpoint/e1", `{}`, 400, "Fields must be provided to update object"},
		{"existing empty body", "PUT", cfg + "endpoint/e1", ``, 400, "Fields must be provided to update object"},
		{"unknown attribute", "PUT", cfg + "endpoint/e1", `{"fields":[{"attribute":"bogus","value":"1"}]}`, 400, "failed field value validation"},
		{"non-integer max_contacts", "PUT", cfg + "aor/a1", `{"fields":[{"attribute":"max_contacts","value":"two"}]}`, 400, "failed field value validation"},
		{"bad boolean", "PUT", cfg + "aor/a1", `{"fields":[{"attribute":"remove_existing","value":"maybe"}]}`, 400, "failed field value validation"},
		{"unknown class", "PUT", "/asterisk/config/dynamic/res_foo/endpoint/x", `{"fields":[]}`, 404, "configClass"},
		{"unknown type", "GET", cfg + "widget/x", ``, 404, "objectType"},
		{"transport not pushable", "PUT", cfg + "transport/t1", `{"fields":[{"attribute":"protocol","value":"udp"}]}`, 403, "Cannot create sorcery objects of type 'transport'"},
		{"absent object", "GET", cfg + "auth/nope", ``, 404, "Object with id 'nope' not found"},
		{"delete absent", "DELETE", cfg + "auth/nope", ``, 404, "not found"},
	} {
		code, body := do(t, s, c.method, c.path, c.body)
		if code != c.code || !strings.Contains(body, c.msg) {
			t.Errorf("%s: %d %s, want %d %q", c.name, code, body, c.code, c.msg)
		}
	}
	if _, ok := s.Object("aor", "a1"); ok {
		t.Error("a failed create left an object behind")
	}

	// Absent and no body: created with every default.
	code, body = do(t, s, "PUT", cfg+"aor/a2", "")
	if m = tupleMap(t, body); code != 200 || m["max_contacts"] != "0" || m["qualify_frequency"] != "0" || m["remove_existing"] != "false" {
		t.Errorf("empty create: %d %v", code, m)
	}
	// Asterisk 22 renders the auth type as given (userpass, not digest),
	// the password in clear.
	_, body = do(t, s, "PUT", cfg+"auth/u1", `{"fields":[{"attribute":"auth_type","value":"userpass"},{"attribute":"password","value":"s3cret"}]}`)
	if m = tupleMap(t, body); m["auth_type"] != "userpass" || m["password"] != "s3cret" {
		t.Errorf("auth: %v", m)
	}
	if code, _ := do(t, s, "DELETE", cfg+"auth/u1", ""); code != 204 {
		t.Errorf("delete: %d, want 204", code)
	}
	if code, _ := do(t, s, "GET", cfg+"auth/u1", ""); code != 404 {
		t.Errorf("get after delete: %d, want 404", code)
	}

	// Hand-made (pjsip.conf) objects are read-only.
	if err := s.Seed("endpoint", "static1", map[string]string{"context": "default"}); err != nil {
		t.Fatal(err)
	}
	if code, body := do(t, s, "PUT", cfg+"endpoint/static1", `{"fields":[{"attribute":"context","value":"x"}]}`); code != 403 || !strings.Contains(body, "Cannot update") {
		t.Errorf("update static: %d %s", code, body)
	}
	if code, _ := do(t, s, "DELETE", cfg+"endpoint/static1", ""); code != 403 {
		t.Errorf("delete static: %d, want 403", code)
	}
}

func TestConfigOnlyWizard(t *testing.T) {
	t.Parallel()
	s := NewTest(t, Options{Wizard: ConfigOnly})
	if code, body := do(t, s, "PUT", cfg+"endpoint/e", `{"fields":[{"attribute":"context","value":"x"}]}`); code != 403 || !strings.Contains(body, "Cannot create sorcery objects of type 'endpoint'") {
		t.Errorf("%d %s", code, body)
	}
}

type wsClient struct {
	t    *testing.T
	conn interface {
		io.ReadWriter
		Close() error
		SetReadDeadline(time.Time) error
	}
}

func dialEvents(t *testing.T, s *Server, query string) *wsClient {
	t.Helper()
	u := strings.Replace(s.WebsocketURL(), "ws://", "ws://", 1) + "?" + query + "&api_key=" + url.QueryEscape(s.Username()+":"+s.Password())
	conn, _, _, err := ws.Dial(context.Background(), u)
	if err != nil {
		t.Fatalf("dial events: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() }) // may be closed by the server already
	return &wsClient{t: t, conn: conn}
}

// next reads one event, or returns nil after d.
func (c *wsClient) next(d time.Duration) map[string]any {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	b, err := wsutil.ReadServerText(c.conn)
	if err != nil {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		c.t.Fatalf("event %s: %v", b, err)
	}
	return m
}

// checkModel asserts that v has every property events.json requires for
// model, recursing into nested models.
func checkModel(t *testing.T, docs map[string]apiDoc, model string, v map[string]any) {
	t.Helper()
	for _, d := range docs {
		if m, ok := d.Models[model]; ok {
			for name, p := range m.Properties {
				x, present := v[name]
				if p.Required && !present {
					t.Errorf("%s: required property %q missing in %v", model, name, v)
				}
				if sub, ok := x.(map[string]any); ok {
					checkModel(t, docs, p.Type, sub)
				}
			}
		}
	}
}

func TestEvents(t *testing.T) {
	t.Parallel()
	docs := loadDocs(t)
	s := NewTest(t, Options{})
	do(t, s, "PUT", cfg+"aor/e1", `{"fields":[{"attribute":"max_contacts","value":"1"},{"attribute":"remove_existing","value":"yes"}]}`)
	do(t, s, "PUT", cfg+"endpoint/e1", `{"fields":[{"attribute":"aors","value":"e1"}]}`)
	do(t, s, "PUT", cfg+"endpoint/e2", `{"fields":[{"attribute":"aors","value":"e1"}]}`)

	all := dialEvents(t, s, "app=all&subscribeAll=true")
	one := dialEvents(t, s, "app=one")
	waitApp(t, s, "all")
	waitApp(t, s, "one")
	if code, body := do(t, s, "POST", "/applications/one/subscription?eventSource=endpoint:PJSIP/e2", ""); code != 200 || !strings.Contains(body, `"PJSIP/e2"`) {
		t.Fatalf("subscribe: %d %s", code, body)
	}
	if code, _ := do(t, s, "POST", "/applications/one/subscription?eventSource=endpoint:PJSIP/nope", ""); code != 422 {
		t.Errorf("subscribe to absent endpoint: %d, want 422", code)
	}
	if code, _ := do(t, s, "DELETE", "/applications/one/subscription?eventSource=endpoint:PJSIP/e1", ""); code != 409 {
		t.Errorf("unsubscribe not subscribed: %d, want 409", code)
	}

	if err := s.RegisterContact("e1", "sip:100@192.0.2.1:5060"); err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, want := range []string{"PeerStatusChange", "EndpointStateChange", "ContactStatusChange"} {
		ev := all.next(2 * time.Second)
		if ev == nil {
			t.Fatalf("no %s", want)
		}
		types = append(types, ev["type"].(string))
		if ev["type"] != want {
			t.Errorf("event %v, want %s", ev["type"], want)
		}
		checkModel(t, docs, want, ev)
		checkModel(t, docs, "Event", ev)
		checkModel(t, docs, "Message", ev)
		if ev["application"] != "all" {
			t.Errorf("application = %v", ev["application"])
		}
		ep := ev["endpoint"].(map[string]any)
		if ep["technology"] != "PJSIP" || ep["resource"] != "e1" || ep["state"] != "online" {
			t.Errorf("endpoint = %v", ep)
		}
		if want == "ContactStatusChange" {
			ci := ev["contact_info"].(map[string]any)
			if ci["uri"] != "sip:100@192.0.2.1:5060" || ci["contact_status"] != "NonQualified" || ci["aor"] != "e1" {
				t.Errorf("contact_info = %v", ci)
			}
		}
		if want == "PeerStatusChange" && ev["peer"].(map[string]any)["peer_status"] != "Reachable" {
			t.Errorf("peer = %v", ev["peer"])
		}
	}
	if ev := one.next(200 * time.Millisecond); ev != nil {
		t.Errorf("app not subscribed to e1 got %v", ev["type"])
	}
	code, body := do(t, s, "GET", "/endpoints/PJSIP/e1", "")
	if code != 200 || !strings.Contains(body, `"state":"online"`) {
		t.Errorf("endpoint after register: %d %s", code, body)
	}

	// remove_existing with max_contacts 1: the old contact is Removed.
	if err := s.RegisterContact("e1", "sip:100@192.0.2.2:5060"); err != nil {
		t.Fatal(err)
	}
	ev := all.next(2 * time.Second)
	if ev == nil || ev["contact_info"].(map[string]any)["contact_status"] != "Removed" {
		t.Fatalf("replacement: %v", ev)
	}
	all.next(time.Second)

	// The subscribed app sees e2's events.
	if err := s.RegisterContact("e2", "sip:100@192.0.2.3:5060"); err != nil {
		t.Fatal(err)
	}
	if ev := one.next(2 * time.Second); ev == nil || ev["type"] != "PeerStatusChange" {
		t.Errorf("subscribed app: %v", ev)
	}
	if err := s.UnregisterContact("e2", "sip:100@192.0.2.3:5060"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		all.next(time.Second) // e2's registration as seen by subscribeAll
	}
	got := []string{}
	for range 3 {
		if ev := all.next(time.Second); ev != nil {
			got = append(got, ev["type"].(string))
		}
	}
	if strings.Join(got, ",") != "PeerStatusChange,EndpointStateChange,ContactStatusChange" {
		t.Errorf("unregister events: %v", got)
	}
	_ = types
}

func waitApp(t *testing.T, s *Server, name string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if code, _ := do(t, s, "GET", "/applications/"+name, ""); code == 200 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("application %s never registered", name)
}

func startup(t *testing.T, s *Server) string {
	t.Helper()
	_, body := do(t, s, "GET", "/asterisk/info", "")
	var info struct {
		Status struct {
			StartupTime string `json:"startup_time"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(body), &info); err != nil {
		t.Fatal(err)
	}
	if _, err := time.Parse("2006-01-02T15:04:05.000-0700", info.Status.StartupTime); err != nil {
		t.Errorf("startup_time %q: %v", info.Status.StartupTime, err)
	}
	return info.Status.StartupTime
}

func TestRestart(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		wizard Wizard
		keeps  bool
	}{{"memory", Memory, false}, {"astdb", AstDB, true}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := NewTest(t, Options{Wizard: c.wizard})
			_ = s.Seed("endpoint", "handmade", nil)
			do(t, s, "PUT", cfg+"endpoint/pushed", "")
			ev := dialEvents(t, s, "app=x&subscribeAll=true")
			before := startup(t, s)
			addr := s.URL()
			if err := s.Restart(); err != nil {
				t.Fatal(err)
			}
			if s.URL() != addr {
				t.Errorf("restart moved from %s to %s", addr, s.URL())
			}
			if after := startup(t, s); after == before {
				t.Errorf("startup_time unchanged: %s", after)
			}
			_ = ev.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := wsutil.ReadServerText(ev.conn); err == nil {
				t.Error("websocket survived the restart")
			}
			code, _ := do(t, s, "GET", cfg+"endpoint/pushed", "")
			if (code == 200) != c.keeps {
				t.Errorf("pushed object after restart: %d", code)
			}
			if code, _ := do(t, s, "GET", cfg+"endpoint/handmade", ""); code != 200 {
				t.Errorf("hand-made object after restart: %d", code)
			}
		})
	}
}

func TestFaultsAndCounters(t *testing.T) {
	t.Parallel()
	s := NewTest(t, Options{})
	s.FailNext(2, 0)
	for i, want := range []int{500, 500, 200} {
		if code, _ := do(t, s, "GET", "/asterisk/ping", ""); code != want {
			t.Errorf("request %d: %d, want %d", i, code, want)
		}
	}
	do(t, s, "PUT", cfg+"aor/x", "")
	if s.Requests("GET") != 3 || s.Requests("PUT") != 1 {
		t.Errorf("counts GET=%d PUT=%d", s.Requests("GET"), s.Requests("PUT"))
	}
	s.SetLatency(100 * time.Millisecond)
	start := time.Now()
	do(t, s, "GET", "/asterisk/ping", "")
	if time.Since(start) < 100*time.Millisecond {
		t.Error("latency not applied")
	}
	s.Stop()
	if _, err := http.Post(strings.TrimSuffix(s.URL(), "/ari")+"/ari/asterisk/ping", "", bytes.NewReader(nil)); err == nil {
		t.Error("stopped server still answers")
	}
}

// rawTuples decodes a tuple list keeping repeated and unknown attributes.
func rawTuples(t *testing.T, body string) []tuple {
	t.Helper()
	var ts []tuple
	if err := json.Unmarshal([]byte(body), &ts); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	return ts
}

func hasTuple(ts []tuple, attr, value string) bool {
	for _, x := range ts {
		if x.Attribute == attr && x.Value == value {
			return true
		}
	}
	return false
}

// set_var as the real Asterisk 22 handles it: the memory wizard renders
// each variable as an attribute of its own and can then no longer copy
// the object (every later PUT fails); astdb stores the variable under its
// own name and drops it when reading the object back.
func TestSetVarPerWizard(t *testing.T) {
	t.Parallel()
	put := `{"fields":[{"attribute":"set_var","value":"PBXD_LINE=pbxd-1"},{"attribute":"context","value":"a"},{"attribute":"allow","value":"ulaw"}]}`
	update := `{"fields":[{"attribute":"context","value":"b"}]}`

	mem := NewTest(t, Options{Wizard: Memory})
	if code, body := do(t, mem, "PUT", cfg+"endpoint/e1", put); code != 200 {
		t.Fatalf("memory create: %d %s", code, body)
	}
	_, body := do(t, mem, "GET", cfg+"endpoint/e1", "")
	if ts := rawTuples(t, body); !hasTuple(ts, "PBXD_LINE", "pbxd-1") || hasTuple(ts, "set_var", "PBXD_LINE=pbxd-1") {
		t.Errorf("memory GET renders set_var as %v, want a PBXD_LINE attribute", ts)
	}
	if code, body := do(t, mem, "PUT", cfg+"endpoint/e1", update); code != 500 || !strings.Contains(body, "Allocation failed") {
		t.Errorf("memory update of an endpoint with variables: %d %s, want 500 Allocation failed", code, body)
	}

	db := NewTest(t, Options{Wizard: AstDB})
	if code, body := do(t, db, "PUT", cfg+"endpoint/e1", put); code != 200 {
		t.Fatalf("astdb create: %d %s", code, body)
	}
	_, body = do(t, db, "GET", cfg+"endpoint/e1", "")
	if ts := rawTuples(t, body); !hasTuple(ts, "set_var", "") || hasTuple(ts, "PBXD_LINE", "pbxd-1") {
		t.Errorf("astdb GET: set_var survived: %v", ts)
	}
	if code, body := do(t, db, "PUT", cfg+"endpoint/e1", update); code != 200 {
		t.Errorf("astdb update: %d %s", code, body)
	}

	// Nor can any wizard update an endpoint without codecs: the copy
	// cannot parse allow=(nothing).
	do(t, db, "PUT", cfg+"endpoint/e2", update)
	if code, body := do(t, db, "PUT", cfg+"endpoint/e2", update); code != 500 {
		t.Errorf("update of an endpoint without codecs: %d %s, want 500", code, body)
	}
}

// Until the first PJSIP endpoint exists (since Asterisk started) there is
// no PJSIP technology endpoint: /endpoints/PJSIP is 404 and subscribing
// to endpoint:PJSIP is 422.
func TestNoPJSIPEndpointYet(t *testing.T) {
	t.Parallel()
	for _, w := range []Wizard{Memory, AstDB} {
		s := NewTest(t, Options{Wizard: w})
		ws := dialEvents(t, s, "app=p")
		waitApp(t, s, "p")
		sub := "/applications/p/subscription?eventSource=endpoint:PJSIP"
		if code, body := do(t, s, "POST", sub, ""); code != 422 || !strings.Contains(body, "Event source does not exist") {
			t.Errorf("wizard %d: subscribe with no endpoint: %d %s, want 422", w, code, body)
		}
		if code, _ := do(t, s, "GET", "/endpoints/PJSIP", ""); code != 404 {
			t.Errorf("wizard %d: /endpoints/PJSIP with no endpoint: %d, want 404", w, code)
		}
		if code, _ := do(t, s, "GET", "/endpoints", ""); code != 200 {
			t.Errorf("wizard %d: /endpoints: %d, want 200", w, code)
		}
		do(t, s, "PUT", cfg+"endpoint/e1", `{"fields":[{"attribute":"context","value":"a"}]}`)
		do(t, s, "DELETE", cfg+"endpoint/e1", "")
		// The technology stays once created, even with no endpoint left.
		if code, body := do(t, s, "POST", sub, ""); code != 200 {
			t.Errorf("wizard %d: subscribe after the first endpoint: %d %s", w, code, body)
		}
		if err := ws.conn.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Restart(); err != nil {
			t.Fatal(err)
		}
		dialEvents(t, s, "app=p")
		waitApp(t, s, "p")
		if code, _ := do(t, s, "POST", sub, ""); code != 422 {
			t.Errorf("wizard %d: subscribe after a restart with no endpoint: %d, want 422", w, code)
		}
	}
}

// The WARNING lines Asterisk 22 logs: stir_shaken is applied (and warned
// about) on every astdb read of an endpoint and every ARI update of one;
// a memory cache in front of astdb serves reads without re-applying.
func TestWarnings(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name                 string
		opts                 Options
		create, get2, update int // warnings added by each step
	}{
		{"astdb", Options{Wizard: AstDB}, 0, 2, 2},
		{"astdb+cache", Options{Wizard: AstDB, Cache: true}, 0, 0, 1},
		{"memory", Options{Wizard: Memory}, 0, 0, 1},
	} {
		s := NewTest(t, c.opts)
		step := func(what string, want int, f func()) {
			before := len(s.Warnings())
			f()
			if got := len(s.Warnings()) - before; got != want {
				t.Errorf("%s: %s added %d warnings, want %d: %q", c.name, what, got, want, s.Warnings()[before:])
			}
		}
		step("create", c.create, func() {
			do(t, s, "PUT", cfg+"endpoint/e1", `{"fields":[{"attribute":"context","value":"a"},{"attribute":"allow","value":"ulaw"}]}`)
		})
		step("two reads", c.get2, func() {
			do(t, s, "GET", cfg+"endpoint/e1", "")
			do(t, s, "GET", cfg+"endpoint/e1", "")
		})
		step("update", c.update, func() { do(t, s, "PUT", cfg+"endpoint/e1", `{"fields":[{"attribute":"context","value":"b"}]}`) })
		step("deprecated option", 2, func() {
			do(t, s, "PUT", cfg+"endpoint/e2", `{"fields":[{"attribute":"stir_shaken","value":"no"},{"attribute":"stir_shaken","value":"yes"}]}`)
		})
	}
}

// A registered contact is a sorcery object ARI can read, id
// "<aor>;@<md5 of the uri>", with its expiration_time in whole seconds;
// Asterisk's 200 OK rounds what is left down: 3599 for 3600.
func TestContactObject(t *testing.T) {
	t.Parallel()
	s := NewTest(t, Options{})
	do(t, s, "PUT", cfg+"aor/a1", `{"fields":[{"attribute":"max_contacts","value":"1"}]}`)
	do(t, s, "PUT", cfg+"endpoint/e1", `{"fields":[{"attribute":"aors","value":"a1"},{"attribute":"allow","value":"ulaw"}]}`)
	uri := "sip:100@192.0.2.1:5060"
	before := time.Now()
	if err := s.RegisterContact("e1", uri); err != nil {
		t.Fatal(err)
	}
	if got, ok := s.GrantedExpires("e1", uri); !ok || got != 3599 {
		t.Errorf("granted expires = %d, %v; want 3599", got, ok)
	}
	code, body := do(t, s, "GET", cfg+"contact/a1;@"+hex.EncodeToString(md5sum(uri)), "")
	m := tupleMap(t, body)
	exp, err := strconv.ParseInt(m["expiration_time"], 10, 64)
	if code != 200 || err != nil || m["uri"] != uri || m["user_agent"] != PhoneUserAgent {
		t.Fatalf("contact object: %d %s", code, body)
	}
	if want := before.Add(RegisterExpires).Unix(); exp < want || exp > want+1 {
		t.Errorf("expiration_time %d, want about %d", exp, want)
	}
	if code, _ := do(t, s, "GET", cfg+"contact/a1;@0123", ""); code != 404 {
		t.Errorf("absent contact: %d, want 404", code)
	}
}

func md5sum(s string) []byte {
	sum := md5.Sum([]byte(s))
	return sum[:]
}
