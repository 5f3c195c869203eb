// Package pbxtest is the conformance suite every pbx.Backend must pass, in the
// style of river's riverdrivertest: one exported function, Exercise, that a
// backend's own test calls with a constructor for a fresh, isolated backend.
//
// The built-in registrar runs it with real REGISTER requests; the Asterisk
// backend runs it against the ARI test server, whose hooks emit the events a
// real Asterisk would.
package pbxtest

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pbxd/pbxd/pbx"
)

// Harness is one backend under test plus the hooks the suite needs to drive
// it from the phone's side.
type Harness struct {
	// Backend is the backend under test, already started (its Run loop, if
	// any, running until the test ends).
	Backend pbx.Backend

	// Register makes a phone register line from contactURI, as a real phone
	// would: the built-in registrar sends a REGISTER with digest auth, the
	// Asterisk harness asks the ARI test server to emit the events Asterisk
	// emits. It fails t if the registration is refused.
	Register func(t *testing.T, line pbx.LineConfig, contactURI string)

	// Unregister removes that binding again (REGISTER with Expires: 0, or
	// the ARI "Removed" events). Nil skips the unregistration checks.
	Unregister func(t *testing.T, line pbx.LineConfig, contactURI string)

	// Restart makes the PBX restart (forgetting what it held, as Asterisk
	// with the memory wizard does). Nil skips the Resyncer check.
	Restart func(t *testing.T)

	// Timeout bounds every wait of the suite (connection, events). Zero
	// means 10 seconds.
	Timeout time.Duration
}

// Exercise runs the conformance suite. newBackend is called once per subtest
// and must return an isolated backend (its own ARI server, database or
// listener), cleaned up through t.Cleanup. Subtests run in parallel, but
// for Resyncer's, which restarts the PBX and runs alone.
func Exercise(t *testing.T, newBackend func(t *testing.T) Harness) {
	t.Helper()

	alone := func(t *testing.T) (Harness, context.Context) {
		t.Helper()
		h := newBackend(t)
		if h.Timeout == 0 {
			h.Timeout = 10 * time.Second
		}
		ctx, cancel := context.WithTimeout(t.Context(), 4*h.Timeout)
		t.Cleanup(cancel)
		waitConnected(t, h)
		return h, ctx
	}
	setup := func(t *testing.T) (Harness, context.Context) {
		t.Helper()
		t.Parallel()
		return alone(t)
	}

	t.Run("Name", func(t *testing.T) {
		h, _ := setup(t)
		if h.Backend.Name() == "" {
			t.Error("Name() is empty")
		}
	})

	t.Run("Connected", func(t *testing.T) {
		h, _ := setup(t)
		if !h.Backend.Connected() {
			t.Error("Connected() = false")
		}
	})

	exerciseApply(t, setup)
	exerciseRemove(t, setup)
	exerciseLineStates(t, setup)
	exerciseCapabilities(t, setup)
	exerciseRegistration(t, setup)

	// Alone, before the parallel subtests resume (they wait in
	// t.Parallel until Exercise returns): it restarts the PBX, which the
	// other subtests share when it is a real Asterisk.
	exerciseResync(t, alone)
}

// exerciseApply checks that Apply creates a line as configured, does
// nothing more when repeated, and updates each field that changes.
func exerciseApply(t *testing.T, setup func(t *testing.T) (Harness, context.Context)) {
	t.Run("ApplyThenList", func(t *testing.T) {
		h, ctx := setup(t)
		line := NewLine()
		mustApply(ctx, t, h, line)
		held := mustFind(ctx, t, h, line.ID)
		assertSame(t, line, held)
	})

	t.Run("ApplyIsIdempotent", func(t *testing.T) {
		h, ctx := setup(t)
		line := NewLine()
		for range 3 {
			mustApply(ctx, t, h, line)
		}
		lines := mustList(ctx, t, h)
		n := 0
		for _, l := range lines {
			if l.ID == line.ID {
				n++
				assertSame(t, line, l)
			}
		}
		if n != 1 {
			t.Fatalf("List has %d entries for line %s, want 1", n, line.ID)
		}
	})

	t.Run("ApplyUpdatesChangedFields", func(t *testing.T) {
		h, ctx := setup(t)
		line := NewLine()
		mustApply(ctx, t, h, line)

		changes := []struct {
			name   string
			change func(*pbx.LineConfig)
		}{
			{"CallerID", func(l *pbx.LineConfig) { l.CallerID = "Reception Desk" }},
			{"Context", func(l *pbx.LineConfig) { l.Context = "pkg-world" }},
			{"Password", func(l *pbx.LineConfig) { setPassword(l, "N3wPassw0rdXyzKq") }},
			{"MaxContacts", func(l *pbx.LineConfig) { l.MaxContacts = 5 }},
			{"Extension", func(l *pbx.LineConfig) { l.Extension = "205" }},
		}
		for _, c := range changes {
			c.change(&line)
			line.Revision++
			mustApply(ctx, t, h, line)
			held := mustFind(ctx, t, h, line.ID)
			if !pbx.SameConfig(line, held) {
				t.Errorf("after changing %s: held %s, want %s", c.name, describe(held), describe(line))
			}
		}
	})
}

