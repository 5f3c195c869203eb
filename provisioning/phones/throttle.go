package phones

import (
	"time"

	"github.com/pbxd/pbxd/internal/throttle"
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
	// MaxSources bounds the memory spent on tracking (fixed size); beyond
	// it the sources seen least recently are forgotten. 0 means 100000.
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

// throttler adapts the shared internal/throttle.Limiter to the handler.
type throttler struct {
	cfg Throttle
	l   *throttle.Limiter
}

func newThrottler(cfg Throttle) *throttler {
	cfg = cfg.withDefaults()
	return &throttler{cfg: cfg, l: throttle.New(throttle.Config{
		Limit: cfg.MaxFailures, Window: cfg.Window, Block: cfg.Block, Size: cfg.MaxSources,
	})}
}

// sourceKey groups IPv6 clients by /64 (see throttle.Source).
func sourceKey(ip string) string { return throttle.Prefix(ip) }

// blockedUntil reports whether key is blocked at now, and until when.
func (t *throttler) blockedUntil(key string, now time.Time) (time.Time, bool) {
	return t.l.BlockedUntil(t.l.Key(key), now)
}

// fail records a failure and reports whether it started a block.
func (t *throttler) fail(key string, now time.Time) bool { return t.l.Fail(t.l.Key(key), now) }

// blockedCount is the number of sources blocked at now, for the gauge.
func (t *throttler) blockedCount(now time.Time) int { return t.l.BlockedCount(now) }
