package provisioning_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxd/pbxd/internal/clock"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/storetest"
	"github.com/pbxd/pbxd/pbx"
	"github.com/pbxd/pbxd/provisioning"
)

// fakePBX is an in-memory backend whose failures tests switch on.
type fakePBX struct {
	mu      sync.Mutex
	lines   map[string]pbx.LineConfig
	failing bool
	applies int
	events  chan pbx.RegistrationEvent
}

func newFake() *fakePBX {
	return &fakePBX{lines: map[string]pbx.LineConfig{}, events: make(chan pbx.RegistrationEvent, 16)}
}

func (f *fakePBX) Name() string { return "fake" }
func (f *fakePBX) Apply(_ context.Context, l pbx.LineConfig) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applies++
	if f.failing {
		return fmt.Errorf("fake: %w", pbx.ErrUnavailable)
	}
	f.lines[l.ID] = l
	return nil
}
func (f *fakePBX) Remove(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing {
		return fmt.Errorf("fake: %w", pbx.ErrUnavailable)
	}
	delete(f.lines, id)
	return nil
}
func (f *fakePBX) List(context.Context) ([]pbx.LineConfig, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]pbx.LineConfig, 0, len(f.lines))
	for _, l := range f.lines {
		out = append(out, l)
	}
	return out, nil
}
func (f *fakePBX) Events() <-chan pbx.RegistrationEvent { return f.events }
func (f *fakePBX) Connected() bool                      { return true }
func (f *fakePBX) set(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}
func (f *fakePBX) snapshot() map[string]pbx.LineConfig {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[string]pbx.LineConfig{}
	for k, v := range f.lines {
		m[k] = v
	}
	return m
}

type bundle struct {
	svc  *provisioning.Service
	fake *fakePBX
	rec  *provisioning.Reconciler
	reg  *prometheus.Registry
	acct string
	pool *pgxpool.Pool
}

func setup(t testing.TB) bundle { return setupClock(t, clock.Real{}) }