// exerciseRemove checks that Remove deletes one line and only that one,
// and that removing what is absent is no error.
func exerciseRemove(t *testing.T, setup func(t *testing.T) (Harness, context.Context)) {
	t.Run("RemoveThenList", func(t *testing.T) {
		h, ctx := setup(t)
		keep, gone := NewLine(), NewLine()
		mustApply(ctx, t, h, keep)
		mustApply(ctx, t, h, gone)
		if err := h.Backend.Remove(ctx, gone.ID); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		lines := mustList(ctx, t, h)
		if find(lines, gone.ID) != nil {
			t.Errorf("List still shows removed line %s", gone.ID)
		}
		if l := find(lines, keep.ID); l == nil {
			t.Errorf("List lost line %s that was not removed", keep.ID)
		} else {
			assertSame(t, keep, *l)
		}
		if err := h.Backend.Remove(ctx, gone.ID); err != nil {
			t.Errorf("second Remove: %v, want nil", err)
		}
	})

	t.Run("RemoveAbsentIsNil", func(t *testing.T) {
		h, ctx := setup(t)
		if err := h.Backend.Remove(ctx, NewLine().ID); err != nil {
			t.Errorf("Remove(absent) = %v, want nil", err)
		}
	})

	t.Run("ListEmpty", func(t *testing.T) {
		h, ctx := setup(t)
		if lines := mustList(ctx, t, h); len(lines) != 0 {
			t.Errorf("fresh backend lists %d lines, want 0", len(lines))
		}
	})
}

// exerciseLineStates checks lines that share a username across domains,
// and suspension and resumption.
func exerciseLineStates(t *testing.T, setup func(t *testing.T) (Harness, context.Context)) {
	t.Run("SameUsernameInTwoDomains", func(t *testing.T) {
		h, ctx := setup(t)
		a, b := NewLine(), NewLine()
		b.Username, b.Extension = a.Username, a.Extension
		setPassword(&b, "Other0therPassw0rd")
		mustApply(ctx, t, h, a)
		mustApply(ctx, t, h, b)
		assertSame(t, a, mustFind(ctx, t, h, a.ID))
		assertSame(t, b, mustFind(ctx, t, h, b.ID))
	})

	t.Run("Suspend", func(t *testing.T) {
		h, ctx := setup(t)
		line := NewLine()
		mustApply(ctx, t, h, line)

		line.Suspended = true
		line.Revision++
		mustApply(ctx, t, h, line)
		held := mustFind(ctx, t, h, line.ID)
		if !held.Suspended {
			t.Errorf("suspended line listed with Suspended=false")
		}
		assertSame(t, line, held)

		// Suspending twice changes nothing.
		mustApply(ctx, t, h, line)
		assertSame(t, line, mustFind(ctx, t, h, line.ID))

		line.Suspended = false
		line.Revision++
		mustApply(ctx, t, h, line)
		held = mustFind(ctx, t, h, line.ID)
		if held.Suspended {
			t.Errorf("resumed line listed with Suspended=true")
		}
		assertSame(t, line, held)
	})

	t.Run("ApplySuspendedFromScratch", func(t *testing.T) {
		h, ctx := setup(t)
		line := NewLine()
		line.Suspended = true
		mustApply(ctx, t, h, line)
		assertSame(t, line, mustFind(ctx, t, h, line.ID))
	})
}

