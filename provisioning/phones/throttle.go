package phones

import (
	"net/netip"
	"sync"
	"time"
)

// Throttle limits how hard one client can probe the provisioning endpoint:
// after MaxFailures unknown MACs or failed logins within Window, the source
// gets 429 for Block, whatever it asks. Phones that fetch their own file with
// their own credentials never fail, so a legitimate phone is blocked only if
// it shares an address (NAT) with a scanner.
type Throttle struct {
	MaxFailures int           // 0 means 10
	Window      time.Duration // 0 means 10 minutes
	Block       time.Duration // 0 means 15 minutes
	// MaxSources bounds the memory spent on tracking; beyond it new sources
	// are tracked only after expired entries are swept. 0 means 100000.
	MaxSources int
}

func (t Throttle) withDefaults() Throttle {
	if t.MaxFailures <= 0 {
		t.MaxFailures = 10
	}
	if t.Window <= 0 {
		t.Window = 10 * time.Minute
	}
	if t.Block <= 0 {
		t.Block = 15 * time.Minute
	}
	if t.MaxSources <= 0 {
		t.MaxSources = 100000
	}
	return t
}

type source struct {
	windowStart  time.Time
	failures     int
	blockedUntil time.Time
}

type throttler struct {
	cfg       Throttle
	mu        sync.Mutex
	sources   map[string]*source
	lastSweep time.Time
}

func newThrottler(cfg Throttle) *throttler {
	return &throttler{cfg: cfg.withDefaults(), sources: make(map[string]*source)}
}

// sourceKey groups IPv6 clients by /64, the block a single subscriber gets:
// otherwise one scanner could rotate through 2^64 addresses.
func sourceKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// blockedUntil reports whether key is blocked at now, and until when.
func (t *throttler) blockedUntil(key string, now time.Time) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sources[key]
	if s == nil || !now.Before(s.blockedUntil) {
		return time.Time{}, false
	}
	return s.blockedUntil, true
}

// fail records a failure and reports whether it started a block.
func (t *throttler) fail(key string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now.Sub(t.lastSweep) > t.cfg.Window || len(t.sources) >= t.cfg.MaxSources {
		t.sweep(now)
	}
	s := t.sources[key]
	if s == nil {
		if len(t.sources) >= t.cfg.MaxSources {
			return false // full of live entries: fail open rather than grow
		}
		s = &source{windowStart: now}
		t.sources[key] = s
	}
	if now.Before(s.blockedUntil) {
		return false
	}
	if now.Sub(s.windowStart) > t.cfg.Window {
		s.windowStart, s.failures = now, 0
	}
	s.failures++
	if s.failures >= t.cfg.MaxFailures {
		s.blockedUntil = now.Add(t.cfg.Block)
		s.windowStart, s.failures = now, 0
		return true
	}
	return false
}

// sweep drops sources neither blocked nor with failures in the window.
func (t *throttler) sweep(now time.Time) {
	t.lastSweep = now
	for k, s := range t.sources {
		if !now.Before(s.blockedUntil) && now.Sub(s.windowStart) > t.cfg.Window {
			delete(t.sources, k)
		}
	}
}

// blockedCount is the number of sources blocked at now, for the gauge.
func (t *throttler) blockedCount(now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, s := range t.sources {
		if now.Before(s.blockedUntil) {
			n++
		}
	}
	return n
}
