package asterisk

import (
	"context"
	"sync"
	"time"
)

// maxWritesInFlight bounds a node's ARI writes (PUT, DELETE) in flight,
// whatever the reconciler's concurrency and however many resync repairs
// run beside it. Each write queues sorcery observer work in Asterisk (a new
// AOR makes res_pjsip read every endpoint), so more parallel writes only
// lengthen its taskprocessor queues.
const maxWritesInFlight = 8

// pacer paces a node's writes on Asterisk's answers: at most
// maxWritesInFlight at once, and after an answer that says Asterisk is
// overloaded or gone (5xx, timeout, connection failure) no new write starts
// before a capped exponential back-off has passed; a success resets it.
type pacer struct {
	slots   chan struct{}
	backoff func(attempt int) time.Duration

	mu    sync.Mutex
	fails int       // consecutive unavailable answers
	until time.Time // no write starts before
}

func newPacer(backoff func(int) time.Duration) *pacer {
	return &pacer{slots: make(chan struct{}, maxWritesInFlight), backoff: backoff}
}

// acquire waits for the back-off to pass and a free slot.
func (p *pacer) acquire(ctx context.Context) error {
	if err := p.wait(ctx); err != nil {
		return err
	}
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wait waits for the back-off to pass (reads of objects wait too, but
// take no slot).
func (p *pacer) wait(ctx context.Context) error {
	for {
		p.mu.Lock()
		wait := time.Until(p.until)
		p.mu.Unlock()
		if wait <= 0 {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// release frees the slot of a write that ended; unavailable tells whether
// Asterisk answered 5xx, timed out or could not be reached.
func (p *pacer) release(unavailable bool) {
	<-p.slots
	p.note(unavailable)
}

// note records how Asterisk answered a request. Failures that end inside
// the current back-off came from requests started before it, the same
// outage: they do not lengthen it, or the eight writes in flight when
// Asterisk restarts would push the back-off to its cap at once.
func (p *pacer) note(unavailable bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !unavailable {
		p.fails = 0
		return
	}
	now := time.Now()
	if now.Before(p.until) {
		return
	}
	p.until = now.Add(p.backoff(p.fails))
	p.fails++
}

// reset clears the back-off: the node answered its health check again.
func (p *pacer) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fails, p.until = 0, time.Time{}
}