// exerciseRegistration checks the registration events of phones
// registering and unregistering, through the harness's hooks.
func exerciseRegistration(t *testing.T, setup func(t *testing.T) (Harness, context.Context)) {
	t.Run("RegistrationEvents", func(t *testing.T) {
		h, ctx := setup(t)
		if h.Register == nil {
			t.Skip("harness has no Register hook")
		}
		line := NewLine()
		mustApply(ctx, t, h, line)
		uri := "sip:" + line.Username + "@192.0.2.10:5062;transport=udp"
		h.Register(t, line, uri)
		waitEvent(t, h, line.ID, func(ev pbx.RegistrationEvent) bool {
			return hasContact(ev, uri)
		}, "registered with contact "+uri)

		// A second phone on the same line: the event carries both contacts.
		uri2 := "sip:" + line.Username + "@198.51.100.7:5060"
		h.Register(t, line, uri2)
		waitEvent(t, h, line.ID, func(ev pbx.RegistrationEvent) bool {
			return hasContact(ev, uri) && hasContact(ev, uri2)
		}, "registered with both contacts")

		if h.Unregister == nil {
			return
		}
		h.Unregister(t, line, uri)
		waitEvent(t, h, line.ID, func(ev pbx.RegistrationEvent) bool {
			return !hasContact(ev, uri) && hasContact(ev, uri2)
		}, "first contact gone, second kept")
		h.Unregister(t, line, uri2)
		waitEvent(t, h, line.ID, func(ev pbx.RegistrationEvent) bool {
			return !ev.Registered()
		}, "no contact left")
	})
}

// exerciseCapabilities checks the optional capabilities of pbx a backend
// has; the reconciler relies on each as it does on Backend.
func exerciseCapabilities(t *testing.T, setup func(t *testing.T) (Harness, context.Context)) {
	t.Run("Preparer", func(t *testing.T) {
		h, ctx := setup(t)
		p, ok := h.Backend.(pbx.Preparer)
		if !ok {
			t.Skip("backend is not a pbx.Preparer")
		}
		lines := []pbx.LineConfig{NewLine(), NewLine(), NewLine()}
		if err := p.Prepare(ctx, lines); err != nil {
			t.Fatalf("Prepare: %v", err)
		}
		// Prepare is a hint: the applies that follow complete each line.
		for _, l := range lines {
			mustApply(ctx, t, h, l)
		}
		for _, l := range lines {
			assertSame(t, l, mustFind(ctx, t, h, l.ID))
		}
	})

	t.Run("NodeRemover", func(t *testing.T) {
		h, ctx := setup(t)
		nr, ok := h.Backend.(pbx.NodeRemover)
		if !ok {
			t.Skip("backend is not a pbx.NodeRemover")
		}
		gone, kept := NewLine(), NewLine()
		mustApply(ctx, t, h, gone)
		mustApply(ctx, t, h, kept)
		held := mustFind(ctx, t, h, gone.ID)
		if err := nr.RemoveFrom(ctx, held.Node, gone.ID); err != nil {
			t.Fatalf("RemoveFrom(%q, %s): %v", held.Node, gone.ID, err)
		}
		if l := find(mustList(ctx, t, h), gone.ID); l != nil {
			t.Fatalf("List still shows line %s removed from its node", gone.ID)
		}
		assertSame(t, kept, mustFind(ctx, t, h, kept.ID))
		// Removing an absent line is not an error.
		if err := nr.RemoveFrom(ctx, held.Node, gone.ID); err != nil {
			t.Fatalf("RemoveFrom(absent line): %v", err)
		}
	})

	t.Run("ListedApplier", func(t *testing.T) {
		h, ctx := setup(t)
		la, ok := h.Backend.(pbx.ListedApplier)
		if !ok {
			t.Skip("backend is not a pbx.ListedApplier")
		}
		changed, fresh := NewLine(), NewLine()
		mustApply(ctx, t, h, changed)
		held := mustFind(ctx, t, h, changed.ID) // the List of a resync
		changed.CallerID, changed.MaxContacts = "Changed Since List", 3
		changed.Revision++
		if err := la.ApplyListed(ctx, changed, &held); err != nil {
			t.Fatalf("ApplyListed(changed line): %v", err)
		}
		// A line the List did not report is created.
		if err := la.ApplyListed(ctx, fresh, nil); err != nil {
			t.Fatalf("ApplyListed(unlisted line): %v", err)
		}
		assertSame(t, changed, mustFind(ctx, t, h, changed.ID))
		assertSame(t, fresh, mustFind(ctx, t, h, fresh.ID))
	})
}

// exerciseResync checks that a Resyncer signals a resync after the PBX
// restarts (with the harness's Restart hook).
func exerciseResync(t *testing.T, setup func(t *testing.T) (Harness, context.Context)) {
	t.Run("Resyncer", func(t *testing.T) {
		h, ctx := setup(t)
		rs, ok := h.Backend.(pbx.Resyncer)
		if !ok {
			t.Skip("backend is not a pbx.Resyncer")
		}
		ch := rs.Resync()
		if ch == nil {
			t.Fatal("Resync() is nil")
		}
		if h.Restart == nil {
			t.Skip("harness has no Restart hook")
		}
		mustApply(ctx, t, h, NewLine())
		for drained := false; !drained; { // the signals of the first connection
			select {
			case <-ch:
			default:
				drained = true
			}
		}
		h.Restart(t)
		select {
		case <-ch:
		case <-time.After(h.Timeout):
			t.Fatalf("no resync signal within %v of a restart", h.Timeout)
		}
	})
}

