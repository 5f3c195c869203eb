package provisioning

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/sync/errgroup"

	"github.com/pbxd/pbxd/internal/store/provdb"
	"github.com/pbxd/pbxd/pbx"
)

// ReconcilerOptions tune the reconciler.
type ReconcilerOptions struct {
	Concurrency    int           // applies in flight at once
	ResyncInterval time.Duration // full diff-and-repair period
	RetryMin       time.Duration // first retry delay after a failed apply
	RetryMax       time.Duration // cap of the exponential backoff
	MaxContacts    int           // per line, pushed to the PBX
	MoveInterval   time.Duration // how often account moves advance (move.go); default 1 s
	// Local is set for a backend inside this process (the built-in
	// registrar): every pbxd instance on the database has its own, so each
	// applies every line change itself (see follow.go), not only the ones
	// no instance has applied yet.
	Local    bool
	Registry prometheus.Registerer
	Logger   *slog.Logger
}

// Reconciler keeps a pbx.Backend equal to the database. Desired state is the
// lines table; a line is pending while revision > applied_revision. It wakes
// on NOTIFY, applies pending revisions with bounded concurrency, retries
// failures with backoff, and periodically lists the backend to repair drift
// (missing, stale or orphaned objects).
type Reconciler struct {
	svc     *Service
	backend pbx.Backend
	o       ReconcilerOptions
	log     *slog.Logger
	wake    chan struct{}

	mu    sync.Mutex
	retry map[string]retryState
	// routeRetry is when number routes that failed are written again.
	routeRetry    time.Time
	routeAttempts int

	followed follower // with Options.Local; used by the loop goroutine only

	// node limits a reconciler to one node of a split backend (shard.go);
	// shards is set on the reconciler that runs the nodes' reconcilers.
	node   *nodeScope
	shards *shardSet

	pending     prometheus.Gauge
	lag         prometheus.Histogram
	errs        *prometheus.CounterVec
	applied     prometheus.Counter
	lastResync  prometheus.Gauge
	resyncTime  prometheus.Gauge
	drift       *prometheus.CounterVec
	regEvents   prometheus.Counter
	resyncMutex sync.Mutex
}

type retryState struct {
	attempts int
	next     time.Time
}

// prepareMin is the batch of new lines from which the reconciler calls
// Prepare: below it the saving is too small to matter.
const prepareMin = 100

// prepare calls the backend's Prepare with the lines of batch that the
// PBX does not hold yet (new is true for them) when there are enough, and
// returns the batch with those lines marked to be read again when applied
// (what a resync's List read predates Prepare's writes).
func (r *Reconciler) prepare(ctx context.Context, batch []pendingLine, isNew func(pendingLine) bool) {
	p, ok := r.backend.(pbx.Preparer)
	if !ok {
		return
	}
	var idx []int
	for i, pl := range batch {
		if !pl.deleted && pl.cfg.Revision != 0 && isNew(pl) {
			idx = append(idx, i)
		}
	}
	if len(idx) < prepareMin {
		return
	}
	lines := make([]pbx.LineConfig, len(idx))
	for j, i := range idx {
		lines[j] = batch[i].cfg
		batch[i].listed, batch[i].held = false, nil
	}
	if err := p.Prepare(ctx, lines); err != nil && ctx.Err() == nil {
		r.log.Debug("prepare new lines", "lines", len(lines), "err", err)
	}
}

// prepareMax bounds how many pending new lines one Prepare gets.
const prepareMax = 50000

