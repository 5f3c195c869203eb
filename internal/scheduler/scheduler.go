// Package scheduler runs pbxd's periodic jobs (renewals, dunning) on cron
// schedules, against the daemon's clock, on one instance only.
//
// It reads cron expressions with robfig/cron but drives them itself: with the
// test clock, moving "now" forward must run the jobs that became due before
// the API answers, which cron's own wall-clock timer cannot do. The last run
// of each job is kept in PostgreSQL, so a daemon that was down catches up on
// start, and an advisory lock makes exactly one instance run a job at a time.
//
// Failover: every instance looks for due jobs at least every
// CheckInterval, so when the leader dies (its lock session ends with it)
// another takes the job within that time and finishes the run (jobs are
// idempotent). While a job runs, its leader checks its lock session every
// CheckInterval and cancels the job if the session is gone; and every
// transaction of the job checks the job's fence (store.Fence), which the
// next leader bumps on taking the lock, so a leader cut off from its lock
// session can commit nothing once another leader has started.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/robfig/cron/v3"

	"github.com/pbxd/pbxd/internal/clock"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/jobdb"
)

// Job is a periodic task. Run must be idempotent: it may run again after a
// crash half-way, and it catches up on everything due up to now.
type Job struct {
	Name     string
	Schedule string // 5-field cron expression, UTC
	Run      func(ctx context.Context, now time.Time) error
}

// Scheduler runs jobs when due.
type Scheduler struct {
	db    *store.DB
	clock clock.Clock
	log   *slog.Logger
	jobs  []job
	mu    sync.Mutex // one pass at a time within this instance

	// CheckInterval bounds failover: how often an instance looks for due
	// jobs (another's run interrupted included) and how often a leader
	// checks its lock session. Set before Run; DefaultCheckInterval.
	CheckInterval time.Duration

	runs     *prometheus.CounterVec
	duration *prometheus.HistogramVec
	success  *prometheus.GaugeVec
}

type job struct {
	Job
	sched cron.Schedule
}

// DefaultCheckInterval is Scheduler.CheckInterval by default.
const DefaultCheckInterval = 10 * time.Second

// ErrUnknownJob is returned by RunNow for a name no job has.
var ErrUnknownJob = errors.New("unknown job")

// New checks the schedules and registers the metrics. The leader lock is
// taken through db (store.DB.TryLead).
func New(db *store.DB, clk clock.Clock, log *slog.Logger, reg prometheus.Registerer, jobs ...Job) (*Scheduler, error) {
	s := &Scheduler{db: db, clock: clk, log: log, CheckInterval: DefaultCheckInterval}
	for _, j := range jobs {
		sched, err := cron.ParseStandard(j.Schedule)
		if err != nil {
			return nil, fmt.Errorf("job %s: schedule %q: %w", j.Name, j.Schedule, err)
		}
		s.jobs = append(s.jobs, job{Job: j, sched: sched})
	}
	f := promauto.With(reg)
	s.runs = f.NewCounterVec(prometheus.CounterOpts{Name: "pbxd_job_runs_total", Help: "Scheduled job runs by task (job name) and result (ok, error, skipped_not_leader)."}, []string{"task", "result"})
	s.duration = f.NewHistogramVec(prometheus.HistogramOpts{Name: "pbxd_job_duration_seconds", Help: "Scheduled job run duration.", Buckets: prometheus.ExponentialBuckets(0.01, 4, 9)}, []string{"task"})
	s.success = f.NewGaugeVec(prometheus.GaugeOpts{Name: "pbxd_job_last_success_timestamp_seconds", Help: "Wall-clock time of each job's last successful run."}, []string{"task"})
	for _, j := range jobs { // every run series from start, so increase() sees the first error
		for _, r := range []string{"ok", "error", "skipped_not_leader"} {
			s.runs.WithLabelValues(j.Name, r)
		}
	}
	return s, nil
}

