package provisioning_test

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxd/pbxd/pbx"
	"github.com/pbxd/pbxd/provisioning"
)

// fakeSplit is a backend of two nodes, n1 (the default) and n2.
type fakeSplit struct{ n1, n2 *fakePBX }

func (f fakeSplit) Split() []pbx.Node {
	return []pbx.Node{{Name: "n1", Default: true, Backend: f.n1}, {Name: "n2", Backend: f.n2}}
}

// sharded builds a sharded reconciler (one instance) over nodes.
func sharded(b bundle, nodes fakeSplit, instance string, ttl time.Duration) (*provisioning.Reconciler, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	return b.svc.NewShardedReconciler(nodes, provisioning.ReconcilerOptions{Concurrency: 4, ResyncInterval: time.Hour,
		RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond, Registry: reg, Logger: slog.New(slog.DiscardHandler)},
		provisioning.ShardOptions{Instance: instance, LeaseTTL: ttl}), reg
}

// runStoppable runs rec until the returned function is called.
func runStoppable(t *testing.T, rec *provisioning.Reconciler) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- rec.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("reconciler: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// dbErrors sums pbxd_reconcile_errors_total{reason="database"} over nodes.
func dbErrors(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "pbxd_reconcile_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "reason" && lp.GetValue() == "database" {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// Two instances share two nodes, one each; each node's lines reach that
// node only (accounts naming no node go to the default one). When one
// instance stops, the other takes its node.
func TestShardsShareNodes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	nodes := fakeSplit{newFake(), newFake()}
	a, _ := sharded(b, nodes, "a", 400*time.Millisecond)
	c, _ := sharded(b, nodes, "c", 400*time.Millisecond)
	run(t, a)
	stopC := runStoppable(t, c)
	eventually(t, "one node each", func() bool { return len(a.Owned()) == 1 && len(c.Owned()) == 1 })
	if all := append(a.Owned(), c.Owned()...); slices.Contains(all, "n1") != slices.Contains(all, "n2") || all[0] == all[1] {
		t.Fatalf("owned %v and %v", a.Owned(), c.Owned())
	}
	b.svc.SetNodes([]provisioning.Node{{Name: "n1"}, {Name: "n2"}}) // as the Asterisk backend's configuration does
	other, err := b.svc.CreateAccount(t.Context(), "test", provisioning.NewAccount{Name: "Other", SIPDomain: "other.example.net", Currency: "EUR",
		Timezone: "Europe/Paris", PaymentMode: "invoice", SeatPreference: "auto_purchase", ExtFirst: 100, ExtLast: 999, PBXNode: "n2"})
	if err != nil {
		t.Fatal(err)
	}
	b.order(t, 2) // the default node's account
	b2 := b
	b2.acct = other.ID
	b2.order(t, 3)
	eventually(t, "2 lines on n1, 3 on n2", func() bool { return len(nodes.n1.snapshot()) == 2 && len(nodes.n2.snapshot()) == 3 })

	if _, err := c.ApplyPending(t.Context()); err != nil { // the nodes c holds, nothing pending
		t.Fatal(err)
	}
	stopC()
	eventually(t, "a to own both nodes", func() bool { return slices.Equal(a.Owned(), []string{"n1", "n2"}) })
	b2.order(t, 4)
	eventually(t, "4 lines on n2", func() bool { return len(nodes.n2.snapshot()) == 4 })
	if n := len(nodes.n1.snapshot()); n != 2 {
		t.Fatalf("%d lines on n1, want 2", n)
	}
}

// An instance whose lease was taken meanwhile (it has not noticed yet: its
// next renewal is far off) commits nothing: the line it pushed stays
// pending in the database, for the new owner to apply.
func TestFencedWritesCommitNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	nodes := fakeSplit{newFake(), newFake()}
	a, reg := sharded(b, nodes, "a", time.Minute) // renews every 15 s
	run(t, a)
	eventually(t, "a to own both nodes", func() bool { return len(a.Owned()) == 2 })
	pool := b.pool
	if _, err := pool.Exec(t.Context(), `UPDATE node_leases SET owner = 'thief', epoch = epoch + 1`); err != nil {
		t.Fatal(err)
	}
	b.order(t, 1)
	eventually(t, "the line pushed by the fenced instance", func() bool { return len(nodes.n1.snapshot()) == 1 })
	eventually(t, "the fenced record of the apply to fail", func() bool { return dbErrors(t, reg) >= 1 })
	var pending int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM lines WHERE revision > applied_revision`).Scan(&pending); err != nil {
		t.Fatal(err)
	}
	if pending != 1 {
		t.Fatalf("%d lines pending, want 1: a fenced instance recorded its apply", pending)
	}
}