// prepareAhead calls the backend's Prepare, before the first batch of an
// ApplyPending pass, with every pending line the PBX never held (up to
// prepareMax), not only the batch's: Asterisk runs each new AOR's
// bookkeeping later, on its own queue, and then reads every endpoint that
// exists by then, so AORs created batch by batch (1,000 lines each) still
// find the earlier batches' endpoints; created all at once, before any
// endpoint, they find none. prepared holds the lines prepared during this
// pass, which are not prepared again.
func (r *Reconciler) prepareAhead(ctx context.Context, batch []pendingLine, prepared map[string]bool) {
	p, ok := r.backend.(pbx.Preparer)
	if !ok {
		return
	}
	n := 0
	for _, pl := range batch {
		if !pl.deleted && pl.firstApply && !prepared[pl.cfg.ID] {
			n++
		}
	}
	if n < prepareMin {
		return
	}
	node, isDefault := r.nodeScope()
	rows, err := r.svc.q.NewLinesToPrepare(ctx, provdb.NewLinesToPrepareParams{Node: node, IsDefault: isDefault, N: prepareMax})
	if err != nil {
		r.log.Debug("read new lines to prepare", "err", err)
		return
	}
	all, err := desiredLines(r, rows)
	if err != nil {
		r.log.Debug("read new lines to prepare", "err", err)
		return
	}
	var lines []pbx.LineConfig
	for _, pl := range all {
		if !prepared[pl.cfg.ID] {
			prepared[pl.cfg.ID] = true
			lines = append(lines, pl.cfg)
		}
	}
	if err := p.Prepare(ctx, lines); err != nil && ctx.Err() == nil {
		r.log.Debug("prepare new lines", "lines", len(lines), "err", err)
	}
}

