package sip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// Binding is one registered contact of a line as persisted.
type Binding struct {
	// LineID is the pbx.LineConfig.ID the contact is bound to.
	LineID string
	// ContactURI is the contact address (without header parameters); with
	// LineID it identifies the binding.
	ContactURI string
	// Params are the Contact header parameters but expires
	// (";+sip.instance=...;reg-id=1"), echoed in 200 responses.
	Params string
	// Source is where the REGISTER came from, "transport:ip:port"
	// (e.g. "udp:192.0.2.10:5060"), for NAT traversal and diagnostics.
	Source string
	// UserAgent is the phone's User-Agent header.
	UserAgent string
	// CallID and CSeq order refreshes from one phone (RFC 3261 §10.3 step 7).
	CallID string
	CSeq   uint32
	// ExpiresAt is when the binding lapses unless refreshed.
	ExpiresAt time.Time
	// UpdatedAt is the time of the last REGISTER that touched the binding.
	UpdatedAt time.Time
}

// BindingStore persists bindings so a restart does not forget registered
// phones. The registrar writes through a write-behind queue: calls happen
// off the REGISTER path, coalesced per binding, and are retried on error.
// Implementations must be safe for concurrent use; sippg provides the
// PostgreSQL one.
type BindingStore interface {
	// LoadBindings returns every stored binding (expired ones included; the
	// registrar drops them).
	LoadBindings(ctx context.Context) ([]Binding, error)
	// SaveBinding inserts or replaces the binding (LineID, ContactURI).
	SaveBinding(ctx context.Context, b Binding) error
	// DeleteBinding removes one binding; a missing one is not an error.
	DeleteBinding(ctx context.Context, lineID, contactURI string) error
	// DeleteLine removes every binding of a line.
	DeleteLine(ctx context.Context, lineID string) error
}

// SharedStore is a BindingStore several registrars (pbxd instances) share,
// authoritative for all of them: each registrar keeps its in-memory view
// following it, and bindings expire through it so that exactly one
// registrar expires each. sippg provides the PostgreSQL one.
type SharedStore interface {
	BindingStore
	// LoadLines returns the stored bindings of the given lines.
	LoadLines(ctx context.Context, lineIDs []string) ([]Binding, error)
	// ExpireBindings deletes every binding expired at now and returns the
	// ones this call deleted (a binding deleted concurrently by another
	// registrar is not returned here).
	ExpireBindings(ctx context.Context, now time.Time) ([]Binding, error)
	// Watch calls changed with the lines whose bindings another registrar
	// changed, until ctx ends or the watch fails; changed(nil) means any
	// line may have changed (it is called first, once watching, since
	// changes may have been missed before).
	Watch(ctx context.Context, changed func(lineIDs []string)) error
}

// ErrBindingRejected is wrapped by a BindingStore that refuses a binding
// for good (its data cannot be stored): the write-behind queue then drops
// that write instead of retrying it for ever.
var ErrBindingRejected = errors.New("sip: binding rejected by the store")

// MemoryStore is a BindingStore kept in memory: for tests, benchmarks and a
// daemon run without persistence. The zero value is ready to use.
type MemoryStore struct {
	mu sync.Mutex
	m  map[string]map[string]Binding
	// Err, when set, is returned by every method (to test error handling).
	Err error
}

// LoadBindings implements BindingStore.
func (s *MemoryStore) LoadBindings(context.Context) ([]Binding, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Err != nil {
		return nil, s.Err
	}
	var out []Binding
	for _, line := range s.m {
		for _, b := range line {
			out = append(out, b)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].LineID != out[j].LineID {
			return out[i].LineID < out[j].LineID
		}
		return out[i].ContactURI < out[j].ContactURI
	})
	return out, nil
}

// SaveBinding implements BindingStore.
func (s *MemoryStore) SaveBinding(_ context.Context, b Binding) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Err != nil {
		return s.Err
	}
	if s.m == nil {
		s.m = make(map[string]map[string]Binding)
	}
	if s.m[b.LineID] == nil {
		s.m[b.LineID] = make(map[string]Binding)
	}
	s.m[b.LineID][b.ContactURI] = b
	return nil
}

// DeleteBinding implements BindingStore.
func (s *MemoryStore) DeleteBinding(_ context.Context, lineID, contactURI string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Err != nil {
		return s.Err
	}
	delete(s.m[lineID], contactURI)
	if len(s.m[lineID]) == 0 {
		delete(s.m, lineID)
	}
	return nil
}

// DeleteLine implements BindingStore.
func (s *MemoryStore) DeleteLine(_ context.Context, lineID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Err != nil {
		return s.Err
	}
	delete(s.m, lineID)
	return nil
}

