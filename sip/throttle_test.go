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

// Spoofed one-way packets with a victim's source address cannot lock the
// victim out: a junk Authorization, or one carrying a nonce obtained at the
// attacker's own address, never counts.
func TestSpoofedFailuresBlockNobody(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.ThrottleFailures = 3; c.ThrottleSourceFailures = 5 })
	_ = b.r.Apply(context.Background(), lineCfg("L1", "100", dom, "pw"))
	victim := "192.0.2.10:5060"
	attacker := newPhone("100", "guess", dom)
	attacker.src = "203.0.113.66:5060"
	stolen := challengeNonce(t, b.r.handleRegister(attacker.request(t)), algMD5)
	for i := range 50 {
		junk := parseReq(t, "REGISTER sip:anything.invalid SIP/2.0\r\n"+
			"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-junk"+fmt.Sprint(i)+"\r\n"+
			"From: <sip:x@anything.invalid>;tag=1\r\nTo: <sip:x@anything.invalid>\r\n"+
			"Call-ID: junk\r\nCSeq: "+fmt.Sprint(i+1)+" REGISTER\r\n"+
			`Authorization: Digest username="x", realm="anything.invalid", nonce="junk", uri="sip:anything.invalid", response="00"`+"\r\n"+
			"Content-Length: 0\r\n\r\n", victim)
		if res := b.r.handleRegister(junk); res.StatusCode != 401 {
			t.Fatalf("junk %d: %d", i, res.StatusCode)
		}
		spoof := newPhone("100", "guess", dom)
		spoof.src = victim
		if res := b.r.handleRegister(spoof.request(t, spoof.authHeader(stolen, i+1))); res.StatusCode != 401 {
			t.Fatalf("spoofed nonce %d: %d", i, res.StatusCode)
		}
	}
	good := newPhone("100", "pw", dom)
	good.src = victim
	if res := good.register(t, b.r, good.contactHdr("")...); res.StatusCode != 200 {
		t.Fatalf("victim after spoofed failures: %d", res.StatusCode)
	}
}

// One phone's wrong password blocks that user from its address, not the
// other phones behind the same NAT; a scanner trying many users from one
// address hits the per-source ceiling and is blocked for every user.
func TestThrottleBySourceAndUser(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.ThrottleFailures = 3; c.ThrottleSourceFailures = 10 })
	_ = b.r.Apply(context.Background(), lineCfg("L1", "100", dom, "pw1"))
	_ = b.r.Apply(context.Background(), lineCfg("L2", "200", dom, "pw2"))
	nat := "198.51.100.1:5060"
	for range 3 {
		guess(t, b.r, nat, "100")
	}
	if got := guess(t, b.r, nat, "100"); got != 403 {
		t.Fatalf("user 100 from the NAT after 3 failures: %d", got)
	}
	neighbour := newPhone("200", "pw2", dom)
	neighbour.src = "198.51.100.1:5062"
	if res := neighbour.register(t, b.r, neighbour.contactHdr("")...); res.StatusCode != 200 {
		t.Fatalf("neighbour behind the NAT: %d", res.StatusCode)
	}
	scanner := "203.0.113.9:5060"
	for i := range 10 {
		if got := guess(t, b.r, scanner, fmt.Sprintf("u%d", i)); got != 401 {
			t.Fatalf("scan %d: %d", i, got)
		}
	}
	if got := guess(t, b.r, scanner, "someone-new"); got != 403 {
		t.Fatalf("scanner past the per-source ceiling: %d", got)
	}
}
