package scheduler_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxd/pbxd/internal/clock"
	"github.com/pbxd/pbxd/internal/scheduler"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/storetest"
)

func newScheduler(t *testing.T, pool *pgxpool.Pool, check time.Duration, job scheduler.Job) *scheduler.Scheduler {
	t.Helper()
	s, err := scheduler.New(store.NewDB(pool), clock.NewTest(time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC)), slog.New(slog.DiscardHandler), prometheus.NewRegistry(), job)
	if err != nil {
		t.Fatal(err)
	}
	s.CheckInterval = check
	return s
}

// mark records, in a transaction fenced like a job's, that who ran there,
// at the database's clock; with hold, it closes fenced once past the fence
// and waits for hold before committing.
func mark(ctx context.Context, pool *pgxpool.Pool, who string, fenced chan<- struct{}, hold <-chan struct{}) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := store.CheckFence(ctx, tx); err != nil {
			return err
		}
		if hold != nil {
			close(fenced)
			<-hold
		}
		_, err := tx.Exec(ctx, `INSERT INTO fence_log (who, at) VALUES ($1, clock_timestamp())`, who)
		return err
	})
}

// The leader's lock session is cut (pg_terminate_backend) while one of its
// job's transactions is in flight: the next leader starts only after that
// transaction has committed, and from then on the old leader commits
// nothing (its transactions fail the fence) and its run ends in error.
func TestCutLockSessionFencesTheOldLeader(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := storetest.NewPool(t)
	if _, err := pool.Exec(ctx, `CREATE TABLE fence_log (who text, at timestamptz)`); err != nil {
		t.Fatal(err)
	}
	const name = "test.fenced"
	holding, release := make(chan struct{}), make(chan struct{})
	var afterCut error
	// The old leader does not check its session in time (an hour): the
	// fence alone must stop it.
	a := newScheduler(t, pool, time.Hour, scheduler.Job{Name: name, Schedule: "0 0 1 1 *", Run: func(ctx context.Context, _ time.Time) error {
		if err := mark(ctx, pool, "a-before", holding, release); err != nil {
			return err
		}
		for start := time.Now(); ctx.Err() == nil && time.Since(start) < 30*time.Second; { // keeps working until fenced
			if afterCut = mark(ctx, pool, "a-after", nil, nil); afterCut != nil {
				return afterCut
			}
			time.Sleep(10 * time.Millisecond)
		}
		return errors.New("never fenced")
	}})
	b := newScheduler(t, pool, 100*time.Millisecond, scheduler.Job{Name: name, Schedule: "0 0 1 1 *", Run: func(ctx context.Context, _ time.Time) error {
		return mark(ctx, pool, "b", nil, nil)
	}})
	aDone := make(chan error, 1)
	go func() { aDone <- a.RunNow(ctx, name) }()
	<-holding
	var cut int
	if err := pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&cut); err != nil || cut != 1 {
		t.Fatalf("cut %d lock sessions: %v", cut, err)
	}
	for { // pg_terminate_backend only signals the session
		var held int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&held); err != nil {
			t.Fatal(err)
		}
		if held == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	bDone := make(chan error, 1)
	go func() { bDone <- b.RunNow(ctx, name) }()
	time.Sleep(300 * time.Millisecond) // B has the lock by now, and waits
	close(release)
	if err := <-bDone; err != nil {
		t.Fatalf("new leader: %v", err)
	}
	errA := <-aDone
	if errA == nil {
		t.Fatal("the old leader's run ended without error")
	}
	if !errors.Is(afterCut, store.ErrFenced) || !errors.Is(errA, store.ErrFenced) {
		t.Fatalf("the old leader's transaction after the cut: %v; its run: %v", afterCut, errA)
	}
	var lastA, firstB time.Time
	var afterB int
	if err := pool.QueryRow(ctx, `SELECT (SELECT coalesce(max(at), '2000-01-01Z') FROM fence_log WHERE who LIKE 'a-%'), (SELECT min(at) FROM fence_log WHERE who = 'b'),
		(SELECT count(*) FROM fence_log a WHERE who LIKE 'a-%' AND at > (SELECT min(at) FROM fence_log WHERE who = 'b'))`).Scan(&lastA, &firstB, &afterB); err != nil {
		t.Fatal(err)
	}
	if afterB != 0 || !lastA.Before(firstB) || lastA.Year() == 2000 {
		t.Fatalf("the old leader committed %d transactions after the new one started (last %v, new leader %v)", afterB, lastA, firstB)
	}
}
