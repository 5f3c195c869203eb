package sip

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Two instances share the nonce key: a nonce from A is genuine on B but
// stale there (B never saw its counts), so a REGISTER captured on its way
// to A cannot be replayed to B, and the phone that moves to B retries at
// once with B's nonce, without counting as a failure.
func TestNonceAcrossInstances(t *testing.T) {
	t.Parallel()
	a, b := setup(t, nil), setup(t, nil)
	for _, x := range []bundle{a, b} {
		_ = x.r.Apply(context.Background(), lineCfg("L1", "100", dom, "pw"))
	}
	p := newPhone("100", "pw", dom)
	nonce := challengeNonce(t, a.r.handleRegister(p.request(t)), algMD5)
	captured := p.authHeader(nonce, 1)
	if res := a.r.handleRegister(p.request(t, append([]string{captured}, p.contactHdr("")...)...)); res.StatusCode != 200 {
		t.Fatalf("on A: %d", res.StatusCode)
	}
	for nc, auth := range []string{captured, p.authHeader(nonce, 2)} {
		res := b.r.handleRegister(p.request(t, append([]string{auth}, p.contactHdr("")...)...))
		if res.StatusCode != 401 || !strings.Contains(res.GetHeader("WWW-Authenticate").Value(), "stale=true") {
			t.Fatalf("A's nonce (nc %d) on B: want 401 stale=true, got %s", nc+1, res)
		}
		if nc == 1 {
			fresh := challengeNonce(t, res, algMD5)
			if res := b.r.handleRegister(p.request(t, append([]string{p.authHeader(fresh, 1)}, p.contactHdr("")...)...)); res.StatusCode != 200 {
				t.Fatalf("B's own nonce: %d", res.StatusCode)
			}
		}
	}
	if testutil.ToFloat64(b.r.m.authFailures) != 0 {
		t.Fatal("a genuine nonce of another instance counted as a failure")
	}
	// Nonces of a registrar with another key are no one's: a failure.
	other := setup(t, func(c *Config) { c.Secret = []byte("another secret, another cluster!") })
	_ = other.r.Apply(context.Background(), lineCfg("L1", "100", dom, "pw"))
	res := other.r.handleRegister(p.request(t, append([]string{p.authHeader(nonce, 3)}, p.contactHdr("")...)...))
	if res.StatusCode != 401 || strings.Contains(res.String(), "stale=true") {
		t.Fatalf("a nonce of another key: %s", res)
	}
}
