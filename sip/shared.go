package sip

import (
	"context"
	"sync"
	"time"

	"github.com/pbxd/pbxd/pbx"
)

// Several registrars (pbxd instances) on one SharedStore: the store is
// authoritative; each registrar answers REGISTERs from memory, writes its
// changes behind as before, and follows the others' changes:
//   - SharedStore.Watch names the lines another instance changed; they are
//     read again at once (LoadLines);
//   - every Config.ReloadInterval, and whenever the watch (re)connects, the
//     whole view is read again (a lost notification is repaired);
//   - a line with local writes queued, in flight, or done after the read
//     began is left alone and read again a moment later, so an older
//     stored state never overwrites a newer local one;
//   - followed changes emit no registration events: the instance that took
//     the REGISTER emitted them. Expiry is the store's (ExpireBindings):
//     whichever instance deletes a row emits the event and counts it.
//
// None of this is on the REGISTER path.

// followRetry is how soon a line skipped because of local writes is read
// again.
const followRetry = 250 * time.Millisecond

// follow keeps the in-memory view following the shared store until ctx
// ends.
func (r *Registrar) follow(ctx context.Context) {
	p := newPendingLines()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { r.watch(ctx, p.changed) })
	reload := time.NewTicker(r.cfg.ReloadInterval)
	defer reload.Stop()
	retry := time.NewTicker(followRetry)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-retry.C:
		case <-reload.C:
			p.changed(nil)
			continue
		}
		ids, full := p.take()
		if !full && len(ids) == 0 {
			continue
		}
		r.reloadPending(ctx, p, ids, full)
	}
}

// reloadPending reads the shared bindings of lines ids (full: of every
// line) into the view. Lines it could not read are pending again; after a
// failed read, everything it was to read, after followRetry.
func (r *Registrar) reloadPending(ctx context.Context, p *pendingLines, ids []string, full bool) {
	var left []string
	var err error
	if full {
		left, err = r.reloadAll(ctx)
	} else {
		left, err = r.reloadLines(ctx, ids)
	}
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("sip: follow shared bindings: read failed, retrying", "err", err)
		}
		if full {
			left = nil
		} else {
			left = ids
		}
		p.changed(left) // nil: everything again
		time.Sleep(followRetry)
		return
	}
	if len(left) > 0 {
		p.keep(left)
	}
}

// pendingLines collects the lines whose shared bindings follow is to read.
type pendingLines struct {
	mu    sync.Mutex
	lines map[string]bool
	all   bool          // every line
	wake  chan struct{} // a change is pending
}

func newPendingLines() *pendingLines {
	return &pendingLines{lines: map[string]bool{}, wake: make(chan struct{}, 1)}
}