func setupClock(t testing.TB, clk clock.Clock) bundle {
	t.Helper()
	pool := storetest.NewPool(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	reg := prometheus.NewRegistry()
	svc, err := provisioning.New(provisioning.Options{Subscriptions: billingSubscriptions{}, DB: store.NewDB(pool), Clock: clk, SecretKey: key, Logger: slog.New(slog.DiscardHandler), Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := svc.SyncCatalog(ctx, []provisioning.Package{{Code: "world", Name: "World", Kind: "package", PriceMinor: 6990, Currency: "EUR",
		Cycles: []provisioning.Cycle{{Cycle: "monthly"}}, DialContext: "pkg-world"}}); err != nil {
		t.Fatal(err)
	}
	acct, err := svc.CreateAccount(ctx, "test", provisioning.NewAccount{Name: "Acme", SIPDomain: "acme.example.net", Currency: "EUR",
		Timezone: "Europe/Paris", PaymentMode: "invoice", SeatPreference: "auto_purchase", ExtFirst: 100, ExtLast: 999})
	if err != nil {
		t.Fatal(err)
	}
	fake := newFake()
	rec := svc.NewReconciler(fake, provisioning.ReconcilerOptions{Concurrency: 4, ResyncInterval: time.Hour,
		RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond, Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	return bundle{svc: svc, fake: fake, rec: rec, reg: reg, acct: acct.ID, pool: pool}
}

func (b bundle) order(t *testing.T, qty int) provisioning.ConfirmResult {
	t.Helper()
	pv, err := b.svc.PreviewChange(t.Context(), b.acct, provisioning.ChangeRequest{Items: []provisioning.ChangeItem{{Package: "world", Quantity: qty}}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.svc.ConfirmChange(t.Context(), "test", pv.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func run(t *testing.T, rec *provisioning.Reconciler) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rec.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("reconciler: %v", err)
		}
	})
}

// Confirmed lines reach the PBX with their full config; removed ones leave.
func TestReconcilerAppliesChanges(t *testing.T) {
	t.Parallel()
	b := setup(t)
	run(t, b.rec)
	res := b.order(t, 3)
	eventually(t, "3 lines on the PBX", func() bool { return len(b.fake.snapshot()) == 3 })
	for _, l := range b.fake.snapshot() {
		if l.Domain != "acme.example.net" || l.Context != "pkg-world" || len(l.Password) < 16 || l.HA1MD5 == "" || l.Suspended {
			t.Fatalf("line config = %+v", l)
		}
	}
	b.order(t, 1)
	eventually(t, "1 line left", func() bool { return len(b.fake.snapshot()) == 1 })
	if _, ok := b.fake.snapshot()[res.LinesCreated[0].ID]; !ok {
		t.Fatal("the oldest line should stay (the most recently created go first)")
	}
}

// Each line shows when a revision of it was last applied, by the daemon's
// clock: nothing before the first apply, then the time of each apply.
func TestLinesShowAppliedAt(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 16, 10, 0, 0, 0, time.UTC)
	clk := clock.NewTest(t0)
	b := setupClock(t, clk)
	b.order(t, 2)
	appliedAt := func() map[int]*time.Time {
		lines, err := b.svc.Lines(t.Context(), b.acct)
		if err != nil {
			t.Fatal(err)
		}
		out := map[int]*time.Time{}
		for _, l := range lines {
			out[l.Extension] = l.AppliedAt
		}
		return out
	}
	for ext, at := range appliedAt() {
		if at != nil {
			t.Fatalf("line %d applied at %v before the reconciler ran", ext, at)
		}
	}
	run(t, b.rec)
	eventually(t, "2 lines applied", func() bool {
		at := appliedAt()
		return at[100] != nil && at[101] != nil
	})
	for ext, at := range appliedAt() {
		if !at.Equal(t0) {
			t.Errorf("line %d applied at %v, want %v (the daemon's clock)", ext, at, t0)
		}
	}
	if err := clk.Advance(time.Hour); err != nil {
		t.Fatal(err)
	}
	lines, err := b.svc.Lines(t.Context(), b.acct)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.ResetPassword(t.Context(), "test", b.acct, lines[0].ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the changed line applied again", func() bool {
		at := appliedAt()[lines[0].Extension]
		return at != nil && at.Equal(t0.Add(time.Hour))
	})
	if at := appliedAt()[lines[1].Extension]; !at.Equal(t0) {
		t.Errorf("unchanged line applied at %v, want %v", at, t0)
	}
}

// While the PBX fails nothing is lost: changes wait, are retried with
// backoff, and converge once it is back.
func TestReconcilerRetriesUntilThePBXIsBack(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.set(func() { b.fake.failing = true })
	run(t, b.rec)
	b.order(t, 2)
	eventually(t, "retries", func() bool {
		b.fake.mu.Lock()
		defer b.fake.mu.Unlock()
		return b.fake.applies >= 6
	})
	if n := len(b.fake.snapshot()); n != 0 {
		t.Fatalf("a failing PBX holds %d lines", n)
	}
	if v := counter(t, b.reg, "pbxd_reconcile_errors_total", "unavailable"); v < 2 {
		t.Fatalf("errors counted: %v", v)
	}
	b.fake.set(func() { b.fake.failing = false })
	eventually(t, "convergence", func() bool { return len(b.fake.snapshot()) == 2 })
}

// A resync repairs drift: a line deleted or altered behind pbxd's back comes
// back; an orphan pbxd owns is removed.
func TestResyncRepairsDrift(t *testing.T) {
	t.Parallel()
	b := setup(t)
	run(t, b.rec)
	// The start-up resync first: run with the order, it could count the
	// new lines as missing.
	eventually(t, "start-up resync", func() bool { return gauge(t, b.reg, "pbxd_reconcile_last_resync_timestamp_seconds") > 0 })
	res := b.order(t, 3)
	eventually(t, "3 lines", func() bool { return len(b.fake.snapshot()) == 3 })
	gone, altered := res.LinesCreated[0].ID, res.LinesCreated[1].ID
	b.fake.set(func() {
		delete(b.fake.lines, gone)
		l := b.fake.lines[altered]
		l.Context = "hacked"
		b.fake.lines[altered] = l
		b.fake.lines["00000000-0000-0000-0000-000000000001"] = pbx.LineConfig{ID: "00000000-0000-0000-0000-000000000001"}
	})
	if err := b.rec.Resync(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := b.fake.snapshot()
	if len(got) != 3 || got[altered].Context != "pkg-world" {
		t.Fatalf("after resync: %d lines, altered context %q", len(got), got[altered].Context)
	}
	if _, ok := got[gone]; !ok {
		t.Fatal("the deleted line did not come back")
	}
	for _, kind := range []string{"missing", "stale", "orphan"} {
		if v := counter(t, b.reg, "pbxd_reconcile_drift_repaired_total", kind); v != 1 {
			t.Errorf("drift %s counted %v times, want 1", kind, v)
		}
	}
}

// counter reads a labelled counter from the registry.
func counter(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// gauge reads an unlabelled gauge from the registry.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	return firstMetric(t, reg, name).GetGauge().GetValue()
}

// Registration events from the PBX reach the lines view.
func TestRegistrationEventsReachTheLinesView(t *testing.T) {
	t.Parallel()
	b := setup(t)
	run(t, b.rec)
	res := b.order(t, 1)
	id := res.LinesCreated[0].ID
	b.fake.events <- pbx.RegistrationEvent{LineID: id, Contacts: []pbx.Contact{{URI: "sip:100@192.0.2.10:5060", UserAgent: "Yealink"}}, At: time.Now()}
	eventually(t, "registered", func() bool {
		l, err := b.svc.Line(t.Context(), b.acct, id)
		return err == nil && l.Registered && l.Contacts[0].UserAgent == "Yealink"
	})
	b.fake.events <- pbx.RegistrationEvent{LineID: id, At: time.Now()}
	eventually(t, "unregistered", func() bool {
		l, err := b.svc.Line(t.Context(), b.acct, id)
		return err == nil && !l.Registered
	})
}
