package provisioning_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxd/pbxd/provisioning"
)

// Two instances with in-process backends (built-in registrars) on one
// database: each applies every change to its own, although the first to
// apply marks the line applied for both; each applies each revision once.
func TestLocalBackendsEachApplyEveryChange(t *testing.T) {
	t.Parallel()
	b := setup(t)
	local := func(reg *prometheus.Registry) provisioning.ReconcilerOptions {
		return provisioning.ReconcilerOptions{Concurrency: 4, ResyncInterval: time.Hour, RetryMin: 20 * time.Millisecond,
			RetryMax: 100 * time.Millisecond, Local: true, Registry: reg, Logger: slog.New(slog.DiscardHandler)}
	}
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	fakeA, fakeB := newFake(), newFake()
	run(t, b.svc.NewReconciler(fakeA, local(regA)))
	run(t, b.svc.NewReconciler(fakeB, local(regB)))
	time.Sleep(200 * time.Millisecond) // both past their start-up resync
	b.order(t, 3)
	eventually(t, "3 lines on both", func() bool { return len(fakeA.snapshot()) == 3 && len(fakeB.snapshot()) == 3 })
	b.order(t, 1)
	eventually(t, "1 line left on both", func() bool { return len(fakeA.snapshot()) == 1 && len(fakeB.snapshot()) == 1 })
	time.Sleep(300 * time.Millisecond) // later wake-ups must not apply again
	for name, f := range map[string]*fakePBX{"A": fakeA, "B": fakeB} {
		f.mu.Lock()
		n := f.applies
		f.mu.Unlock()
		if n != 3 {
			t.Errorf("instance %s applied %d times, want 3 (one per line created)", name, n)
		}
	}
}
