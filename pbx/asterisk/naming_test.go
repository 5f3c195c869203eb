package asterisk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/CyCoreSystems/ari/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxd/pbxd/pbx"
	"github.com/pbxd/pbxd/pbx/asterisk/aritest"
	"github.com/pbxd/pbxd/pbx/pbxtest"
)

func listed(t *testing.T, b *Backend) []pbx.LineConfig {
	t.Helper()
	lines, err := b.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

// Changing a line's username or domain renames its endpoint and aor: the
// new ones are created, the old ones deleted, the auth kept.
func TestRenameMovesObjects(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	s := bd.srv[0]
	line := pbxtest.NewLine()
	if err := bd.b.Apply(t.Context(), line); err != nil {
		t.Fatal(err)
	}
	old := endpointName(line)
	line.Username = "205"
	if err := bd.b.Apply(t.Context(), line); err != nil {
		t.Fatal(err)
	}
	line.Domain = "moved.example.net"
	if err := bd.b.Apply(t.Context(), line); err != nil {
		t.Fatal(err)
	}
	want := []string{"205@moved.example.net"}
	for _, typ := range []string{"endpoint", "aor"} {
		if got := s.ObjectIDs(typ); !slices.Equal(got, want) {
			t.Errorf("%s ids = %v, want %v (old %s gone)", typ, got, want, old)
		}
	}
	if got := s.ObjectIDs("auth"); !slices.Equal(got, []string{"pbxd-" + line.ID}) {
		t.Errorf("auth ids = %v", got)
	}
	lines := listed(t, bd.b)
	if len(lines) != 1 || !pbx.SameConfig(line, lines[0]) {
		t.Errorf("List = %+v", lines)
	}
	if err := s.RegisterContact("205@moved.example.net", "sip:205@192.0.2.77"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, bd.b, line.ID, "sip:205@192.0.2.77")
}

// A pbxd that restarts (a fresh Backend) finds its objects through the
// ownership marker: it lists them, moves a renamed line and removes a line
// it never applied itself, without touching a hand-made user@domain
// endpoint.
func TestFreshProcessFindsItsObjects(t *testing.T) {
	t.Parallel()
	s := aritest.NewTest(t, aritest.Options{})
	first, err := New(testConfig(s.URL()), slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	a, b := pbxtest.NewLine(), pbxtest.NewLine()
	for _, l := range []pbx.LineConfig{a, b} {
		if err := first.Apply(t.Context(), l); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Seed("endpoint", "300@"+a.Domain, map[string]string{"context": "lab", "auth": "lab-auth"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Seed("aor", "300@"+a.Domain, map[string]string{"max_contacts": "1"}); err != nil {
		t.Fatal(err)
	}

	second, err := New(testConfig(s.URL()), slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	// No List first: Apply and Remove must find the old objects by
	// themselves.
	a.Username = "101"
	if err := second.Apply(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	if err := second.Remove(t.Context(), b.ID); err != nil {
		t.Fatal(err)
	}
	want := []string{"101@" + a.Domain, "300@" + a.Domain}
	slices.Sort(want)
	if got := s.ObjectIDs("endpoint"); !slices.Equal(got, want) {
		t.Errorf("endpoints = %v, want %v", got, want)
	}
	if got := s.ObjectIDs("auth"); !slices.Equal(got, []string{"pbxd-" + a.ID}) {
		t.Errorf("auths = %v", got)
	}
	lines := listed(t, second)
	if len(lines) != 1 || lines[0].ID != a.ID || !pbx.SameConfig(a, lines[0]) {
		t.Errorf("List = %+v", lines)
	}
}

// Two endpoints claiming one line (a rename interrupted before the old
// endpoint was deleted) are reported as drift; applying the line deletes
// the extra one.
func TestDuplicateEndpointsRepaired(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	s := bd.srv[0]
	line := pbxtest.NewLine()
	if err := bd.b.Apply(t.Context(), line); err != nil {
		t.Fatal(err)
	}
	// Another process of pbxd (no shared index) applies the renamed line
	// and dies before deleting the old endpoint.
	other, err := New(testConfig(s.URL()), slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	renamed := line
	renamed.Username = "199"
	other.nodes["a"].indexed = true // pretend it knew nothing about the old name
	if err := other.Apply(t.Context(), renamed); err != nil {
		t.Fatal(err)
	}
	if n := len(s.ObjectIDs("endpoint")); n != 2 {
		t.Fatalf("%d endpoints, want 2 for the test to mean something", n)
	}
	lines := listed(t, bd.b)
	if len(lines) != 1 || lines[0].Drift == "" {
		t.Fatalf("List = %+v, want one line with drift", lines)
	}
	if err := bd.b.Apply(t.Context(), renamed); err != nil {
		t.Fatal(err)
	}
	if got := s.ObjectIDs("endpoint"); !slices.Equal(got, []string{endpointName(renamed)}) {
		t.Errorf("endpoints after repair = %v", got)
	}
	if lines := listed(t, bd.b); len(lines) != 1 || !pbx.SameConfig(renamed, lines[0]) {
		t.Errorf("List after repair = %+v", lines)
	}
}

// A new line reusing the AOR of a line whose removal is still pending
// takes the endpoint over; the late removal leaves it alone.
func TestTakeOverThenLateRemove(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	s := bd.srv[0]
	gone := pbxtest.NewLine()
	if err := bd.b.Apply(t.Context(), gone); err != nil {
		t.Fatal(err)
	}
	taker := pbxtest.NewLine()
	taker.Domain, taker.Username = gone.Domain, gone.Username
	if err := bd.b.Apply(t.Context(), taker); err != nil {
		t.Fatal(err)
	}
	if err := bd.b.Remove(t.Context(), gone.ID); err != nil {
		t.Fatal(err)
	}
	ep := mustObject(t, s, "endpoint", endpointName(taker))
	if ep["auth"] != "pbxd-"+taker.ID {
		t.Errorf("endpoint auth = %q after the late removal", ep["auth"])
	}
	if _, ok := s.Object("aor", endpointName(taker)); !ok {
		t.Error("aor deleted by the late removal")
	}
	if lines := listed(t, bd.b); len(lines) != 1 || !pbx.SameConfig(taker, lines[0]) {
		t.Errorf("List = %+v", lines)
	}
}

// An endpoint configured by hand under a line's AOR is never overwritten.
func TestForeignEndpointNotOverwritten(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	s := bd.srv[0]
	line := pbxtest.NewLine()
	if err := s.Seed("endpoint", endpointName(line), map[string]string{"context": "lab"}); err != nil {
		t.Fatal(err)
	}
	if err := bd.b.Apply(t.Context(), line); err == nil {
		t.Error("Apply over a hand-made endpoint succeeded")
	}
	if ep := mustObject(t, s, "endpoint", endpointName(line)); ep["context"] != "lab" {
		t.Error("hand-made endpoint changed")
	}
	if lines := listed(t, bd.b); len(lines) != 0 {
		t.Errorf("List shows a hand-made endpoint: %+v", lines)
	}
}

// Asterisk 22 sends event types the ari library does not know (it panics
// on them in a goroutine of its own); pbxd's reader ignores them, and
// malformed messages too, and keeps going.
func TestUnknownEventsSurvived(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	s := bd.srv[0]
	line := pbxtest.NewLine()
	if err := bd.b.Apply(t.Context(), line); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []map[string]any{
		{"type": "ApplicationRegistered"},
		{"type": "ChannelTransfer", "refer_to": map[string]any{"requested_destination": map[string]any{"exten": "200"}}},
		{"type": "SomethingNew", "endpoint": "not an object"},
		{"type": "ContactStatusChange", "endpoint": 42},
		{"type": "ContactStatusChange", "endpoint": map[string]any{"technology": "PJSIP", "resource": "nobody@nowhere"},
			"contact_info": map[string]any{"uri": "sip:x@192.0.2.1", "contact_status": "Reachable"}},
	} {
		if n := s.SendEvent(ev); n != 1 {
			t.Fatalf("event reached %d applications", n)
		}
	}
	s.SendRaw([]byte("{not json"))
	s.SendRaw([]byte(`[1,2,3]`))
	if err := s.RegisterContact(endpointName(line), "sip:100@192.0.2.33"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, bd.b, line.ID, "sip:100@192.0.2.33")
	if !bd.b.Connected() {
		t.Error("disconnected by unknown events")
	}
}

// Writes use pbxd's own HTTP client (see writeObject): a write to an
// Asterisk that never answers ends with ErrUnavailable after the request
// timeout, and writes reuse their connections.
func TestWritesTimeOutAndReuseConnections(t *testing.T) {
	release := make(chan struct{})
	var conns atomic.Int32
	var body ari.ConfigTupleList
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ari/asterisk/config/dynamic/res_pjsip/aor/hung" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		if r.Method != http.MethodPut || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want a JSON PUT", http.StatusBadRequest)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		// Asterisk answers a PUT with the whole object.
		_ = json.NewEncoder(w).Encode(append(body.Fields, make([]ari.ConfigTuple, 200)...))
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	defer close(release)
	cfg := testConfig(srv.URL + "/ari")
	cfg.RequestTimeout = 200 * time.Millisecond
	b, err := New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	n := b.nodes["a"]
	ctx := context.Background()
	if err := n.writeObject(ctx, "put_aor", "aor", "hung", []tuple{{"max_contacts", "1"}}, false); !errors.Is(err, pbx.ErrUnavailable) {
		t.Fatalf("a write to a hung Asterisk returned %v, want ErrUnavailable", err)
	}
	n.pace.reset()
	before := conns.Load()
	for i := range 20 {
		if err := n.writeObject(ctx, "put_aor", "aor", fmt.Sprint("a", i), []tuple{{"max_contacts", "1"}}, false); err != nil {
			t.Fatal(err)
		}
	}
	if len(body.Fields) != 1 || body.Fields[0] != (ari.ConfigTuple{Attribute: "max_contacts", Value: "1"}) {
		t.Errorf("PUT body %+v", body)
	}
	if n := conns.Load() - before; n > 1 {
		t.Errorf("20 sequential writes opened %d connections, want 1", n)
	}
}

// The variable pbxd sets for a number is the one the shipped dial plan
// reads (configs/asterisk/extensions.conf, [pbxd-did]) and aritest's
// RouteInbound models.
func TestDIDVariableMatchesTheDialPlan(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ prefix, number, want string }{
		{"pbxd-", "+33142000001", "PBXD_DID_33142000001"},
		{"pbxd-eu.1-", "+14155550100", "PBXD_EU_1_DID_14155550100"},
	} {
		if got, err := DIDVariable(c.prefix, c.number); err != nil || got != c.want {
			t.Errorf("DIDVariable(%q, %q) = %q, %v; want %q", c.prefix, c.number, got, err, c.want)
		}
	}
	for _, bad := range []string{"33142000001", "+", "+33 1", "+3314200000${X}", "+1234567890123456"} {
		if v, err := DIDVariable("pbxd-", bad); err == nil {
			t.Errorf("DIDVariable(%q) = %q, want an error", bad, v)
		}
	}
	b, err := os.ReadFile("../../configs/asterisk/extensions.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	for _, want := range []string{
		"[from-trunk]\nexten => _+X.,1,Goto(pbxd-did,${EXTEN:1},1)\nexten => _X.,1,Goto(pbxd-did,${EXTEN},1)",
		"[pbxd-did]\nexten => _X.,1,Set(PBXD_TARGET=${PBXD_DID_${EXTEN}})",
		"Dial(PJSIP/${PBXD_TARGET},30)",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("extensions.conf lacks %q", want)
		}
	}
}