// lineOps is the pending persistence work for one line: optionally wipe
// the line first, then per-contact saves (non-nil) or deletes (nil).
type lineOps struct {
	deleteAll bool
	contacts  map[string]*Binding
}

// writeBehind queues binding changes and applies them to a BindingStore
// from one goroutine. Changes are coalesced per (line, contact): a phone
// refreshing every minute costs one write per flush, not one per REGISTER.
//
// Trade-off: REGISTER is answered before its binding is durable. A crash
// loses at most the changes still queued (normally well under a second);
// phones re-register on their own, so the cost is a short window in which
// calls to them fail after a crash. A clean shutdown flushes the queue.
type writeBehind struct {
	store BindingStore
	log   *slog.Logger
	m     *metrics

	mu      sync.Mutex
	pending map[string]*lineOps
	order   []string
	wake    chan struct{}

	// With a SharedStore, what a reload from the store must not overwrite:
	// lines being written (inflight) and lines written since generation g
	// (written[line] > g), whose stored state may be newer than a read
	// started at g. Nil maps: not tracked.
	inflight map[string]int
	written  map[string]uint64
	gen      uint64
}

func newWriteBehind(store BindingStore, log *slog.Logger, m *metrics) *writeBehind {
	w := &writeBehind{store: store, log: log, m: m, pending: make(map[string]*lineOps), wake: make(chan struct{}, 1)}
	if _, ok := store.(SharedStore); ok {
		w.inflight, w.written = make(map[string]int), make(map[string]uint64)
	}
	return w
}

// generation returns the current write generation: a reload records it
// before reading the store, then applies only lines !busySince it.
func (w *writeBehind) generation() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gen
}

// busySince reports whether the line has local writes queued, in flight,
// or done after generation g.
func (w *writeBehind) busySince(lineID string, g uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pending[lineID] != nil || w.inflight[lineID] > 0 || w.written[lineID] > g
}

// forget drops the write records up to generation g, once no reload that
// started before g is left.
func (w *writeBehind) forget(g uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, v := range w.written {
		if v <= g {
			delete(w.written, id)
		}
	}
}

// finished records the end of the writes taken for ids (done or queued
// again).
func (w *writeBehind) finished(ids []string) {
	if w.inflight == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gen++
	for _, id := range ids {
		if w.inflight[id]--; w.inflight[id] <= 0 {
			delete(w.inflight, id)
		}
		w.written[id] = w.gen
	}
}

func (w *writeBehind) opsLocked(lineID string) *lineOps {
	ops := w.pending[lineID]
	if ops == nil {
		ops = &lineOps{contacts: make(map[string]*Binding, 1)}
		w.pending[lineID] = ops
		w.order = append(w.order, lineID)
	}
	return ops
}

func (w *writeBehind) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *writeBehind) save(b Binding) {
	w.mu.Lock()
	w.opsLocked(b.LineID).contacts[b.ContactURI] = &b
	w.m.storeQueue.Set(float64(len(w.pending)))
	w.mu.Unlock()
	w.signal()
}

func (w *writeBehind) remove(lineID, contactURI string) {
	w.mu.Lock()
	w.opsLocked(lineID).contacts[contactURI] = nil
	w.m.storeQueue.Set(float64(len(w.pending)))
	w.mu.Unlock()
	w.signal()
}

func (w *writeBehind) removeLine(lineID string) {
	w.mu.Lock()
	ops := w.opsLocked(lineID)
	ops.deleteAll = true
	clear(ops.contacts)
	w.m.storeQueue.Set(float64(len(w.pending)))
	w.mu.Unlock()
	w.signal()
}

// take removes and returns up to n queued lines.
func (w *writeBehind) take(n int) ([]string, []*lineOps) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n = min(n, len(w.order))
	ids := make([]string, n)
	copy(ids, w.order[:n])
	w.order = w.order[n:]
	if len(w.order) == 0 {
		w.order = nil
	}
	ops := make([]*lineOps, n)
	for i, id := range ids {
		ops[i] = w.pending[id]
		delete(w.pending, id)
		if w.inflight != nil {
			w.inflight[id]++
		}
	}
	w.m.storeQueue.Set(float64(len(w.pending)))
	return ids, ops
}

// requeue puts failed work back under any newer work for the same line.
func (w *writeBehind) requeue(lineID string, old *lineOps) {
	w.mu.Lock()
	defer w.mu.Unlock()
	cur := w.pending[lineID]
	if cur == nil {
		w.pending[lineID] = old
		w.order = append(w.order, lineID)
		return
	}
	if cur.deleteAll {
		return // the newer wipe supersedes everything older
	}
	for k, v := range cur.contacts {
		old.contacts[k] = v
	}
	w.pending[lineID] = old
}