// NewReconciler builds a reconciler for backend.
func (s *Service) NewReconciler(backend pbx.Backend, o ReconcilerOptions) *Reconciler {
	if o.Concurrency < 1 {
		o.Concurrency = 8
	}
	if o.RetryMin <= 0 {
		o.RetryMin = time.Second
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = 5 * time.Minute
	}
	if o.MaxContacts < 1 {
		o.MaxContacts = 5
	}
	if o.MoveInterval <= 0 {
		o.MoveInterval = time.Second
	}
	f := promauto.With(o.Registry)
	r := &Reconciler{svc: s, backend: backend, o: o, log: o.Logger, wake: make(chan struct{}, 1), retry: map[string]retryState{}}
	r.followed = follower{mark: s.clock.Now(), seen: map[string]followedLine{}}
	r.pending = f.NewGauge(prometheus.GaugeOpts{Name: "pbxd_reconcile_pending", Help: "Line revisions committed but not yet applied to the PBX."})
	r.lag = f.NewHistogram(prometheus.HistogramOpts{Name: "pbxd_reconcile_lag_seconds", Help: "Time from a line change's commit to its application on the PBX.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}})
	r.errs = f.NewCounterVec(prometheus.CounterOpts{Name: "pbxd_reconcile_errors_total", Help: "Failed applies and removals by reason (unavailable, rejected, database)."}, []string{"reason"})
	r.applied = f.NewCounter(prometheus.CounterOpts{Name: "pbxd_reconcile_applied_total", Help: "Line revisions applied to the PBX."})
	r.lastResync = f.NewGauge(prometheus.GaugeOpts{Name: "pbxd_reconcile_last_resync_timestamp_seconds", Help: "Time of the last completed full resync."})
	r.resyncTime = f.NewGauge(prometheus.GaugeOpts{Name: "pbxd_reconcile_last_resync_duration_seconds", Help: "Duration of the last full resync."})
	r.drift = f.NewCounterVec(prometheus.CounterOpts{Name: "pbxd_reconcile_drift_repaired_total", Help: "Drift found by a resync and repaired, by kind (missing, stale, orphan, misplaced: on a node other than its account's)."}, []string{"kind"})
	r.regEvents = f.NewCounter(prometheus.CounterOpts{Name: "pbxd_registration_events_total", Help: "Registration events received from the PBX."})
	for _, reason := range []string{"unavailable", "rejected", "database"} {
		r.errs.WithLabelValues(reason)
	}
	for _, kind := range []string{"missing", "stale", "orphan", "misplaced"} {
		r.drift.WithLabelValues(kind)
	}
	return r
}

// Run reconciles until ctx ends.
func (r *Reconciler) Run(ctx context.Context) error {
	if r.shards != nil {
		return r.runShards(ctx)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return r.listen(ctx) })
	g.Go(func() error { return r.consumeEvents(ctx) })
	g.Go(func() error { return r.loop(ctx) })
	g.Go(func() error { return r.runMoves(ctx) })
	return g.Wait()
}

// Wake asks for a pass over pending changes.
func (r *Reconciler) Wake() {
	if r.shards != nil {
		r.shards.wake()
		return
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// loop applies pending changes as they come. Full resyncs run on their own
// goroutine, one at a time, so a long resync (thousands of lines after an
// Asterisk restart) never delays a single change committed meanwhile.
func (r *Reconciler) loop(ctx context.Context) error {
	var resyncSignal <-chan struct{}
	if rs, ok := r.backend.(pbx.Resyncer); ok {
		resyncSignal = rs.Resync()
	}
	// A full resync at start. A backend that signals its (re)connections
	// asks for that one itself once it is connected: a timer firing too
	// would run a second full resync right after the first.
	first := time.Duration(0)
	if resyncSignal != nil && r.node == nil { // a node's reconciler resyncs when it takes the node

		first = r.o.ResyncInterval
	}
	resync := time.NewTimer(first)
	defer resync.Stop()
	resyncDone := make(chan resyncResult, 1)
	resyncing, again := false, false
	startResync := func() {
		if resyncing {
			again = true // one more after this one: it may have started before the trigger
			return
		}
		resyncing = true
		go func() { resyncDone <- r.runResync(ctx) }()
	}
	defer func() {
		if resyncing {
			<-resyncDone
		}
	}()
	applyB := dbBackoff()  // while pending changes cannot be read
	resyncB := dbBackoff() // while resyncs fail
	var retryC <-chan time.Time
	for apply := true; ; {
		// A pass over pending changes when woken or due, not on resync
		// events: with the database gone, each pass is one more failure.
		if apply {
			next, err := r.ApplyPending(ctx)
			if err == nil && r.o.Local {
				err = r.applyChanged(ctx)
			}
			switch {
			case err != nil && ctx.Err() == nil:
				delay := applyB.next()
				r.log.Warn("apply pending", "retry_in", delay, "err", err)
				next = time.Now().Add(delay)
			case err == nil:
				applyB.reset()
			}
			retryC = nil
			if !next.IsZero() {
				retryC = time.After(max(time.Until(next), 10*time.Millisecond))
			}
		}
		apply = false
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
			apply = true
		case <-retryC:
			apply = true
		case <-resyncSignal:
			startResync()
		case <-resync.C:
			startResync()
		case res := <-resyncDone:
			resyncing = false
			switch res {
			case resyncDoneOK:
				resyncB.reset()
				resync.Reset(r.o.ResyncInterval)
			case resyncNotConnected:
				// A cheap in-memory check, not a failure: look again soon
				// without growing the backoff, so a PBX back after a restart
				// is resynced within a second of reconnecting.
				resync.Reset(time.Second)
			default:
				resync.Reset(resyncB.next()) // the resync failed: try again, backing off
			}
			if again {
				again = false
				startResync()
			}
		}
	}
}

// resyncResult is how a full resync attempt ended.
type resyncResult int

const (
	resyncDoneOK resyncResult = iota
	resyncNotConnected
	resyncFailed
)

// runResync runs a full resync if the backend is connected.
func (r *Reconciler) runResync(ctx context.Context) resyncResult {
	if !r.backend.Connected() {
		return resyncNotConnected
	}
	if err := r.Resync(ctx); err != nil {
		if ctx.Err() == nil {
			r.log.Warn("full resync", "err", err)
		}
		return resyncFailed
	}
	return resyncDoneOK
}

// listen turns NOTIFY on the lines channel into wake-ups, reconnecting when
// the connection drops. While it is down, the periodic resync and retry
// timers still converge.
func (r *Reconciler) listen(ctx context.Context) error {
	b := dbBackoff()
	for ctx.Err() == nil {
		listened, err := r.listenOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if listened {
			b.reset()
			r.Wake() // the connection was up: pending work may need it
		}
		delay := b.next()
		r.log.Warn("LISTEN connection lost; reconnecting", "retry_in", delay, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
	}
	return nil
}

// listenOnce listens until the connection fails; listened says whether it
// got as far as LISTEN.
// Every notification wakes the reconciler, and so does LISTEN itself: for
// the changes committed while it was not listening.
func (r *Reconciler) listenOnce(ctx context.Context) (listened bool, err error) {
	return r.svc.db.Listen(ctx, NotifyChannel, r.Wake)
}

// backoff spaces out retries: min, doubling up to max, until reset.
type backoff struct{ min, max, cur time.Duration }

// dbBackoff is for a lost database: 1 s doubling to 30 s, so an outage
// costs a few log lines a minute, not several a second.
func dbBackoff() *backoff { return &backoff{min: time.Second, max: 30 * time.Second} }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }

type pendingLine struct {
	cfg        pbx.LineConfig
	deleted    bool
	pending    bool // revision > applied_revision: a change not applied yet
	firstApply bool // applied_revision = 0: the PBX has never held the line
	changedAt  time.Time
	listed     bool            // a resync repair: held is what its List reported
	held       *pbx.LineConfig // nil: not listed
}

// desiredRow is a line as the PBX gets it: the row of DesiredLines, and
// of PendingLines, NewLinesToPrepare and DesiredLinesByID, which read the
// same columns.
type desiredRow interface {
	provdb.DesiredLinesRow | provdb.PendingLinesRow | provdb.NewLinesToPrepareRow | provdb.DesiredLinesByIDRow
}

// desiredLines turns desired rows into lines to apply, opening their
// passwords.
func desiredLines[R desiredRow](r *Reconciler, rows []R) ([]pendingLine, error) {
	var out []pendingLine
	for _, row := range rows {
		d := provdb.DesiredLinesRow(row)
		pl := pendingLine{changedAt: d.ChangedAt}
		c := &pl.cfg
		c.ID, c.Node, c.Domain, c.Username, c.Context, c.CallerID = d.ID, d.PbxNode, d.SipDomain, d.SipUsername, d.DialContext, d.CallerID
		c.HA1MD5, c.HA1SHA256, c.Revision = d.Ha1Md5, d.Ha1Sha256, d.Revision
		pl.pending = c.Revision > d.AppliedRevision
		pl.firstApply = d.AppliedRevision == 0
		c.Extension = fmt.Sprint(d.Extension)
		c.MaxContacts = r.o.MaxContacts
		state := LineState(d.State)
		c.Suspended = state == LineSuspended || AccountStatus(d.Status) != AccountActive
		pl.deleted = state == LineDeleted
		if !pl.deleted {
			pw, err := r.svc.cipher.Open(c.ID, d.PasswordEnc)
			if err != nil {
				return nil, fmt.Errorf("line %s: %w", c.ID, err)
			}
			c.Password = pw
		}
		out = append(out, pl)
	}
	return out, nil
}

// ApplyPending applies every pending revision that is not waiting for a
// retry, then the number routes that changed. It returns when the next
// retry is due (zero: none waiting).
func (r *Reconciler) ApplyPending(ctx context.Context) (time.Time, error) {
	if r.shards != nil {
		return r.shards.applyPending(ctx)
	}
	next, err := r.applyPendingLines(ctx)
	if err != nil {
		return next, err
	}
	r.mu.Lock()
	due := r.routeRetry
	r.mu.Unlock()
	if !due.IsZero() && due.After(time.Now()) {
		return earliest(next, due), nil
	}
	_, err = r.syncRoutes(ctx, false)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case errors.Is(err, errRoutes):
		r.routeAttempts++
		r.routeRetry = time.Now().Add(min(r.o.RetryMin<<min(r.routeAttempts-1, 20), r.o.RetryMax))
		return earliest(next, r.routeRetry), nil
	case err != nil:
		return next, err
	}
	r.routeAttempts, r.routeRetry = 0, time.Time{}
	return next, nil
}

// earliest is the earlier of two due times, zero meaning none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func (r *Reconciler) applyPendingLines(ctx context.Context) (time.Time, error) {
	var nextRetry time.Time
	prepared := map[string]bool{}
	node, isDefault := r.nodeScope()
	for {
		rows, err := r.svc.q.PendingLines(ctx, provdb.PendingLinesParams{Node: node, IsDefault: isDefault, N: 1000})
		if err != nil {
			return nextRetry, fmt.Errorf("read pending lines: %w", err)
		}
		batch, err := desiredLines(r, rows)
		if err != nil {
			return nextRetry, err
		}
		r.pending.Set(float64(len(batch)))
		now := time.Now()
		var todo []pendingLine
		r.mu.Lock()
		for _, pl := range batch {
			if st, ok := r.retry[pl.cfg.ID]; ok && st.next.After(now) {
				if nextRetry.IsZero() || st.next.Before(nextRetry) {
					nextRetry = st.next
				}
				continue
			}
			todo = append(todo, pl)
		}
		r.mu.Unlock()
		if len(todo) == 0 {
			return nextRetry, nil
		}
		r.prepareAhead(ctx, todo, prepared)
		progress := r.applyAll(ctx, todo)
		r.noteApplied(todo)
		if ctx.Err() != nil {
			return nextRetry, ctx.Err()
		}
		if progress == 0 {
			// Everything in this batch failed; retries are scheduled.
			continue
		}
	}
}

