package asterisk

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pbxd/pbxd/pbx"
	"github.com/pbxd/pbxd/pbx/asterisk/aritest"
	"github.com/pbxd/pbxd/pbx/pbxtest"
)

func TestMain(m *testing.M) {
	// The benchmark runs the ARI server in a child process, so that the
	// CPU it measures is pbxd's only.
	if os.Getenv("PBXD_ARITEST_SERVE") != "" {
		s, err := aritest.New(aritest.Options{Username: "bench", Password: "bench-secret"})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(s.URL())
		_, _ = io.Copy(io.Discard, os.Stdin) // until the parent goes
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func testConfig(urls ...string) Config {
	cfg := Config{
		Transport:        "transport-udp",
		QualifyFrequency: 60 * time.Second,
		RequestTimeout:   2 * time.Second,
		BackoffMin:       10 * time.Millisecond,
		BackoffMax:       100 * time.Millisecond,
		HealthInterval:   20 * time.Millisecond,
	}
	for i, u := range urls {
		cfg.Nodes = append(cfg.Nodes, NodeConfig{Name: string(rune('a' + i)), URL: u, Username: "pbxd", Password: "pbxd-secret"})
	}
	return cfg
}

type bundle struct {
	b   *Backend
	srv []*aritest.Server
	reg *prometheus.Registry
}

// setup starts ARI servers (one per wizard given, default one Memory) and
// a running backend on them.
func setup(t testing.TB, wizards ...aritest.Wizard) bundle {
	t.Helper()
	if len(wizards) == 0 {
		wizards = []aritest.Wizard{aritest.Memory}
	}
	opts := make([]aritest.Options, len(wizards))
	for i, w := range wizards {
		opts[i] = aritest.Options{Wizard: w}
	}
	return setupWith(t, opts...)
}

// setupWith starts one ARI server per options given and a running backend
// on them.
func setupWith(t testing.TB, opts ...aritest.Options) bundle {
	t.Helper()
	var urls []string
	var srvs []*aritest.Server
	for _, o := range opts {
		s := aritest.NewTest(t, o)
		srvs = append(srvs, s)
		urls = append(urls, s.URL())
	}
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	b, err := New(testConfig(urls...), logger, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitFor(t, "connected", b.Connected)
	return bundle{b: b, srv: srvs, reg: reg}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	pbxtest.Exercise(t, func(t *testing.T) pbxtest.Harness {
		bd := setup(t)
		s := bd.srv[0]
		return pbxtest.Harness{
			Backend: bd.b,
			Register: func(t *testing.T, line pbx.LineConfig, uri string) {
				if err := s.RegisterContact(endpointName(line), uri); err != nil {
					t.Fatal(err)
				}
			},
			Unregister: func(t *testing.T, line pbx.LineConfig, uri string) {
				if err := s.UnregisterContact(endpointName(line), uri); err != nil {
					t.Fatal(err)
				}
			},
			Restart: func(t *testing.T) {
				s.Stop()
				if err := s.Restart(); err != nil {
					t.Fatal(err)
				}
			},
		}
	})
}

func mustObject(t *testing.T, s *aritest.Server, typ, id string) map[string]string {
	t.Helper()
	o, ok := s.Object(typ, id)
	if !ok {
		t.Fatalf("%s %s not on the server", typ, id)
	}
	return o
}

func TestApplyStoresFields(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	s := bd.srv[0]
	line := pbxtest.NewLine()
	if err := bd.b.Apply(t.Context(), line); err != nil {
		t.Fatal(err)
	}
	id, name := "pbxd-"+line.ID, "100@"+line.Domain
	check := func(typ string, want map[string]string) {
		t.Helper()
		oid := name
		if typ == "auth" {
			oid = id
		}
		o := mustObject(t, s, typ, oid)
		for k, v := range want {
			if o[k] != v {
				t.Errorf("%s.%s = %q, want %q", typ, k, o[k], v)
			}
		}
	}
	check("auth", map[string]string{"auth_type": "digest", "username": "100", "password": line.Password, "realm": line.Domain})
	check("aor", map[string]string{"max_contacts": "2", "qualify_frequency": "60", "remove_existing": "true"})
	check("endpoint", map[string]string{"auth": id, "aors": name, "accountcode": id, "context": "pkg-fr-fixed-mobile",
		"callerid": `"Alice Martin" <100>`, "from_domain": line.Domain, "allow": "(ulaw|alaw|g722)", "transport": "transport-udp"})

	// Re-applying reads and writes nothing; one change is one PUT.
	s.ResetCounts()
	if err := bd.b.Apply(t.Context(), line); err != nil {
		t.Fatal(err)
	}
	if n := s.Requests("PUT"); n != 0 {
		t.Errorf("idempotent Apply sent %d PUTs", n)
	}
	line.CallerID = "Bob"
	if err := bd.b.Apply(t.Context(), line); err != nil {
		t.Fatal(err)
	}
	if n := s.Requests("PUT"); n != 1 {
		t.Errorf("changing the caller id sent %d PUTs, want 1", n)
	}
	if n := s.Requests("DELETE"); n != 0 {
		t.Errorf("an update deleted %d objects", n)
	}
	check("endpoint", map[string]string{"callerid": `"Bob" <100>`, "context": "pkg-fr-fixed-mobile"})
}

func TestSuspension(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	s := bd.srv[0]
	line := pbxtest.NewLine()
	line.Suspended = true
	if err := bd.b.Apply(t.Context(), line); err != nil {
		t.Fatal(err)
	}
	id, name := "pbxd-"+line.ID, endpointName(line)
	ep := mustObject(t, s, "endpoint", name)
	if ep["auth"] != id+"-suspended" {
		t.Errorf("suspended endpoint auth = %q", ep["auth"])
	}
	sa := mustObject(t, s, "auth", id+"-suspended")
	if sa["password"] == line.Password || len(sa["password"]) < 32 || sa["username"] != line.Username {
		t.Errorf("suspended auth is usable or malformed")
	}
	if a := mustObject(t, s, "auth", id); a["password"] != line.Password {
		t.Error("the real auth lost its password")
	}
	line.Suspended = false
	if err := bd.b.Apply(t.Context(), line); err != nil {
		t.Fatal(err)
	}
	if ep := mustObject(t, s, "endpoint", name); ep["auth"] != id {
		t.Errorf("resumed endpoint auth = %q", ep["auth"])
	}
	if _, ok := s.Object("auth", id+"-suspended"); ok {
		t.Error("suspended auth left behind after resume")
	}
}

func TestRemoveDeletesAllObjects(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	s := bd.srv[0]
	line := pbxtest.NewLine()
	line.Suspended = true
	if err := bd.b.Apply(t.Context(), line); err != nil {
		t.Fatal(err)
	}
	if err := bd.b.Remove(t.Context(), line.ID); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"endpoint", "auth", "aor"} {
		if ids := s.ObjectIDs(typ); len(ids) != 0 {
			t.Errorf("%s objects left: %v", typ, ids)
		}
	}
}

func TestHandMadeObjectsUntouched(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	s := bd.srv[0]
	// One from pjsip.conf, one pushed by someone else over ARI.
	if err := s.Seed("endpoint", "reception", map[string]string{"context": "default"}); err != nil {
		t.Fatal(err)
	}
	other, err := New(Config{ObjectPrefix: "other-", Nodes: []NodeConfig{{Name: "a", URL: s.URL(), Username: "pbxd", Password: "pbxd-secret"}}},
		slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	foreign := pbxtest.NewLine()
	if err := other.Apply(t.Context(), foreign); err != nil {
		t.Fatal(err)
	}
	mine := pbxtest.NewLine()
	if err := bd.b.Apply(t.Context(), mine); err != nil {
		t.Fatal(err)
	}
	lines, err := bd.b.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 1 || lines[0].ID != mine.ID {
		t.Errorf("List = %v, want only %s", lines, mine.ID)
	}
	if err := bd.b.Remove(t.Context(), foreign.ID); err != nil {
		t.Fatal(err)
	}
	if err := bd.b.Remove(t.Context(), mine.ID); err != nil {
		t.Fatal(err)
	}
	for _, o := range [][2]string{{"endpoint", "reception"}, {"endpoint", endpointName(foreign)}, {"auth", "other-" + foreign.ID}, {"aor", endpointName(foreign)}} {
		if _, ok := s.Object(o[0], o[1]); !ok {
			t.Errorf("hand-made %s %s was deleted", o[0], o[1])
		}
	}
}

func TestDriftIsReported(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	s := bd.srv[0]
	find := func(id string) *pbx.LineConfig {
		t.Helper()
		lines, err := bd.b.List(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for i := range lines {
			if lines[i].ID == id {
				return &lines[i]
			}
		}
		return nil
	}
	for _, c := range []struct {
		name   string
		tamper func(name, id string) error
		check  func(l *pbx.LineConfig) bool // true when drift shows
	}{
		{"context", func(name, id string) error { return s.Tamper("endpoint", name, "context", "free-calls") },
			func(l *pbx.LineConfig) bool { return l != nil && l.Context == "free-calls" }},
		{"password", func(name, id string) error { return s.Tamper("auth", id, "password", "guessme") },
			func(l *pbx.LineConfig) bool { return l != nil && l.Password == "guessme" }},
		{"transport", func(name, id string) error { return s.Tamper("endpoint", name, "transport", "transport-tcp") },
			func(l *pbx.LineConfig) bool { return l != nil && strings.Contains(l.Drift, "transport") }},
		{"codecs", func(name, id string) error { return s.Tamper("endpoint", name, "allow", "opus") },
			func(l *pbx.LineConfig) bool { return l != nil && strings.Contains(l.Drift, "allow") }},
		{"qualify", func(name, id string) error { return s.Tamper("aor", name, "qualify_frequency", "5") },
			func(l *pbx.LineConfig) bool { return l != nil && strings.Contains(l.Drift, "qualify") }},
		{"auth unlinked", func(name, id string) error { return s.Tamper("endpoint", name, "auth", "") },
			func(l *pbx.LineConfig) bool { return l != nil && strings.Contains(l.Drift, "auth link") }},
		{"marker lost", func(name, id string) error { return s.Tamper("endpoint", name, "accountcode", "") },
			func(l *pbx.LineConfig) bool { return l != nil && strings.Contains(l.Drift, "marker") }},
		{"auth deleted", func(name, id string) error { s.Forget("auth", id); return nil },
			func(l *pbx.LineConfig) bool { return l != nil && l.Password == "" }},
		{"aor deleted", func(name, id string) error { s.Forget("aor", name); return nil },
			func(l *pbx.LineConfig) bool { return l != nil && l.MaxContacts == 0 }},
		{"endpoint deleted", func(name, id string) error { s.Forget("endpoint", name); return nil },
			func(l *pbx.LineConfig) bool { return l == nil }},
	} {
		line := pbxtest.NewLine()
		if err := bd.b.Apply(t.Context(), line); err != nil {
			t.Fatal(err)
		}
		if err := c.tamper(endpointName(line), "pbxd-"+line.ID); err != nil {
			t.Fatal(err)
		}
		held := find(line.ID)
		if !c.check(held) {
			t.Errorf("%s: drift not reported: %+v", c.name, held)
		}
		if held != nil && pbx.SameConfig(line, *held) {
			t.Errorf("%s: SameConfig holds despite drift", c.name)
		}
		// The reconciler's repair: Apply again.
		if err := bd.b.Apply(t.Context(), line); err != nil {
			t.Fatal(err)
		}
		if held := find(line.ID); held == nil || !pbx.SameConfig(line, *held) {
			t.Errorf("%s: not repaired by Apply: %+v", c.name, held)
		}
	}
}

func drain(ch <-chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func TestRestartMidway(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	s, b := bd.srv[0], bd.b
	gauge := b.m.connected.WithLabelValues("a")
	if v := testutil.ToFloat64(gauge); v != 1 {
		t.Errorf("connected gauge = %v, want 1", v)
	}
	line := pbxtest.NewLine()
	if err := b.Apply(t.Context(), line); err != nil {
		t.Fatal(err)
	}
	drain(b.Resync())

	// A visible outage: Connected toggles, the gauge follows.
	s.Stop()
	waitFor(t, "disconnected", func() bool { return !b.Connected() })
	if v := testutil.ToFloat64(gauge); v != 0 {
		t.Errorf("connected gauge = %v during outage", v)
	}
	if err := b.Apply(t.Context(), line); !errors.Is(err, pbx.ErrUnavailable) {
		t.Errorf("Apply during outage = %v, want ErrUnavailable", err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reconnected", b.Connected)
	select {
	case <-b.Resync():
	case <-time.After(5 * time.Second):
		t.Fatal("no resync signalled after reconnect")
	}
	// The memory wizard forgot the line; the resync re-applies it.
	if lines, err := b.List(t.Context()); err != nil || len(lines) != 0 {
		t.Fatalf("after restart List = %v, %v; want empty", lines, err)
	}
	if err := b.Apply(t.Context(), line); err != nil {
		t.Fatal(err)
	}

	// A restart too quick to see as an outage is caught by startup_time.
	drain(b.Resync())
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.Resync():
	case <-time.After(5 * time.Second):
		t.Fatal("no resync signalled after a quick restart")
	}
	waitFor(t, "reconnected", b.Connected)

	// Events still flow on the library's reconnected websocket.
	if err := b.Apply(t.Context(), line); err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterContact(endpointName(line), "sip:100@192.0.2.9"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, b, line.ID, "sip:100@192.0.2.9")
	if n := testutil.ToFloat64(b.m.resyncs.WithLabelValues("a", "restart")); n < 1 {
		t.Errorf("restart resyncs = %v", n)
	}
}

func waitEvent(t *testing.T, b *Backend, lineID, uri string) pbx.RegistrationEvent {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev := <-b.Events():
			if ev.LineID != lineID {
				continue
			}
			for _, c := range ev.Contacts {
				if c.URI == uri {
					return ev
				}
			}
		case <-timeout:
			t.Fatalf("no event for %s with %q", lineID, uri)
		}
	}
}

func TestContactsRebuiltOnConnect(t *testing.T) {
	t.Parallel()
	s := aritest.NewTest(t, aritest.Options{})
	// Provision and register before the backend under test connects.
	pre, err := New(testConfig(s.URL()), slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	line := pbxtest.NewLine()
	if err := pre.Apply(t.Context(), line); err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterContact(endpointName(line), "sip:100@192.0.2.50"); err != nil {
		t.Fatal(err)
	}
	b := runBackend(t, s.URL(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	ev := waitEvent(t, b, line.ID, "")
	if !ev.Registered() {
		t.Error("online endpoint not reported registered")
	}
	// The next contact event replaces the placeholder.
	if err := s.RegisterContact(endpointName(line), "sip:100@192.0.2.51"); err != nil {
		t.Fatal(err)
	}
	ev = waitEvent(t, b, line.ID, "sip:100@192.0.2.51")
	if len(ev.Contacts) != 1 {
		t.Errorf("contacts = %+v, want only the real one", ev.Contacts)
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	s := bd.srv[0]
	line := pbxtest.NewLine()
	s.FailNextConfig(1, 500)
	if err := bd.b.Apply(t.Context(), line); !errors.Is(err, pbx.ErrUnavailable) {
		t.Errorf("Apply with a 500 = %v, want ErrUnavailable", err)
	}
	if err := bd.b.Apply(t.Context(), line); err != nil {
		t.Errorf("Apply after the fault: %v", err)
	}
	s.SetLatency(3 * time.Second) // above RequestTimeout (2s)
	start := time.Now()
	if _, err := bd.b.List(t.Context()); !errors.Is(err, pbx.ErrUnavailable) {
		t.Errorf("List with latency = %v, want ErrUnavailable", err)
	}
	if time.Since(start) > 2500*time.Millisecond {
		t.Errorf("List took %v, beyond the request timeout", time.Since(start))
	}
	s.SetLatency(0)
}

func TestMultiNode(t *testing.T) {
	t.Parallel()
	bd := setup(t, aritest.Memory, aritest.AstDB)
	a, b := bd.srv[0], bd.srv[1]
	line := pbxtest.NewLine()
	line.Node = "b"
	if err := bd.b.Apply(t.Context(), line); err != nil {
		t.Fatal(err)
	}
	if len(a.ObjectIDs("endpoint")) != 0 || len(b.ObjectIDs("endpoint")) != 1 {
		t.Fatalf("line on wrong node: a=%v b=%v", a.ObjectIDs("endpoint"), b.ObjectIDs("endpoint"))
	}
	lines, err := bd.b.List(t.Context())
	if err != nil || len(lines) != 1 || lines[0].Node != "b" {
		t.Fatalf("List = %+v, %v", lines, err)
	}
	// A line applied to another node (an account move) stays on the old
	// one until RemoveFrom removes it there: the move removes it only once
	// every line is on the new node.
	line.Node = "" // default node a
	if err := bd.b.Apply(t.Context(), line); err != nil {
		t.Fatal(err)
	}
	if len(a.ObjectIDs("endpoint")) != 1 || len(b.ObjectIDs("endpoint")) != 1 {
		t.Errorf("copied: a=%v b=%v; want the line on both", a.ObjectIDs("endpoint"), b.ObjectIDs("endpoint"))
	}
	if err := bd.b.RemoveFrom(t.Context(), "b", line.ID); err != nil {
		t.Fatal(err)
	}
	if len(a.ObjectIDs("endpoint")) != 1 || len(b.ObjectIDs("endpoint")) != 0 || len(b.ObjectIDs("auth")) != 0 || len(b.ObjectIDs("aor")) != 0 {
		t.Errorf("moved: a=%v b=%v %v %v", a.ObjectIDs("endpoint"), b.ObjectIDs("endpoint"), b.ObjectIDs("auth"), b.ObjectIDs("aor"))
	}
	if err := bd.b.RemoveFrom(t.Context(), "b", line.ID); err != nil {
		t.Errorf("removing an absent line: %v", err)
	}
	if err := bd.b.RemoveFrom(t.Context(), "zz", line.ID); err == nil {
		t.Error("RemoveFrom an unknown node succeeded")
	}
	// A line prepared on another node (a move) and removed before its
	// Apply there leaves no auth and no endpoint on either node. (Its aor
	// may stay: without an endpoint its name is not known to be the
	// line's, and a new line of the same name may be using it.)
	line.Node = "b"
	if err := bd.b.Prepare(t.Context(), []pbx.LineConfig{line}); err != nil {
		t.Fatal(err)
	}
	if len(b.ObjectIDs("auth")) != 1 {
		t.Fatalf("prepared: b auths %v", b.ObjectIDs("auth"))
	}
	if err := bd.b.Remove(t.Context(), line.ID); err != nil {
		t.Fatal(err)
	}
	lineObjs := func(s *aritest.Server, typ string) []string {
		return slices.DeleteFunc(s.ObjectIDs(typ), func(id string) bool { return strings.HasSuffix(id, "queue-probe") })
	}
	for _, s := range []*aritest.Server{a, b} {
		if len(lineObjs(s, "auth")) != 0 || len(lineObjs(s, "endpoint")) != 0 {
			t.Errorf("after Remove: %v %v", lineObjs(s, "auth"), lineObjs(s, "endpoint"))
		}
	}
	line.Node = "zz"
	if err := bd.b.Apply(t.Context(), line); err == nil {
		t.Error("Apply to an unknown node succeeded")
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	good := NodeConfig{Name: "a", URL: "http://127.0.0.1:8088/ari", Username: "u", Password: "p"}
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no nodes", Config{}, "at least one node"},
		{"dup", Config{Nodes: []NodeConfig{good, good}}, "duplicate"},
		{"bad url", Config{Nodes: []NodeConfig{{Name: "a", URL: "ftp://x", Username: "u", Password: "p"}}}, "url"},
		{"creds in url", Config{Nodes: []NodeConfig{{Name: "a", URL: "http://u:secretpw@x/ari", Username: "u", Password: "p"}}}, "credentials"},
		{"no password", Config{Nodes: []NodeConfig{{Name: "a", URL: "http://x/ari", Username: "u"}}}, "password"},
		{"default node", Config{Nodes: []NodeConfig{good}, DefaultNode: "b"}, "default node"},
		{"prefix", Config{Nodes: []NodeConfig{good}, ObjectPrefix: "a/b"}, "prefix"},
		{"codec", Config{Nodes: []NodeConfig{good}, Codecs: []string{"all"}}, "codec"},
		{"qualify", Config{Nodes: []NodeConfig{good}, QualifyFrequency: 1500 * time.Millisecond}, "qualify"},
		{"backoff", Config{Nodes: []NodeConfig{good}, BackoffMin: time.Second, BackoffMax: time.Millisecond}, "backoff"},
		{"ok", Config{Nodes: []NodeConfig{good}}, ""},
	} {
		err := c.cfg.WithDefaults().Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		case err != nil && strings.Contains(err.Error(), "secretpw"):
			t.Errorf("%s: error leaks a password", c.name)
		}
	}
}

func TestPasswordsNeverLogged(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	s := aritest.NewTest(t, aritest.Options{})
	b, err := New(testConfig(s.URL()), slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = b.Run(ctx); close(done) }()
	waitFor(t, "connected", b.Connected)
	line := pbxtest.NewLine()
	_ = b.Apply(ctx, line)
	s.FailNext(3, 500)
	_ = b.Apply(ctx, line)
	s.Stop()
	waitFor(t, "disconnected", func() bool { return !b.Connected() })
	cancel()
	<-done
	out := buf.String()
	for _, secret := range []string{line.Password, "pbxd-secret"} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains a secret: %s", out)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	sb strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.String()
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkApply10k applies 10,000 new lines (16 at a time, like the
// reconciler's bounded concurrency) against an ARI test server running in a
// child process, and reports lines/s and pbxd's CPU per 1,000 lines.
func BenchmarkApply10k(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "PBXD_ARITEST_SERVE=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = stdin.Close(); _ = cmd.Wait() }() // the child ends on its stdin's close; its exit status is not the test's
	url, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	cfg := testConfig(strings.TrimSpace(url))
	cfg.Nodes[0].Username, cfg.Nodes[0].Password = "bench", "bench-secret"
	be, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	const lines, workers = 10000, 16
	b.ResetTimer()
	var total time.Duration
	var cpu time.Duration
	for i := 0; i < b.N; i++ {
		todo := make(chan pbx.LineConfig, lines)
		for range lines {
			todo <- pbxtest.NewLine()
		}
		close(todo)
		c0, t0 := cpuTime(), time.Now()
		var wg sync.WaitGroup
		var firstErr error
		var mu sync.Mutex
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for l := range todo {
					if err := be.Apply(context.Background(), l); err != nil {
						mu.Lock()
						firstErr = err
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
		total += time.Since(t0)
		cpu += cpuTime() - c0
		if firstErr != nil {
			b.Fatal(firstErr)
		}
	}
	b.ReportMetric(float64(lines*b.N)/total.Seconds(), "lines/s")
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N*lines/1000), "cpu-ms/1k-lines")
}

// An Asterisk with no PJSIP endpoint has no endpoint:PJSIP event source
// (subscribing answers 422 and Asterisk logs a WARNING per attempt): pbxd
// connects anyway, does not knock, and subscribes as soon as it pushes the
// first endpoint, so that line's registration is heard.
func TestEmptyAsterisk(t *testing.T) {
	t.Parallel()
	bd := setup(t, aritest.AstDB)
	s, b := bd.srv[0], bd.b
	time.Sleep(100 * time.Millisecond) // a few health checks
	if n := testutil.ToFloat64(b.m.requests.WithLabelValues("a", "subscribe", "error")); n != 0 {
		t.Errorf("%v subscriptions refused while Asterisk had no endpoint", n)
	}
	line := pbxtest.NewLine()
	if err := b.Apply(t.Context(), line); err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterContact(endpointName(line), "sip:100@192.0.2.60"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, b, line.ID, "sip:100@192.0.2.60")
}

// A resync over lines Asterisk holds as pbxd pushed them writes nothing,
// also after an Asterisk restart reloaded them from astdb, and, with the
// memory cache of configs/asterisk/sorcery.conf, reads them without
// Asterisk logging a WARNING.
func TestUnchangedLinesStayUnchanged(t *testing.T) {
	t.Parallel()
	for _, o := range []aritest.Options{
		{Wizard: aritest.AstDB, Cache: true},
		{Wizard: aritest.AstDB},
		{Wizard: aritest.Memory},
	} {
		bd := setupWith(t, o)
		s, b := bd.srv[0], bd.b
		var lines []pbx.LineConfig
		for i := range 20 {
			l := pbxtest.NewLine()
			l.Suspended = i%5 == 0
			if err := b.Apply(t.Context(), l); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, l)
		}
		check := func(when string) {
			t.Helper()
			s.ResetCounts()
			warned := len(s.Warnings())
			held, err := b.List(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if len(held) != len(lines) {
				t.Fatalf("%+v %s: List has %d lines, want %d", o, when, len(held), len(lines))
			}
			for i, h := range held {
				want := lines[slices.IndexFunc(lines, func(l pbx.LineConfig) bool { return l.ID == h.ID })]
				if !pbx.SameConfig(want, h) {
					t.Errorf("%+v %s: line %d listed as stale: drift %q", o, when, i, h.Drift)
				}
				if err := b.ApplyListed(t.Context(), want, &held[i]); err != nil {
					t.Fatal(err)
				}
			}
			if n := s.Requests("PUT"); n != 0 {
				t.Errorf("%+v %s: a resync of unchanged lines sent %d PUTs", o, when, n)
			}
			if w := s.Warnings()[warned:]; o.Cache && len(w) != 0 {
				t.Errorf("%+v %s: the resync made Asterisk log %d warnings, first %q", o, when, len(w), w[0])
			}
		}
		check("after apply")
		if o.Wizard == aritest.AstDB {
			drain(b.Resync())
			if err := s.Restart(); err != nil {
				t.Fatal(err)
			}
			<-b.Resync()
			check("after a restart")
		}
	}
}

// An outage is one WARN and one count per node, however many reconnection
// attempts it takes.
func TestOutageLoggedOnce(t *testing.T) {
	t.Parallel()
	s := aritest.NewTest(t, aritest.Options{})
	var logs syncBuffer
	b := runBackend(t, s.URL(), slog.New(slog.NewTextHandler(&logs, nil)))
	waitFor(t, "connected", b.Connected)
	s.Stop()
	waitFor(t, "disconnected", func() bool { return !b.Connected() })
	time.Sleep(500 * time.Millisecond) // several attempts (back-off 10-100 ms)
	if n := testutil.ToFloat64(b.m.requests.WithLabelValues("a", "info", "unavailable")); n < 3 {
		t.Fatalf("only %v reconnection attempts", n)
	}
	if n := strings.Count(logs.String(), "asterisk unreachable"); n != 1 {
		t.Errorf("%d WARNs for one outage, want 1:\n%s", n, logs.String())
	}
	if n := testutil.ToFloat64(b.m.outages.WithLabelValues("a")); n != 1 {
		t.Errorf("outages counted %v, want 1", n)
	}
}

// runBackend runs a backend on the ARI server at url until t ends.
func runBackend(t *testing.T, url string, logger *slog.Logger) *Backend {
	t.Helper()
	b, err := New(testConfig(url), logger, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = b.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return b
}

// Contacts carry Asterisk's reachability and their expiry (read from the
// contact object, which events do not carry); an Unreachable contact does
// not count as registered.
func TestContactStatusAndExpiry(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	s, b := bd.srv[0], bd.b
	line := applyNew(t, b)
	uri := "sip:100@192.0.2.70"
	before := time.Now()
	if err := s.RegisterContact(endpointName(line), uri); err != nil {
		t.Fatal(err)
	}
	var c pbx.Contact
	for c.Expires.IsZero() {
		ev := waitEvent(t, b, line.ID, uri)
		c = ev.Contacts[0]
	}
	if want := before.Add(aritest.RegisterExpires).Truncate(time.Second); c.Expires.Before(want) || c.Expires.After(want.Add(2*time.Second)) {
		t.Errorf("expires %v, want about %v", c.Expires, want)
	}
	if c.UserAgent != aritest.PhoneUserAgent || c.Status != pbx.ContactReachable {
		t.Errorf("contact = %+v", c)
	}
	if err := s.SetContactStatus(endpointName(line), uri, "Unreachable"); err != nil {
		t.Fatal(err)
	}
	for {
		ev := waitEvent(t, b, line.ID, uri)
		if ev.Contacts[0].Status != pbx.ContactUnreachable {
			continue
		}
		if ev.Registered() {
			t.Error("a line whose only contact is unreachable counts as registered")
		}
		if ev.Contacts[0].Expires.IsZero() {
			t.Error("the status change lost the expiry")
		}
		break
	}
}

// applyNew applies a new line and returns it.
func applyNew(t *testing.T, b *Backend) pbx.LineConfig {
	t.Helper()
	line := pbxtest.NewLine()
	if err := b.Apply(t.Context(), line); err != nil {
		t.Fatal(err)
	}
	return line
}

// However many applies run at once, a node has at most maxWritesInFlight
// writes in flight; after Asterisk answers 5xx, writes pause for the
// back-off instead of hammering it.
func TestWritesArePaced(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	s, b := bd.srv[0], bd.b
	s.SetLatency(10 * time.Millisecond)
	var wg sync.WaitGroup
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Apply(t.Context(), pbxtest.NewLine()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := s.MaxInFlight("PUT"); n > maxWritesInFlight || n < 2 {
		t.Errorf("%d PUTs in flight at once, want 2..%d", n, maxWritesInFlight)
	}

	s.SetLatency(0)
	s.FailNextConfig(3, http.StatusServiceUnavailable)
	s.ResetCounts()
	t0 := time.Now()
	var err error
	for range 4 { // three 503s, each followed by a back-off, then success
		if err = b.Apply(t.Context(), pbxtest.NewLine()); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	// Back-offs of at least 8, 16 and 32 ms (BackoffMin 10 ms, 20% jitter).
	if d := time.Since(t0); d < 50*time.Millisecond {
		t.Errorf("three 503s then a success took %v: no back-off", d)
	}
}

// Prepare creates the AORs of a batch before any endpoint: Asterisk then
// reads no endpoint per new AOR, where line-by-line creation reads N²/2,
// and the applies that follow write only the endpoints.
func TestPrepareCreatesAORsFirst(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	s, b := bd.srv[0], bd.b
	lines := make([]pbx.LineConfig, 150)
	for i := range lines {
		lines[i] = pbxtest.NewLine()
	}
	if err := b.Prepare(t.Context(), lines); err != nil {
		t.Fatal(err)
	}
	gets := objectGets(b)
	for _, l := range lines {
		if err := b.Apply(t.Context(), l); err != nil {
			t.Fatal(err)
		}
	}
	// What Prepare wrote stands in for reading the lines' objects: the
	// applies GET no object but the probe endpoint (the first index scan),
	// where each line read its three objects.
	if n := objectGets(b) - gets; n > 1 {
		t.Errorf("applying 150 prepared lines sent %d object GETs, want at most 1", n)
	}
	// Each new AOR reads at most the queue probe's endpoint (probe.go).
	if n := s.EndpointReadsByNewAORs(); n > len(lines) {
		t.Errorf("creating 150 prepared lines made Asterisk read %d endpoints", n)
	}
	probe := b.cfg.ObjectPrefix + "queue-probe"
	if n := s.Requests("PUT") - s.ObjectPuts("aor", probe) - s.ObjectPuts("endpoint", probe); n != 3*len(lines) {
		t.Errorf("%d PUTs of line objects, want %d (auth, aor, endpoint once each)", n, 3*len(lines))
	}
	held, err := b.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range held {
		if i := slices.IndexFunc(lines, func(l pbx.LineConfig) bool { return l.ID == h.ID }); i < 0 || !pbx.SameConfig(lines[i], h) {
			t.Errorf("line %s listed as %+v", h.ID, h)
		}
	}
	if len(held) != len(lines) {
		t.Errorf("List has %d lines, want %d", len(held), len(lines))
	}
}

// What Prepare wrote stands in for reading a new line's objects only while
// nothing else can have changed them: a hand-made endpoint already holding
// the line's name is found (and left alone), and a reconnection or a write
// to the line makes Apply read the objects again.
func TestPreparedLinesAreReadWhenInDoubt(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	s, b := bd.srv[0], bd.b
	lines := make([]pbx.LineConfig, 3)
	for i := range lines {
		lines[i] = pbxtest.NewLine()
	}
	foreign := endpointName(lines[0])
	if err := s.Seed("endpoint", foreign, map[string]string{"context": "by-hand"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Prepare(t.Context(), lines); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(t.Context(), lines[0]); !errors.Is(err, errForeign) {
		t.Errorf("Apply over a hand-made endpoint: %v, want errForeign", err)
	}
	if ep, _ := s.Object("endpoint", foreign); ep["context"] != "by-hand" {
		t.Errorf("hand-made endpoint changed: %v", ep)
	}
	// Deleted behind pbxd's back after Prepare, then a reconnection: the
	// apply reads the objects and creates the auth again.
	s.Forget("auth", b.objectID(lines[1].ID))
	b.order[0].dropListed()
	if err := b.Apply(t.Context(), lines[1]); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Object("auth", b.objectID(lines[1].ID)); !ok {
		t.Error("auth deleted after Prepare was not created again after a reconnection")
	}
	// The prepared entry is used once: a second Apply reads.
	if err := b.Apply(t.Context(), lines[2]); err != nil {
		t.Fatal(err)
	}
	s.Forget("aor", endpointName(lines[2]))
	if err := b.Apply(t.Context(), lines[2]); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Object("aor", endpointName(lines[2])); !ok {
		t.Error("aor deleted after the first Apply was not created again by the second")
	}
}

// Asterisk runs the observers of AOR writes after ARI has answered, one by
// one on a queue; at 500 queued it warns and sheds SIP load. Prepare paces
// its AOR writes on that queue (a probe through it) and returns only once
// Asterisk has run them all, so that the endpoints created next are not
// read by queued AOR tasks. The bound holds whatever the machine's speed:
// pbxd waits on the probe, not on a clock.
func TestPrepareKeepsAsteriskQueueShort(t *testing.T) {
	t.Parallel()
	bd := setupWith(t, aritest.Options{Wizard: aritest.AstDB, Cache: true, AORTaskTime: 5 * time.Millisecond})
	s, b := bd.srv[0], bd.b
	lines := make([]pbx.LineConfig, 600)
	for i := range lines {
		lines[i] = pbxtest.NewLine()
	}
	if err := b.Prepare(t.Context(), lines); err != nil {
		t.Fatal(err)
	}
	if n := s.AORQueueLen(); n != 0 {
		t.Errorf("Prepare returned with %d AOR writes still queued in Asterisk", n)
	}
	// maxUnconfirmed, plus the writes in flight when it was reached, plus
	// the probe's own.
	if got, limit := s.AORQueueMax(), maxUnconfirmed+maxWritesInFlight+1; got > limit {
		t.Errorf("Asterisk's AOR queue reached %d tasks, want at most %d", got, limit)
	}
	for _, w := range s.Warnings() {
		if strings.Contains(w, "task processor queue reached") {
			t.Errorf("Asterisk warned: %s", w)
		}
	}
	// The probe's objects are not lines: List and a resync leave them.
	held, err := b.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 0 {
		t.Errorf("List after Prepare (no endpoint yet) has %d lines", len(held))
	}
	probe := b.cfg.ObjectPrefix + "queue-probe"
	if _, ok := s.Object("endpoint", probe); !ok {
		t.Errorf("no probe endpoint %s", probe)
	}
}

// A phone's refresh raises no event in Asterisk (by default), so the
// expiry pbxd read at registration goes stale; pbxd reads the contact
// again once that expiry has passed and shows the refreshed one. A contact
// Asterisk no longer holds, its Removed event lost, is then dropped.
func TestContactExpiryFollowsSilentRefresh(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	s, b := bd.srv[0], bd.b
	line := applyNew(t, b)
	name := endpointName(line)
	if err := s.Tamper("aor", name, "minimum_expiration", "1"); err != nil {
		t.Fatal(err)
	}
	uri := "sip:100@192.0.2.71"
	if err := s.RegisterContactExpires(name, uri, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	var first time.Time
	for first.IsZero() {
		first = waitEvent(t, b, line.ID, uri).Contacts[0].Expires
	}
	// The phone refreshes for an hour: no event.
	if err := s.RegisterContact(name, uri); err != nil {
		t.Fatal(err)
	}
	for {
		c := waitEvent(t, b, line.ID, uri).Contacts[0]
		if c.Expires.After(first.Add(time.Hour - time.Minute)) {
			break
		}
	}
	// Gone behind pbxd's back (no Removed event): dropped after its expiry.
	uri2 := "sip:100@192.0.2.72"
	if err := s.RegisterContactExpires(name, uri2, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	for shown := (time.Time{}); shown.IsZero(); {
		for _, c := range waitEvent(t, b, line.ID, uri2).Contacts {
			if c.URI == uri2 {
				shown = c.Expires
			}
		}
	}
	s.ForgetContacts(name)
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-b.Events():
			if ev.LineID == line.ID && !slices.ContainsFunc(ev.Contacts, func(c pbx.Contact) bool { return c.URI == uri2 }) {
				return
			}
		case <-timeout:
			t.Fatal("a contact Asterisk no longer holds is still shown")
		}
	}
}

// With send_contact_status_on_update_registration = yes (configs/asterisk
// pjsip.conf), a refresh raises a ContactStatusChange and pbxd shows the
// new expiry at once, not after the old one has passed.
func TestContactExpiryOnRefreshEvent(t *testing.T) {
	t.Parallel()
	bd := setupWith(t, aritest.Options{ContactStatusOnRefresh: true})
	s, b := bd.srv[0], bd.b
	line := applyNew(t, b)
	uri := "sip:100@192.0.2.73"
	if err := s.RegisterContact(endpointName(line), uri); err != nil {
		t.Fatal(err)
	}
	var first time.Time
	for first.IsZero() {
		first = waitEvent(t, b, line.ID, uri).Contacts[0].Expires
	}
	time.Sleep(1100 * time.Millisecond) // expiration_time has whole seconds
	if err := s.RegisterContact(endpointName(line), uri); err != nil {
		t.Fatal(err)
	}
	for {
		if c := waitEvent(t, b, line.ID, uri).Contacts[0]; c.Expires.After(first) {
			return
		}
	}
}

// A deleted line's removal and a new line reusing its SIP username, applied
// at the same time (the reconciler applies a batch in parallel): whatever
// the order, the new line's endpoint and aor are on the node at the end.
// Before the endpoint name was locked, the removal could read the old
// line's endpoint, the new line write its own, and the removal then
// delete it with the aor.
func TestRemoveRacingANewLineOnTheSameName(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	s := bd.srv[0]
	s.SetLatency(time.Millisecond) // widens the window between a read and a write
	for i := range 20 {
		old := pbxtest.NewLine()
		if err := bd.b.Apply(t.Context(), old); err != nil {
			t.Fatal(err)
		}
		repl := pbxtest.NewLine()
		repl.Domain, repl.Username, repl.Extension = old.Domain, old.Username, old.Extension
		var wg sync.WaitGroup
		var errRemove, errApply error
		wg.Go(func() { errRemove = bd.b.Remove(t.Context(), old.ID) })
		wg.Go(func() { errApply = bd.b.Apply(t.Context(), repl) })
		wg.Wait()
		if errRemove != nil || errApply != nil {
			t.Fatalf("round %d: remove: %v, apply: %v", i, errRemove, errApply)
		}
		name := repl.Username + "@" + repl.Domain
		if ep, ok := s.Object("endpoint", name); !ok || ep["auth"] != "pbxd-"+repl.ID {
			t.Fatalf("round %d: endpoint %s = %v, %v; want the new line's", i, name, ep, ok)
		}
		if _, ok := s.Object("aor", name); !ok {
			t.Fatalf("round %d: aor %s missing", i, name)
		}
		if _, ok := s.Object("auth", "pbxd-"+old.ID); ok {
			t.Fatalf("round %d: the removed line's auth is still there", i)
		}
	}
}