func (w *writeBehind) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending)
}

// flushOnce writes everything queued now; it returns the first error of a
// write that failed and was queued again (nil if all went through).
func (w *writeBehind) flushOnce(ctx context.Context) error {
	for {
		ids, batch := w.take(256)
		if len(ids) == 0 {
			return nil
		}
		if err := w.flushBatch(ctx, ids, batch); err != nil {
			return err
		}
	}
}

// flushBatch writes the taken lines, queueing again what failed.
func (w *writeBehind) flushBatch(ctx context.Context, ids []string, batch []*lineOps) error {
	defer w.finished(ids)
	if err := w.saveBatch(ctx, ids, batch); err != nil {
		for i, id := range ids {
			w.requeue(id, batch[i])
		}
		w.m.storeErrors.Inc()
		return err
	}
	var first error
	for i, id := range ids {
		if first != nil && ctx.Err() != nil {
			w.requeue(id, batch[i]) // taken but not tried
			continue
		}
		if err := w.apply(ctx, id, batch[i]); err != nil {
			w.m.storeErrors.Inc()
			w.requeue(id, batch[i])
			if first == nil {
				first = fmt.Errorf("line %s: %w", id, err)
			}
		}
	}
	return first
}

// batchSaver is a BindingStore that upserts many bindings at once (sippg:
// one statement, one commit).
type batchSaver interface {
	SaveBindings(ctx context.Context, bs []Binding) error
}

// saveBatch saves, in one call when the store can, the bindings of the
// taken lines that need no wipe first, and removes them from their ops;
// deletes and wiped lines are left to apply. A batch the store rejects
// (one unstorable row fails the statement) is left whole to apply, which
// drops only the bad row.
func (w *writeBehind) saveBatch(ctx context.Context, ids []string, batch []*lineOps) error {
	bs, ok := w.store.(batchSaver)
	if !ok {
		return nil
	}
	var saves []Binding
	for _, ops := range batch {
		if ops.deleteAll {
			continue
		}
		for _, b := range ops.contacts {
			if b != nil {
				saves = append(saves, *b)
			}
		}
	}
	if len(saves) < 2 {
		return nil
	}
	err := bs.SaveBindings(ctx, saves)
	if errors.Is(err, ErrBindingRejected) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lines %s..: %w", ids[0], err)
	}
	for _, ops := range batch {
		if ops.deleteAll {
			continue
		}
		for uri, b := range ops.contacts {
			if b != nil {
				delete(ops.contacts, uri)
			}
		}
	}
	return nil
}

func (w *writeBehind) apply(ctx context.Context, lineID string, ops *lineOps) error {
	if ops.deleteAll {
		if err := w.store.DeleteLine(ctx, lineID); err != nil {
			return err
		}
		ops.deleteAll = false
	}
	for uri, b := range ops.contacts {
		var err error
		if b == nil {
			err = w.store.DeleteBinding(ctx, lineID, uri)
		} else {
			err = w.store.SaveBinding(ctx, *b)
		}
		if errors.Is(err, ErrBindingRejected) {
			// Retrying cannot help; REGISTER validation should have
			// refused it, so this is a bug worth an error line.
			w.m.storeErrors.Inc()
			w.log.Error("binding dropped: the store refuses it", "line", lineID, "err", err)
			err = nil
		}
		if err != nil {
			return err
		}
		delete(ops.contacts, uri)
	}
	return nil
}

// run flushes until ctx is done, then makes one last attempt bounded by
// flushTimeout. While the store fails it backs off (up to a minute) and
// logs once per outage, not once per attempt.
func (w *writeBehind) run(ctx context.Context, flushTimeout time.Duration) {
	const minBackoff, maxBackoff = 100 * time.Millisecond, time.Minute
	backoff := minBackoff
	failing := false
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
			err := w.flushOnce(fctx) // once: a failing store must not hold up shutdown
			cancel()
			if n := w.len(); n > 0 {
				w.log.Error("bindings not persisted at shutdown", "lines", n, "err", err)
			}
			return
		case <-w.wake:
		}
		err := w.flushOnce(ctx)
		if err == nil {
			if failing {
				w.log.Info("persisting bindings again")
			}
			failing, backoff = false, minBackoff
			continue
		}
		if !failing {
			w.log.Warn("persist bindings failed; retrying with backoff", "err", err)
		} else {
			w.log.Debug("persist bindings failed again", "err", err, "backoff", backoff)
		}
		failing = true
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
		w.signal()
	}
}
