package asterisk

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pbxd/pbxd/pbx"
	"github.com/pbxd/pbxd/pbx/pbxtest"
)

func listOne(t *testing.T, b *Backend, id string) *pbx.LineConfig {
	t.Helper()
	lines, err := b.List(t.Context())
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

// objectGets counts the object GETs the backend sent to node a (the
// server's own count includes the health checks).
func objectGets(b *Backend) int {
	n := 0.0
	for _, typ := range []string{"endpoint", "auth", "aor"} {
		for _, outcome := range []string{"ok", "absent"} {
			n += testutil.ToFloat64(b.m.requests.WithLabelValues("a", "get_"+typ, outcome))
		}
	}
	return int(n)
}

// ApplyListed repairs with no GET, and a change made behind pbxd's back
// after the List, to an object that needed a PUT anyway, is repaired too.
func TestApplyListedSkipsReadsAndRepairs(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	s, b := bd.srv[0], bd.b
	line := applyNew(t, b)
	name, id := endpointName(line), "pbxd-"+line.ID
	_ = s.Tamper("endpoint", name, "context", "free-calls")
	held := listOne(t, b, line.ID)
	if held == nil || pbx.SameConfig(line, *held) {
		t.Fatalf("drift not listed: %+v", held)
	}
	_ = s.Tamper("endpoint", name, "transport", "transport-tcp") // after the List
	s.ResetCounts()
	gets := objectGets(b)
	if err := b.ApplyListed(t.Context(), line, held); err != nil {
		t.Fatal(err)
	}
	if n := objectGets(b) - gets; n != 0 {
		t.Errorf("ApplyListed sent %d GETs", n)
	}
	if n := s.Requests("PUT"); n != 1 {
		t.Errorf("ApplyListed sent %d PUTs, want 1", n)
	}
	ep := mustObject(t, s, "endpoint", name)
	if ep["context"] != line.Context || ep["transport"] != "transport-udp" || ep["accountcode"] != id {
		t.Errorf("endpoint not repaired: context %q transport %q accountcode %q", ep["context"], ep["transport"], ep["accountcode"])
	}
	if h := listOne(t, b, line.ID); h == nil || !pbx.SameConfig(line, *h) {
		t.Errorf("not repaired: %+v", h)
	}

	// A missing line: created with three PUTs and no GET.
	fresh := pbxtest.NewLine()
	fresh.Username = "101"
	if listOne(t, b, fresh.ID) != nil {
		t.Fatal("fresh line listed")
	}
	s.ResetCounts()
	gets = objectGets(b)
	if err := b.ApplyListed(t.Context(), fresh, nil); err != nil {
		t.Fatal(err)
	}
	if g, p := objectGets(b)-gets, s.Requests("PUT"); g != 0 || p != 3 {
		t.Errorf("creating a missing line: %d GETs, %d PUTs; want 0, 3", g, p)
	}
	if h := listOne(t, b, fresh.ID); h == nil || !pbx.SameConfig(fresh, *h) {
		t.Errorf("missing line not created: %+v", h)
	}
}

// What List read is used once, and never after pbxd wrote the line or the
// node reconnected.
func TestApplyListedNeverStale(t *testing.T) {
	t.Parallel()
	bd := setup(t)
	s, b := bd.srv[0], bd.b
	line := pbxtest.NewLine()
	if err := b.Apply(t.Context(), line); err != nil {
		t.Fatal(err)
	}
	held := listOne(t, b, line.ID)

	// Written after the List: the entry is gone, ApplyListed reads again.
	changed := line
	changed.CallerID = "Bob"
	if err := b.Apply(t.Context(), changed); err != nil {
		t.Fatal(err)
	}
	gets := objectGets(b)
	if err := b.ApplyListed(t.Context(), line, held); err != nil {
		t.Fatal(err)
	}
	if objectGets(b) == gets {
		t.Error("ApplyListed after a write used what List read")
	}
	if ep := mustObject(t, s, "endpoint", endpointName(line)); ep["callerid"] != `"Alice Martin" <100>` {
		t.Errorf("callerid = %q", ep["callerid"])
	}

	// Asterisk restarted after the List (memory wizard): everything is
	// pushed again in full, marker and auth link included.
	held = listOne(t, b, line.ID)
	drain(b.Resync())
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	<-b.Resync()
	waitFor(t, "reconnected", b.Connected)
	stale := line
	stale.CallerID = "Carol"
	if err := b.ApplyListed(t.Context(), stale, held); err != nil {
		t.Fatal(err)
	}
	if h := listOne(t, b, line.ID); h == nil || !pbx.SameConfig(stale, *h) {
		t.Errorf("after a restart: %+v", h)
	}

	// Used once only.
	held = listOne(t, b, line.ID)
	if err := b.ApplyListed(t.Context(), line, held); err != nil {
		t.Fatal(err)
	}
	gets = objectGets(b)
	if err := b.ApplyListed(t.Context(), line, held); err != nil {
		t.Fatal(err)
	}
	if objectGets(b) == gets {
		t.Error("what List read was used twice")
	}

	// A line the List did not report whose endpoint name is taken by a
	// hand-made endpoint: read, and refused.
	other := pbxtest.NewLine()
	other.Username = "reception"
	if err := s.Seed("endpoint", endpointName(other), map[string]string{"context": "default"}); err != nil {
		t.Fatal(err)
	}
	listOne(t, b, other.ID)
	if err := b.ApplyListed(t.Context(), other, nil); !errors.Is(err, errForeign) {
		t.Errorf("ApplyListed over a hand-made endpoint = %v", err)
	}
}
