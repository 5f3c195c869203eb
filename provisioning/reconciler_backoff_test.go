package provisioning_test

import (
	"context"
	"crypto/rand"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxd/pbxd/internal/clock"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/provisioning"
)

// warnCounter counts WARN records by message.
type warnCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (w *warnCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnCounter) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n[r.Message]++
	return nil
}
func (w *warnCounter) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnCounter) WithGroup(string) slog.Handler      { return w }

// With the database gone, the reconciler retries with a growing delay
// (1 s, 2 s, 4 s …): a handful of warnings in 6 s, where a fixed one-second
// retry logged about twenty (LISTEN, apply and resync, each every second).
func TestReconcilerBacksOffWhileTheDatabaseIsDown(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), "postgres://postgres@127.0.0.1:1/gone?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	warns := &warnCounter{n: map[string]int{}}
	log := slog.New(warns)
	svc, err := provisioning.New(provisioning.Options{Subscriptions: billingSubscriptions{}, DB: store.NewDB(pool), Clock: clock.Real{}, SecretKey: key, Logger: log, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	rec := svc.NewReconciler(newFake(), provisioning.ReconcilerOptions{ResyncInterval: time.Hour, Registry: prometheus.NewRegistry(), Logger: log})
	ctx, cancel := context.WithTimeout(context.Background(), 6500*time.Millisecond)
	defer cancel()
	if err := rec.Run(ctx); err != nil {
		t.Fatal(err)
	}
	warns.mu.Lock()
	defer warns.mu.Unlock()
	total := 0
	for msg, n := range warns.n {
		total += n
		// Attempts at 0, 1, 3 and 7 s: at most 4 in 6.5 s.
		if n > 4 {
			t.Errorf("%q logged %d times in 6.5 s: no backoff", msg, n)
		}
	}
	if total == 0 || !strings.Contains(strings.Join(keys(warns.n), ","), "LISTEN") {
		t.Errorf("the lost database was not reported: %v", warns.n)
	}
}

func keys(m map[string]int) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
