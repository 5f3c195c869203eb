package sip

import (
	"context"
	"sync"

	"github.com/pbxd/pbxd/pbx"
)

// eventQueue coalesces registration events per line in front of the
// Events channel: while an event for a line waits, a newer one replaces it
// (events carry the full contact set, so only the latest matters). REGISTER
// handling never blocks on the consumer and memory is bounded by the
// number of lines.
type eventQueue struct {
	out chan pbx.RegistrationEvent

	mu      sync.Mutex
	pending map[string]pbx.RegistrationEvent
	order   []string
	wake    chan struct{}
}

func newEventQueue(buffer int) *eventQueue {
	return &eventQueue{
		out:     make(chan pbx.RegistrationEvent, buffer),
		pending: make(map[string]pbx.RegistrationEvent),
		wake:    make(chan struct{}, 1),
	}
}

func (q *eventQueue) push(ev pbx.RegistrationEvent) {
	q.mu.Lock()
	if _, ok := q.pending[ev.LineID]; !ok {
		q.order = append(q.order, ev.LineID)
	}
	q.pending[ev.LineID] = ev
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *eventQueue) pop() (pbx.RegistrationEvent, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.order) == 0 {
		return pbx.RegistrationEvent{}, false
	}
	id := q.order[0]
	q.order = q.order[1:]
	if len(q.order) == 0 {
		q.order = nil
	}
	ev := q.pending[id]
	delete(q.pending, id)
	return ev, true
}

// run moves events to the channel until ctx is done, then delivers what is
// still queued if the consumer takes it without blocking, and closes the
// channel.
func (q *eventQueue) run(ctx context.Context) {
	defer close(q.out)
	for {
		ev, ok := q.pop()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
				continue
			}
		}
		select {
		case q.out <- ev:
		case <-ctx.Done():
			return
		}
	}
}