// NewLine returns a valid, unique line config (a random id and SIP domain, a
// 16-character password with its HA1 values), as provisioning would build it.
func NewLine() pbx.LineConfig {
	id := uuid()
	l := pbx.LineConfig{
		ID:          id,
		Domain:      "t" + id[:8] + ".voip.example.net",
		Username:    "100",
		Extension:   "100",
		Context:     "pkg-fr-fixed-mobile",
		CallerID:    "Alice Martin",
		MaxContacts: 2,
		Revision:    1,
	}
	setPassword(&l, "Kx7pQm4Rt9Wz2Hv8")
	return l
}

func setPassword(l *pbx.LineConfig, pw string) {
	l.Password = pw
	a1 := l.Username + ":" + l.Domain + ":" + pw
	m := md5.Sum([]byte(a1))
	s := sha256.Sum256([]byte(a1))
	l.HA1MD5 = hex.EncodeToString(m[:])
	l.HA1SHA256 = hex.EncodeToString(s[:])
}

func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func waitConnected(t *testing.T, h Harness) {
	t.Helper()
	deadline := time.Now().Add(h.Timeout)
	for !h.Backend.Connected() {
		if time.Now().After(deadline) {
			t.Fatalf("backend not connected after %v", h.Timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustApply(ctx context.Context, t *testing.T, h Harness, line pbx.LineConfig) {
	t.Helper()
	if err := h.Backend.Apply(ctx, line); err != nil {
		t.Fatalf("Apply(%s): %v", line.ID, err)
	}
}

func mustList(ctx context.Context, t *testing.T, h Harness) []pbx.LineConfig {
	t.Helper()
	lines, err := h.Backend.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return lines
}

func mustFind(ctx context.Context, t *testing.T, h Harness, id string) pbx.LineConfig {
	t.Helper()
	l := find(mustList(ctx, t, h), id)
	if l == nil {
		t.Fatalf("List does not show line %s", id)
	}
	return *l
}

func find(lines []pbx.LineConfig, id string) *pbx.LineConfig {
	for i := range lines {
		if lines[i].ID == id {
			return &lines[i]
		}
	}
	return nil
}

func assertSame(t *testing.T, want, held pbx.LineConfig) {
	t.Helper()
	if !pbx.SameConfig(want, held) {
		t.Errorf("held config differs:\n held %s\n want %s", describe(held), describe(want))
	}
}

// describe renders a line for failure messages without its secrets.
func describe(l pbx.LineConfig) string {
	pw := "unset"
	if l.Password != "" {
		pw = fmt.Sprintf("set(len %d, sha256 %x)", len(l.Password), sha256.Sum256([]byte(l.Password)))
		pw = pw[:40] + "…)"
	}
	return fmt.Sprintf("{ID:%s Domain:%s Username:%s Extension:%s Context:%s CallerID:%q Password:%s Suspended:%v MaxContacts:%d}",
		l.ID, l.Domain, l.Username, l.Extension, l.Context, l.CallerID, pw, l.Suspended, l.MaxContacts)
}

func hasContact(ev pbx.RegistrationEvent, uri string) bool {
	return slices.ContainsFunc(ev.Contacts, func(c pbx.Contact) bool { return c.URI == uri })
}

// waitEvent reads Events() until an event for lineID satisfies ok. Events of
// other lines and intermediate states are skipped: events carry full sets, so
// only the latest one matters.
func waitEvent(t *testing.T, h Harness, lineID string, ok func(pbx.RegistrationEvent) bool, what string) {
	t.Helper()
	timer := time.NewTimer(h.Timeout)
	defer timer.Stop()
	var last *pbx.RegistrationEvent
	for {
		select {
		case ev, open := <-h.Backend.Events():
			if !open {
				t.Fatalf("Events() closed while waiting for %s", what)
			}
			if ev.LineID != lineID {
				continue
			}
			if ev.At.IsZero() {
				t.Errorf("event for %s has a zero At", lineID)
			}
			if ok(ev) {
				return
			}
			last = &ev
		case <-timer.C:
			if last != nil {
				t.Fatalf("no event %q for line %s within %v; last: %+v", what, lineID, h.Timeout, last.Contacts)
			}
			t.Fatalf("no event %q for line %s within %v", what, lineID, h.Timeout)
		}
	}
}
