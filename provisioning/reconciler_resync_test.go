package provisioning_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pbxd/pbxd/internal/app/apptest"
	"github.com/pbxd/pbxd/pbx"
	"github.com/pbxd/pbxd/provisioning"
)

// firstMetric returns the (first) sample of an unlabelled metric, or an
// empty one if the registry has none.
func firstMetric(t *testing.T, reg *prometheus.Registry, name string) *dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0]
		}
	}
	return &dto.Metric{}
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	return firstMetric(t, reg, name).GetHistogram().GetSampleCount()
}

func plainCounter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	return firstMetric(t, reg, name).GetCounter().GetValue()
}

// The lag histogram measures commit → applied of real changes only: a
// resync that repairs lines applied long ago (Asterisk lost or altered
// them) observes nothing into it and counts no applied revision.
func TestResyncRepairsAreNotLag(t *testing.T) {
	t.Parallel()
	b := setup(t)
	run(t, b.rec)
	eventually(t, "start-up resync", func() bool { return gauge(t, b.reg, "pbxd_reconcile_last_resync_timestamp_seconds") > 0 })
	res := b.order(t, 3)
	eventually(t, "3 lines", func() bool { return plainCounter(t, b.reg, "pbxd_reconcile_applied_total") == 3 })
	if n := histogramCount(t, b.reg, "pbxd_reconcile_lag_seconds"); n != 3 {
		t.Fatalf("lag observations after 3 new lines: %d, want 3", n)
	}
	gone, altered := res.LinesCreated[0].ID, res.LinesCreated[1].ID
	b.fake.set(func() {
		delete(b.fake.lines, gone)
		l := b.fake.lines[altered]
		l.Context = "hacked"
		b.fake.lines[altered] = l
	})
	for range 2 { // the repair, then a resync with nothing to repair
		if err := b.rec.Resync(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.fake.snapshot(); len(got) != 3 || got[altered].Context != "pkg-world" {
		t.Fatalf("not repaired: %d lines, context %q", len(got), got[altered].Context)
	}
	if n := histogramCount(t, b.reg, "pbxd_reconcile_lag_seconds"); n != 3 {
		t.Errorf("lag observations after repairs: %d, want still 3", n)
	}
	if v := plainCounter(t, b.reg, "pbxd_reconcile_applied_total"); v != 3 {
		t.Errorf("applied revisions after repairs: %v, want still 3", v)
	}
}

// signallingPBX is a fake backend that, like the Asterisk backend, asks for
// a full resync when it connects, and counts its Lists.
type signallingPBX struct {
	*fakePBX
	resync chan struct{}
	lists  atomic.Int32
}

func (s *signallingPBX) Resync() <-chan struct{} { return s.resync }

func (s *signallingPBX) List(ctx context.Context) ([]pbx.LineConfig, error) {
	s.lists.Add(1)
	return s.fakePBX.List(ctx)
}

// pbxd runs one full resync at start, not one of its own plus the one the
// backend asks for when it connects.
func TestOneResyncAtStart(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sp := &signallingPBX{fakePBX: b.fake, resync: make(chan struct{}, 1)}
	sp.resync <- struct{}{} // connected
	rec := b.svc.NewReconciler(sp, provisioning.ReconcilerOptions{Concurrency: 4, ResyncInterval: time.Hour,
		Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	run(t, rec)
	eventually(t, "the start-up resync", func() bool { return sp.lists.Load() >= 1 })
	time.Sleep(300 * time.Millisecond)
	if n := sp.lists.Load(); n != 1 {
		t.Errorf("%d full resyncs at start, want 1", n)
	}
}

// While the PBX is unreachable, failing lines are not logged one WARN
// each (the backend logs the outage once); they are counted.
func TestOutageDoesNotFloodTheLog(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var logs apptest.LogBuffer
	b.fake.set(func() { b.fake.failing = true })
	rec := b.svc.NewReconciler(b.fake, provisioning.ReconcilerOptions{Concurrency: 4, ResyncInterval: time.Hour,
		RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond, Registry: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	run(t, rec)
	b.order(t, 5)
	eventually(t, "retries", func() bool {
		b.fake.mu.Lock()
		defer b.fake.mu.Unlock()
		return b.fake.applies >= 15
	})
	if n := strings.Count(logs.String(), "apply line failed"); n != 0 {
		t.Errorf("%d log lines for failed applies during an outage, want 0:\n%s", n, logs.String())
	}
}

// preparingPBX records the batches Prepare was given and whether any of
// their lines had been applied already.
type preparingPBX struct {
	*fakePBX
	mu       sync.Mutex
	prepared [][]string
	late     bool // a prepared line was applied before Prepare
}

func (p *preparingPBX) Prepare(_ context.Context, lines []pbx.LineConfig) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ids []string
	held := p.snapshot()
	for _, l := range lines {
		ids = append(ids, l.ID)
		if _, ok := held[l.ID]; ok {
			p.late = true
		}
	}
	p.prepared = append(p.prepared, ids)
	return nil
}

// A big batch of new lines is prepared (Asterisk: AORs before endpoints)
// before any is applied; a small one is not.
func TestBigNewBatchesArePrepared(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pp := &preparingPBX{fakePBX: b.fake}
	rec := b.svc.NewReconciler(pp, provisioning.ReconcilerOptions{Concurrency: 4, ResyncInterval: time.Hour,
		Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	run(t, rec)
	b.order(t, 5)
	eventually(t, "5 lines", func() bool { return len(b.fake.snapshot()) == 5 })
	b.order(t, 125)
	eventually(t, "125 lines", func() bool { return len(b.fake.snapshot()) == 125 })
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if len(pp.prepared) != 1 || len(pp.prepared[0]) != 120 || pp.late {
		n := 0
		if len(pp.prepared) > 0 {
			n = len(pp.prepared[0])
		}
		t.Errorf("prepared %d batches (first of %d lines), late %v; want one of the 120 new lines, before their applies", len(pp.prepared), n, pp.late)
	}
}

// An order bigger than one batch (1,000 lines) is prepared whole before
// any of its lines is applied: Asterisk then creates every AOR before any
// endpoint, not batch by batch.
func TestBigOrdersArePreparedWhole(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acct, err := b.svc.CreateAccount(t.Context(), "test", provisioning.NewAccount{Name: "Big", SIPDomain: "big.example.net", Currency: "EUR",
		Timezone: "Europe/Paris", PaymentMode: "invoice", SeatPreference: "auto_purchase", ExtFirst: 10000, ExtLast: 19999})
	if err != nil {
		t.Fatal(err)
	}
	b.acct = acct.ID
	b.order(t, 2500)
	pp := &preparingPBX{fakePBX: b.fake}
	rec := b.svc.NewReconciler(pp, provisioning.ReconcilerOptions{Concurrency: 4, ResyncInterval: time.Hour,
		Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	run(t, rec)
	eventually(t, "2,500 lines", func() bool { return len(b.fake.snapshot()) == 2500 })
	pp.mu.Lock()
	defer pp.mu.Unlock()
	var sizes []int
	for _, p := range pp.prepared {
		sizes = append(sizes, len(p))
	}
	if len(sizes) != 1 || sizes[0] != 2500 || pp.late {
		t.Errorf("prepared batches of %v lines, late %v; want one Prepare of all 2,500 before any apply", sizes, pp.late)
	}
}