// changed makes ids (nil: every line) pending and wakes follow.
func (p *pendingLines) changed(ids []string) {
	p.mu.Lock()
	if ids == nil {
		p.all = true
	}
	for _, id := range ids {
		p.lines[id] = true
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// keep makes ids pending again without waking follow: the next retry tick
// reads them.
func (p *pendingLines) keep(ids []string) {
	p.mu.Lock()
	for _, id := range ids {
		p.lines[id] = true
	}
	p.mu.Unlock()
}

// take returns what is pending, which is then no more.
func (p *pendingLines) take() (ids []string, all bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids = make([]string, 0, len(p.lines))
	for id := range p.lines {
		ids = append(ids, id)
	}
	all = p.all
	clear(p.lines)
	p.all = false
	return ids, all
}

// watch runs SharedStore.Watch again, with backoff, while it fails.
func (r *Registrar) watch(ctx context.Context, changed func([]string)) {
	backoff := time.Second
	for {
		start := time.Now()
		err := r.shared.Watch(ctx, changed)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			backoff = time.Second
		}
		r.log.Warn("sip: watching shared bindings failed; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// reloadLines reads the lines' bindings from the store into memory; it
// returns the lines left for later because of local writes.
func (r *Registrar) reloadLines(ctx context.Context, ids []string) ([]string, error) {
	g := r.wb.generation()
	bs, err := r.shared.LoadLines(ctx, ids)
	if err != nil {
		return nil, err
	}
	stored := groupByLine(bs)
	for _, id := range ids {
		if stored[id] == nil {
			stored[id] = []Binding{}
		}
	}
	left := r.applyStored(stored, g)
	r.wb.forget(g)
	return left, nil
}

// reloadAll reads every binding from the store into memory; lines with
// bindings in memory but none stored lose them.
func (r *Registrar) reloadAll(ctx context.Context) ([]string, error) {
	g := r.wb.generation()
	bs, err := r.shared.LoadBindings(ctx)
	if err != nil {
		return nil, err
	}
	stored := groupByLine(bs)
	r.tableMu.RLock()
	for id, l := range r.byID {
		if stored[id] == nil {
			l.mu.Lock()
			if len(l.contacts) > 0 {
				stored[id] = []Binding{}
			}
			l.mu.Unlock()
		}
	}
	r.tableMu.RUnlock()
	left := r.applyStored(stored, g)
	r.wb.forget(g)
	return left, nil
}

func groupByLine(bs []Binding) map[string][]Binding {
	m := make(map[string][]Binding)
	for _, b := range bs {
		m[b.LineID] = append(m[b.LineID], b)
	}
	return m
}

// applyStored replaces the in-memory bindings of each line by the stored
// ones (read when the write generation was g), but for lines written
// locally since, which it returns.
func (r *Registrar) applyStored(stored map[string][]Binding, g uint64) (left []string) {
	now := r.clock.Now()
	for id, bs := range stored {
		r.tableMu.RLock()
		l := r.byID[id]
		r.tableMu.RUnlock()
		if l == nil {
			if len(bs) == 0 {
				continue
			}
			r.tableMu.Lock()
			if l = r.byID[id]; l == nil { // kept aside until Apply, as at load
				l = &line{}
				r.byID[id] = l
			}
			r.tableMu.Unlock()
		}
		l.mu.Lock()
		if r.wb.busySince(id, g) {
			l.mu.Unlock()
			left = append(left, id)
			continue
		}
		var fresh []Binding
		if l.cfg == nil || !l.cfg.Suspended {
			for _, b := range bs {
				if b.ExpiresAt.After(now) {
					fresh = append(fresh, b)
				}
			}
		}
		r.active.Add(int64(len(fresh) - len(l.contacts)))
		l.contacts = fresh
		l.mu.Unlock()
	}
	return left
}

// sweepShared expires through the store: the bindings this call deletes
// are counted and reported here; every lapsed binding leaves memory. If
// the store cannot be reached, lapsed bindings only leave memory, and are
// expired in the store by the first sweep that reaches it.
func (r *Registrar) sweepShared(ctx context.Context) int {
	now := r.clock.Now()
	gone, err := r.shared.ExpireBindings(ctx, now)
	if err != nil {
		r.m.storeErrors.Inc()
		r.log.Warn("sip: expire bindings in the store failed; dropped from memory only", "err", err)
	}
	expired := groupByLine(gone)
	ids, ls := r.snapshot()
	for i, l := range ls {
		l.mu.Lock()
		kept := l.contacts[:0]
		for _, b := range l.contacts {
			if b.ExpiresAt.After(now) {
				kept = append(kept, b)
			}
		}
		clear(l.contacts[len(kept):])
		r.active.Add(-int64(len(l.contacts) - len(kept)))
		l.contacts = kept
		if expired[ids[i]] != nil {
			r.emitLocked(ids[i], l, now)
			delete(expired, ids[i])
		}
		l.mu.Unlock()
	}
	for id := range expired { // lines this instance does not have
		r.events.push(pbx.RegistrationEvent{LineID: id, At: now})
	}
	if n := len(gone); n > 0 {
		r.m.expired.Add(float64(n))
		r.log.Debug("sip bindings expired", "count", n)
	}
	return len(gone)
}