// Run checks for due jobs at start-up (catching up a missed run) and then
// whenever the next one is due, until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	for {
		if err := s.RunDue(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("scheduled jobs", "err", err)
		}
		// Re-check at least this often: another instance may have run
		// jobs, or died running one, or the clock moved.
		wait := s.CheckInterval
		if next, ok := s.nextDue(ctx); ok {
			wait = min(wait, max(time.Until(next), time.Second))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func (s *Scheduler) nextDue(ctx context.Context) (time.Time, bool) {
	var best time.Time
	for _, j := range s.jobs {
		last, err := s.lastRun(ctx, j.Name)
		if err != nil {
			return time.Time{}, false
		}
		n := j.sched.Next(last)
		if best.IsZero() || n.Before(best) {
			best = n
		}
	}
	// Translate from the daemon clock to wall time for the sleep.
	return time.Now().Add(best.Sub(s.clock.Now())), !best.IsZero()
}

// RunDue runs every job whose next fire time since its last run has come.
func (s *Scheduler) RunDue(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	now := s.clock.Now()
	for _, j := range s.jobs {
		last, err := s.lastRun(ctx, j.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if j.sched.Next(last).After(now) {
			continue
		}
		if err := s.runLocked(ctx, j, now); err != nil {
			errs = append(errs, fmt.Errorf("job %s: %w", j.Name, err))
		}
	}
	return errors.Join(errs...)
}

// RunNow runs the named job at once (pbxctl billing run).
func (s *Scheduler) RunNow(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range s.jobs {
		if j.Name == name {
			return s.runLocked(ctx, j, s.clock.Now())
		}
	}
	return fmt.Errorf("%w %q", ErrUnknownJob, name)
}

func (s *Scheduler) runLocked(ctx context.Context, j job, now time.Time) error {
	lead, ok, err := s.db.TryLead(ctx, j.Name)
	if err != nil {
		return err
	}
	if !ok {
		s.runs.WithLabelValues(j.Name, "skipped_not_leader").Inc()
		s.log.Debug("job running on another instance; skipped", "job", j.Name)
		return nil
	}
	defer lead.Release(ctx)
	s.log.Info("job started", "job", j.Name, "epoch", lead.Fence.Epoch)

	start := time.Now()
	jobCtx, cancel := context.WithCancelCause(store.WithFence(ctx, lead.Fence))
	watched := make(chan struct{})
	go func() { defer close(watched); s.watchLock(jobCtx, cancel, lead, j.Name) }()
	err = j.Run(jobCtx, now)
	lost := context.Cause(jobCtx)
	cancel(nil)
	<-watched
	s.duration.WithLabelValues(j.Name).Observe(time.Since(start).Seconds())
	if err == nil && lost != nil && ctx.Err() == nil {
		err = lost // stopped short by the loss of the lock
	}
	if err != nil {
		s.runs.WithLabelValues(j.Name, "error").Inc()
		return err
	}
	s.runs.WithLabelValues(j.Name, "ok").Inc()
	s.success.WithLabelValues(j.Name).Set(float64(time.Now().Unix()))
	// On the lock's session: a run whose lock was lost is not recorded, and
	// runs again.
	if err := jobdb.New(lead.Session()).RecordRun(ctx, jobdb.RecordRunParams{Name: j.Name, LastRunAt: now}); err != nil {
		return fmt.Errorf("record run: %w", err)
	}
	s.log.Info("job done", "job", j.Name, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// errLockLost is the cause a job is cancelled with when its leader's lock
// session is gone.
var errLockLost = errors.New("leader lock session lost")

// watchLock pings the lock's session every CheckInterval while the job
// runs, and cancels the job when the session is gone: the lock with it,
// another instance may be taking over.
func (s *Scheduler) watchLock(ctx context.Context, cancel context.CancelCauseFunc, lead *store.Leadership, job string) {
	t := time.NewTicker(s.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, done := context.WithTimeout(ctx, max(s.CheckInterval, 5*time.Second))
		err := lead.Alive(pctx)
		done()
		if err != nil && ctx.Err() == nil {
			s.log.Error("leader lock lost: stopping the job", "job", job, "err", err)
			cancel(fmt.Errorf("%w: %w", errLockLost, err))
			return
		}
	}
}

// lastRun is the daemon-clock time of the last successful run; a job never
// run counts as run just before its first due time after the epoch of the
// daemon, i.e. it runs at once on first start.
func (s *Scheduler) lastRun(ctx context.Context, name string) (time.Time, error) {
	t, err := jobdb.New(s.db).LastRun(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read last run of %s: %w", name, err)
	}
	return t, nil
}
