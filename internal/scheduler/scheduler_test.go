package scheduler

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pbxd/pbxd/internal/clock"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/storetest"
)

// recorder is a job's Run that records the times it was called with.
type recorder struct {
	mu   sync.Mutex
	runs []time.Time
	fail error
}

func (r *recorder) run(_ context.Context, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs = append(r.runs, now)
	return r.fail
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.runs)
}

var start = time.Date(2026, 11, 16, 10, 0, 0, 0, time.UTC)

func newScheduler(t *testing.T, clk clock.Clock, jobs ...Job) *Scheduler {
	t.Helper()
	s, err := New(store.NewDB(storetest.NewPool(t)), clk, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), jobs...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A job never run runs at once; then only when its next fire time since
// the last run has come, once however many fire times passed (Run catches
// up itself), with the clock's now.
func TestRunDueRunsWhenDue(t *testing.T) {
	clk := clock.NewTest(start)
	var daily recorder
	s := newScheduler(t, clk, Job{Name: "daily", Schedule: "0 3 * * *", Run: daily.run})
	ctx := t.Context()
	steps := []struct {
		advance time.Duration
		runs    int
	}{
		{0, 1},                // never run: due at once
		{0, 1},                // same instant: not again
		{16 * time.Hour, 1},   // 02:00 next day: before 03:00
		{time.Hour, 2},        // 03:00: due
		{72 * time.Hour, 3},   // three fire times passed: one run
		{time.Minute, 3},      // just after: not due
		{23 * time.Hour, 3},   // 02:01 the next day: not due
		{59 * time.Minute, 4}, // 03:00
	}
	for i, st := range steps {
		if err := clk.Advance(st.advance); err != nil {
			t.Fatal(err)
		}
		if err := s.RunDue(ctx); err != nil {
			t.Fatal(err)
		}
		if n := daily.count(); n != st.runs {
			t.Fatalf("step %d (now %s): %d runs, want %d", i, clk.Now(), n, st.runs)
		}
	}
	if last := daily.runs[len(daily.runs)-1]; !last.Equal(clk.Now()) {
		t.Errorf("the job ran with now %s, want the clock's %s", last, clk.Now())
	}
	if v := testutil.ToFloat64(s.runs.WithLabelValues("daily", "ok")); v != 4 {
		t.Errorf("pbxd_job_runs_total{result=ok} = %v, want 4", v)
	}
}

// A failed run is not recorded: the job runs again at the next check, and
// the failure is returned and counted.
func TestFailedRunIsRetried(t *testing.T) {
	clk := clock.NewTest(start)
	flaky := recorder{fail: errors.New("gateway down")}
	s := newScheduler(t, clk, Job{Name: "flaky", Schedule: "0 3 * * *", Run: flaky.run})
	if err := s.RunDue(t.Context()); err == nil || !errors.Is(err, flaky.fail) {
		t.Fatalf("RunDue = %v, want the job's error", err)
	}
	flaky.mu.Lock()
	flaky.fail = nil
	flaky.mu.Unlock()
	if err := s.RunDue(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := flaky.count(); n != 2 {
		t.Errorf("%d runs, want 2 (the failed one, then its retry)", n)
	}
	if v := testutil.ToFloat64(s.runs.WithLabelValues("flaky", "error")); v != 1 {
		t.Errorf("pbxd_job_runs_total{result=error} = %v, want 1", v)
	}
}

// The last run is kept in the database: a scheduler built again (a
// restarted daemon) does not run a job that already ran.
func TestLastRunSurvivesRestart(t *testing.T) {
	clk := clock.NewTest(start)
	pool := storetest.NewPool(t)
	var j recorder
	for range 2 {
		s, err := New(store.NewDB(pool), clk, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), Job{Name: "j", Schedule: "0 3 * * *", Run: j.run})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RunDue(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if n := j.count(); n != 1 {
		t.Errorf("%d runs across a restart, want 1", n)
	}
}

// While another instance holds a job's lock, this one skips the job and
// counts the skip; RunNow runs a job at once, due or not, and refuses an
// unknown name.
func TestLeaderLockAndRunNow(t *testing.T) {
	clk := clock.NewTest(start)
	var j recorder
	s := newScheduler(t, clk, Job{Name: "j", Schedule: "0 3 * * *", Run: j.run})
	ctx := t.Context()
	other, ok, err := s.db.TryLead(ctx, "j") // another instance leads
	if err != nil || !ok {
		t.Fatalf("take the lock: %v, %v", ok, err)
	}
	if err := s.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	if n := j.count(); n != 0 {
		t.Fatalf("ran %d times while another instance held the lock", n)
	}
	if v := testutil.ToFloat64(s.runs.WithLabelValues("j", "skipped_not_leader")); v != 1 {
		t.Errorf("pbxd_job_runs_total{result=skipped_not_leader} = %v, want 1", v)
	}
	other.Release(ctx)
	if err := s.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.RunNow(ctx, "j"); err != nil { // not due: ran just now
		t.Fatal(err)
	}
	if n := j.count(); n != 2 {
		t.Errorf("%d runs, want 2 (once due, once asked)", n)
	}
	if err := s.RunNow(ctx, "nope"); !errors.Is(err, ErrUnknownJob) {
		t.Errorf("RunNow(unknown) = %v, want ErrUnknownJob", err)
	}
}

// A schedule cron cannot read is refused when the scheduler is built,
// naming the job.
func TestBadScheduleRefused(t *testing.T) {
	_, err := New(nil, clock.NewTest(start), slog.New(slog.DiscardHandler), prometheus.NewRegistry(),
		Job{Name: "broken", Schedule: "every day", Run: (&recorder{}).run})
	if err == nil {
		t.Fatal("a bad schedule was accepted")
	}
	if got := err.Error(); !strings.Contains(got, "broken") {
		t.Errorf("error %q does not name the job", got)
	}
}

// Two schedulers (two instances) on one database: while one runs a job,
// the other skips it and counts the skip; once the first is done, the
// job's lock is free again.
func TestOneRunnerPerJobAcrossSchedulers(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := storetest.NewPool(t)
	started, release := make(chan struct{}), make(chan struct{})
	var runs atomic.Int32
	job := Job{Name: "j", Schedule: "0 3 * * *", Run: func(context.Context, time.Time) error {
		if runs.Add(1) == 1 {
			close(started)
			<-release
		}
		return nil
	}}
	build := func() *Scheduler {
		s, err := New(store.NewDB(pool), clock.NewTest(start), slog.New(slog.DiscardHandler), prometheus.NewRegistry(), job)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := build(), build()
	done := make(chan error, 1)
	go func() { done <- a.RunNow(ctx, "j") }()
	<-started
	if err := b.RunNow(ctx, "j"); err != nil {
		t.Fatal(err)
	}
	if v := testutil.ToFloat64(b.runs.WithLabelValues("j", "skipped_not_leader")); v != 1 || runs.Load() != 1 {
		t.Fatalf("while the other instance ran the job: %d runs, %v skips; want 1 and 1", runs.Load(), v)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := b.RunNow(ctx, "j"); err != nil {
		t.Fatal(err)
	}
	if n := runs.Load(); n != 2 {
		t.Errorf("%d runs, want 2: the lock was not released", n)
	}
}
