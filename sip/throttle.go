package sip

import (
	"sync"
	"time"
)

// throttle counts failed authentications per source IP and blocks sources
// that fail too often. Blocked sources are answered 403 Forbidden before any
// digest work, so a password-guessing client gets nothing to learn from and
// costs little CPU. (A 403 rather than silence: a misconfigured phone stops
// retrying sooner, and an operator debugging with sipp sees why.)
type throttle struct {
	limit      int
	window     time.Duration
	block      time.Duration
	maxSources int

	mu      sync.Mutex
	sources map[string]*throttleEntry
}

type throttleEntry struct {
	windowStart  time.Time
	failures     int
	blockedUntil time.Time
}

func newThrottle(cfg Config) *throttle {
	return &throttle{
		limit:      cfg.ThrottleFailures,
		window:     cfg.ThrottleWindow,
		block:      cfg.ThrottleBlock,
		maxSources: cfg.ThrottleMaxSources,
		sources:    make(map[string]*throttleEntry),
	}
}

// blocked reports whether ip is currently blocked.
func (t *throttle) blocked(ip string, now time.Time) bool {
	if t.limit == 0 {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.sources[ip]
	return e != nil && now.Before(e.blockedUntil)
}

// fail records a failed authentication from ip and reports whether this
// failure started a block.
func (t *throttle) fail(ip string, now time.Time) bool {
	if t.limit == 0 {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.sources[ip]
	if e == nil {
		if len(t.sources) >= t.maxSources {
			t.pruneLocked(now)
			if len(t.sources) >= t.maxSources {
				return false // table full of active offenders: do not grow
			}
		}
		e = &throttleEntry{windowStart: now}
		t.sources[ip] = e
	}
	if now.Before(e.blockedUntil) {
		return false
	}
	if now.Sub(e.windowStart) > t.window {
		e.windowStart, e.failures = now, 0
	}
	e.failures++
	if e.failures >= t.limit {
		e.blockedUntil = now.Add(t.block)
		e.failures = 0
		e.windowStart = e.blockedUntil
		return true
	}
	return false
}

// blockedCount returns the number of sources blocked at now.
func (t *throttle) blockedCount(now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, e := range t.sources {
		if now.Before(e.blockedUntil) {
			n++
		}
	}
	return n
}

// prune forgets sources that are neither blocked nor inside a window.
func (t *throttle) prune(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pruneLocked(now)
}

func (t *throttle) pruneLocked(now time.Time) {
	for ip, e := range t.sources {
		if !now.Before(e.blockedUntil) && now.Sub(e.windowStart) > t.window {
			delete(t.sources, ip)
		}
	}
}
