package asterisk

import (
	"testing"
	"time"
)

// Eight writes in flight failing together (Asterisk restarting) are one
// outage: the back-off is its first step, not the eighth.
func TestPacerConcurrentFailuresCountOnce(t *testing.T) {
	p := newPacer(func(n int) time.Duration { return time.Second << n })
	for range maxWritesInFlight {
		p.note(true)
	}
	if wait := time.Until(p.until); wait > time.Second || p.fails != 1 {
		t.Fatalf("after %d concurrent failures: back-off %v, fails %d; want ≤ 1s, 1", maxWritesInFlight, wait, p.fails)
	}
	p.until = time.Now().Add(-time.Millisecond) // the back-off passed
	p.note(true)
	if wait := time.Until(p.until); wait <= time.Second || p.fails != 2 {
		t.Fatalf("a failure after the back-off: back-off %v, fails %d; want 2s, 2", wait, p.fails)
	}
	p.reset()
	if !p.until.IsZero() || p.fails != 0 {
		t.Fatalf("after reset: until %v, fails %d", p.until, p.fails)
	}
}