// applyAll applies lines with bounded concurrency and returns how many
// succeeded.
func (r *Reconciler) applyAll(ctx context.Context, lines []pendingLine) int {
	var g errgroup.Group
	g.SetLimit(r.o.Concurrency)
	rec := r.newRecorder(ctx)
	for _, pl := range lines {
		g.Go(func() error {
			if r.applyOne(ctx, pl) {
				rec.add(pl)
			}
			return nil
		})
	}
	_ = g.Wait()
	return rec.flush()
}

// recordBatch is how many applied revisions one UPDATE records.
const recordBatch = 128

// recorder records applied revisions in batches: one UPDATE per
// recordBatch lines instead of one per line. A line whose revision is not
// recorded (pbxd stopped, database error) stays pending and is applied
// again, which is harmless.
type recorder struct {
	r    *Reconciler
	ctx  context.Context
	mu   sync.Mutex
	buf  []pendingLine
	done int
}

func (r *Reconciler) newRecorder(ctx context.Context) *recorder {
	return &recorder{r: r, ctx: ctx}
}

func (rc *recorder) add(pl pendingLine) {
	rc.mu.Lock()
	rc.buf = append(rc.buf, pl)
	var full []pendingLine
	if len(rc.buf) >= recordBatch {
		full, rc.buf = rc.buf, nil
	}
	rc.mu.Unlock()
	if full != nil {
		rc.write(full)
	}
}

