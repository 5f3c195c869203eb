package sip

import (
	"context"
	"fmt"
	"testing"
)

// guess makes one failed authentication of user from src (challenge, then
// a wrong password) and returns the final status.
func guess(t testing.TB, r *Registrar, src, user string) int {
	t.Helper()
	p := newPhone(user, "guess", dom)
	p.src = src
	return p.register(t, r, p.contactHdr("")...).StatusCode
}

// With the source table full of blocked sources, a new offender is still
// blocked and a legitimate phone still registers (the old table stopped
// tracking new sources once full, and scanned itself under the lock every
// REGISTER took).
func TestThrottleFullTable(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) {
		c.ThrottleFailures = 2
		c.ThrottleMaxSources = 1000
	})
	_ = b.r.Apply(context.Background(), lineCfg("L1", "100", dom, "pw"))
	for i := range 1500 {
		src := fmt.Sprintf("127.%d.%d.%d:5060", i>>16&255, i>>8&255, i&255)
		guess(t, b.r, src, "100")
		guess(t, b.r, src, "100")
	}
	late := "10.9.9.9:5060"
	guess(t, b.r, late, "100")
	guess(t, b.r, late, "100")
	if got := guess(t, b.r, late, "100"); got != 403 {
		t.Fatalf("new offender with a full table: %d, want 403", got)
	}
	good := newPhone("100", "pw", dom)
	good.src = "192.0.2.77:5060"
	if res := good.register(t, b.r, good.contactHdr("")...); res.StatusCode != 200 {
		t.Fatalf("legitimate phone: %d", res.StatusCode)
	}
}