// flush records what is left and returns how many lines were recorded.
func (rc *recorder) flush() int {
	rc.mu.Lock()
	rest := rc.buf
	rc.buf = nil
	rc.mu.Unlock()
	if len(rest) > 0 {
		rc.write(rest)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.done
}

// write records the applied revisions of lines; a newer revision committed
// meanwhile stays pending because only the applied one is recorded.
func (rc *recorder) write(lines []pendingLine) {
	r := rc.r
	ids := make([]string, len(lines))
	revs := make([]int64, len(lines))
	for i, pl := range lines {
		ids[i], revs[i] = pl.cfg.ID, pl.cfg.Revision
	}
	now := r.svc.clock.Now()
	fenceNode, fenceEpoch := r.fenceArgs()
	if err := r.svc.q.RecordApplied(rc.ctx, provdb.RecordAppliedParams{Ids: ids, Revisions: revs, AppliedAt: &now,
		FenceNode: fenceNode, FenceEpoch: fenceEpoch}); err != nil {
		r.errs.WithLabelValues("database").Add(float64(len(lines)))
		if rc.ctx.Err() == nil {
			r.log.Warn("record applied revisions", "lines", len(lines), "err", err)
		}
		return
	}
	// Only a change committed and not yet applied has a lag; a resync's
	// repair of a line applied long ago (Asterisk lost or altered it) is
	// counted in pbxd_reconcile_drift_repaired_total instead.
	for _, pl := range lines {
		if pl.pending {
			r.applied.Inc()
			r.lag.Observe(max(0, now.Sub(pl.changedAt).Seconds()))
		}
	}
	rc.mu.Lock()
	rc.done += len(lines)
	rc.mu.Unlock()
}

// applyOne applies (or removes) one line on the backend; the caller
// records the revision when it succeeded.
func (r *Reconciler) applyOne(ctx context.Context, pl pendingLine) bool {
	var err error
	switch la, ok := r.backend.(pbx.ListedApplier); {
	case pl.deleted:
		err = r.backend.Remove(ctx, pl.cfg.ID)
	case pl.listed && ok:
		err = la.ApplyListed(ctx, pl.cfg, pl.held)
	default:
		err = r.backend.Apply(ctx, pl.cfg)
	}
	if err != nil {
		reason := "rejected"
		if errors.Is(err, pbx.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
			reason = "unavailable"
		}
		r.errs.WithLabelValues(reason).Inc()
		r.mu.Lock()
		st := r.retry[pl.cfg.ID]
		st.attempts++
		delay := min(r.o.RetryMin<<min(st.attempts-1, 20), r.o.RetryMax)
		st.next = time.Now().Add(delay)
		r.retry[pl.cfg.ID] = st
		r.mu.Unlock()
		if ctx.Err() == nil {
			// An unreachable PBX fails every line: the backend logs the
			// outage once per node and pbxd_reconcile_errors_total counts
			// the attempts, so one WARN per line would only flood the log.
			lvl := slog.LevelWarn
			if reason == "unavailable" {
				lvl = slog.LevelDebug
			}
			r.log.Log(ctx, lvl, "apply line failed; will retry", "line", pl.cfg.ID, "attempt", st.attempts, "in", delay, "err", err)
			fenceNode, fenceEpoch := r.fenceArgs()
			_ = r.svc.q.SetApplyError(ctx, provdb.SetApplyErrorParams{ID: pl.cfg.ID, ApplyError: truncate(err.Error(), 500),
				FenceNode: fenceNode, FenceEpoch: fenceEpoch})
		}
		return false
	}
	r.mu.Lock()
	delete(r.retry, pl.cfg.ID)
	r.mu.Unlock()
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// Resync lists everything the backend holds and repairs drift against the
// database: lines missing or different on the PBX are applied again, lines
// the PBX holds but the database does not (or deleted) are removed.
func (r *Reconciler) Resync(ctx context.Context) error {
	if r.shards != nil {
		return r.shards.resync(ctx)
	}
	r.resyncMutex.Lock()
	defer r.resyncMutex.Unlock()
	start := time.Now()
	held, err := r.backend.List(ctx)
	if err != nil {
		return fmt.Errorf("list backend: %w", err)
	}
	node, isDefault := r.nodeScope()
	rows, err := r.svc.q.DesiredLines(ctx, provdb.DesiredLinesParams{Node: node, IsDefault: isDefault})
	if err != nil {
		return fmt.Errorf("read desired lines: %w", err)
	}
	desired, err := desiredLines(r, rows)
	if err != nil {
		return err
	}
	heldBy := r.indexHeld(held, desired)
	var fix []pendingLine
	want := make(map[string]bool, len(desired))
	for _, d := range desired {
		if d.deleted {
			continue // pending removals: ApplyPending handles them; not an orphan either
		}
		want[d.cfg.ID] = true
		h, ok := heldBy[d.cfg.ID]
		switch {
		case !ok:
			r.drift.WithLabelValues("missing").Inc()
			d.listed = true
			fix = append(fix, d)
		case !pbx.SameConfig(d.cfg, h):
			r.drift.WithLabelValues("stale").Inc()
			d.listed, d.held = true, &h
			fix = append(fix, d)
		}
	}
	for _, d := range desired {
		if d.deleted {
			want[d.cfg.ID] = false
		}
	}
	// A node's reconciler keeps the lines of accounts moving away from its
	// node until their move is done: the move removes them (move.go).
	leaving, err := r.leavingLines(ctx)
	if err != nil {
		return err
	}
	for _, h := range held {
		if keep, known := want[h.ID]; !keep && !leaving[h.ID] {
			if !known {
				r.drift.WithLabelValues("orphan").Inc()
			}
			fix = append(fix, pendingLine{cfg: pbx.LineConfig{ID: h.ID}, deleted: true, changedAt: time.Now()})
		}
	}
	r.applyFixes(ctx, fix)
	if err := r.removeMisplaced(ctx, held, desired); err != nil {
		return err
	}
	// Number routes after the lines, so a route names an endpoint that
	// exists; each is read back (Asterisk forgets them when it restarts).
	routed, err := r.syncRoutes(ctx, true)
	if err != nil && !errors.Is(err, errRoutes) {
		return err
	}
	r.lastResync.Set(float64(time.Now().Unix()))
	r.resyncTime.Set(time.Since(start).Seconds())
	r.log.Info("resync done", "held", len(held), "desired", len(want), "repaired", len(fix), "routes_written", routed,
		"took", time.Since(start).Round(time.Millisecond))
	return err
}

// applyFixes applies resync repairs. Repairs of lines whose revision is
// already recorded as applied only touch the PBX.
func (r *Reconciler) applyFixes(ctx context.Context, fix []pendingLine) {
	// Missing lines: listed for repair, not held by the PBX.
	r.prepare(ctx, fix, func(pl pendingLine) bool { return pl.listed && pl.held == nil })
	var g errgroup.Group
	g.SetLimit(r.o.Concurrency)
	rec := r.newRecorder(ctx)
	defer rec.flush()
	for _, pl := range fix {
		g.Go(func() error {
			if pl.cfg.Revision == 0 { // an orphan: not in the database
				if err := r.backend.Remove(ctx, pl.cfg.ID); err != nil {
					r.errs.WithLabelValues("rejected").Inc()
				}
				return nil
			}
			if r.applyOne(ctx, pl) {
				rec.add(pl)
			}
			return nil
		})
	}
	_ = g.Wait()
}

// consumeEvents stores registration state from the backend.
func (r *Reconciler) consumeEvents(ctx context.Context) error {
	events := r.backend.Events()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			r.storeEvent(ctx, ev)
		}
	}
}

// storeEvent stores one line's registration state.
func (r *Reconciler) storeEvent(ctx context.Context, ev pbx.RegistrationEvent) {
	r.regEvents.Inc()
	contacts := ev.Contacts
	if contacts == nil {
		contacts = []pbx.Contact{}
	}
	b, _ := json.Marshal(contacts)
	at := ev.At
	if at.IsZero() {
		at = r.svc.clock.Now()
	}
	fenceNode, fenceEpoch := r.fenceArgs()
	err := r.svc.q.SetRegistration(ctx, provdb.SetRegistrationParams{LineID: ev.LineID, RegContacts: b, RegUpdatedAt: &at,
		FenceNode: fenceNode, FenceEpoch: fenceEpoch})
	if err != nil && ctx.Err() == nil {
		r.log.Warn("store registration state", "line", ev.LineID, "err", err)
	}
}
