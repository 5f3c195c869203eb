package sip

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pbxd/pbxd/pbx"
)

const dom = "acme.voip.example.net"

func registered(t *testing.T, b bundle, id string) []Binding {
	t.Helper()
	return b.r.Contacts(id)
}

func TestRegisterDigest(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{algMD5, algSHA256} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(c *Config) { c.DigestAlgorithms = []string{algMD5, algSHA256} })
			if err := b.r.Apply(context.Background(), lineCfg("L1", "100", dom, "secret-pw")); err != nil {
				t.Fatal(err)
			}
			p := newPhone("100", "secret-pw", dom)
			p.alg = alg
			first := b.r.handleRegister(p.request(t, p.contactHdr("600")...))
			if first.StatusCode != 401 {
				t.Fatalf("first REGISTER: %d", first.StatusCode)
			}
			ws := first.GetHeaders("WWW-Authenticate")
			if len(ws) != 2 || !strings.Contains(ws[0].Value(), "algorithm=MD5") || !strings.Contains(ws[1].Value(), "algorithm=SHA-256") ||
				!strings.Contains(ws[0].Value(), `qop="auth"`) || !strings.Contains(ws[0].Value(), `realm="`+dom+`"`) {
				t.Fatalf("challenge headers: %v", ws)
			}
			res := b.r.handleRegister(p.request(t, append([]string{p.authHeader(challengeNonce(t, first, alg), 1)}, p.contactHdr("600")...)...))
			if res.StatusCode != 200 {
				t.Fatalf("authenticated REGISTER: %d %s", res.StatusCode, res.Reason)
			}
			c := res.GetHeaders("Contact")
			if len(c) != 1 || c[0].Value() != "<sip:100@192.0.2.10:5060>;expires=600" {
				t.Fatalf("contacts in 200: %v", c)
			}
			bs := registered(t, b, "L1")
			if len(bs) != 1 || bs[0].Source != "udp:192.0.2.10:5060" || bs[0].UserAgent != "testphone" ||
				!bs[0].ExpiresAt.Equal(b.clock.Now().Add(600*time.Second)) {
				t.Fatalf("bindings: %+v", bs)
			}
			ev := nextEvent(t, b.r)
			if ev.LineID != "L1" || len(ev.Contacts) != 1 || ev.Contacts[0].URI != "sip:100@192.0.2.10:5060" {
				t.Fatalf("event: %+v", ev)
			}
			flush(t, b.r)
			stored, _ := b.store.LoadBindings(context.Background())
			if len(stored) != 1 || stored[0].LineID != "L1" {
				t.Fatalf("stored: %+v", stored)
			}
			if got := testutil.ToFloat64(b.r.m.registers.WithLabelValues(resultOK)); got != 1 {
				t.Fatalf("ok count %v", got)
			}
			if got := testutil.ToFloat64(b.r.m.registers.WithLabelValues(resultChallenge)); got != 1 {
				t.Fatalf("challenge count %v", got)
			}
			if b.r.ActiveContacts() != 1 {
				t.Fatal("active contacts")
			}
		})
	}
}

// normalize strips what legitimately differs between two challenges.
func normalize(s string) string {
	s = regexp.MustCompile(`nonce="[^"]+"`).ReplaceAllString(s, `nonce=X`)
	s = regexp.MustCompile(`tag=[^;\r\n>]+`).ReplaceAllString(s, `tag=X`)
	s = regexp.MustCompile(`(?m)^(Via|From|Call-ID|CSeq|To):.*$`).ReplaceAllString(s, `$1: X`)
	return s
}

// MD5 only by default (baresip fails on any SHA-256 challenge); SHA-256
// opt-in per instance and per account (domain); an algorithm not offered
// is refused.
func TestDigestAlgorithms(t *testing.T) {
	t.Parallel()
	const shaDom = "sha.example.net"
	b := setup(t, func(c *Config) {
		c.DomainDigestAlgorithms = map[string][]string{"SHA.example.net": {"sha-256", "md5"}}
	})
	_ = b.r.Apply(context.Background(), lineCfg("L1", "100", dom, "pw"))
	_ = b.r.Apply(context.Background(), lineCfg("L2", "200", shaDom, "pw"))
	algs := func(res interface{ String() string }) []string {
		return regexp.MustCompile(`algorithm=([A-Z0-9-]+)`).FindAllString(res.String(), -1)
	}
	p := newPhone("100", "pw", dom)
	ch := b.r.handleRegister(p.request(t))
	if got := algs(ch); len(got) != 1 || got[0] != "algorithm=MD5" {
		t.Fatalf("default challenge offers %v", got)
	}
	p.alg = algSHA256 // answers an algorithm it was not offered
	if res := b.r.handleRegister(p.request(t, p.authHeader(challengeNonce(t, ch, algMD5), 1))); res.StatusCode != 401 {
		t.Fatalf("SHA-256 answer to an MD5-only challenge: %d", res.StatusCode)
	}
	q := newPhone("200", "pw", shaDom)
	if got := algs(b.r.handleRegister(q.request(t))); len(got) != 2 || got[0] != "algorithm=SHA-256" || got[1] != "algorithm=MD5" {
		t.Fatalf("per-domain challenge offers %v", got)
	}
	q.alg = algSHA256
	if res := q.register(t, b.r, q.contactHdr("")...); res.StatusCode != 200 {
		t.Fatalf("SHA-256 on its domain: %d", res.StatusCode)
	}
	for _, bad := range [][]string{{}, {"SHA-512"}, {"MD5", "md5"}} {
		cfg := testConfig()
		cfg.DigestAlgorithms = bad
		if cfg.Validate() == nil {
			t.Errorf("digest algorithms %q accepted", bad)
		}
	}
}

func TestWrongPasswordAndUnknownUserLookTheSame(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_ = b.r.Apply(context.Background(), lineCfg("L1", "100", dom, "right"))
	wrong := newPhone("100", "wrong", dom)
	unknown := newPhone("999", "whatever", dom)
	otherDomain := newPhone("100", "right", "nowhere.example")
	r1 := wrong.register(t, b.r, wrong.contactHdr("")...)
	r2 := unknown.register(t, b.r, unknown.contactHdr("")...)
	r3 := otherDomain.register(t, b.r, otherDomain.contactHdr("")...)
	if r1.StatusCode != 401 || r2.StatusCode != 401 || r3.StatusCode != 401 {
		t.Fatalf("statuses %d %d %d", r1.StatusCode, r2.StatusCode, r3.StatusCode)
	}
	if normalize(r1.String()) != normalize(r2.String()) {
		t.Fatalf("responses differ:\n%s\n%s", r1, r2)
	}
	if strings.Contains(r1.String(), "stale") {
		t.Fatal("stale in a failure")
	}
	if got := testutil.ToFloat64(b.r.m.authFailures); got != 3 {
		t.Fatalf("auth failures %v", got)
	}
}

func TestStaleNonce(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.NonceLifetime = time.Minute })
	_ = b.r.Apply(context.Background(), lineCfg("L1", "100", dom, "pw"))
	p := newPhone("100", "pw", dom)
	ch := b.r.handleRegister(p.request(t, p.contactHdr("")...))
	nonce := challengeNonce(t, ch, algMD5)
	b.clock.Advance(61 * time.Second)
	res := b.r.handleRegister(p.request(t, append([]string{p.authHeader(nonce, 1)}, p.contactHdr("")...)...))
	if res.StatusCode != 401 || !strings.Contains(res.GetHeader("WWW-Authenticate").Value(), "stale=true") {
		t.Fatalf("want 401 stale=true, got %s", res)
	}
	if testutil.ToFloat64(b.r.m.authFailures) != 0 {
		t.Fatal("stale nonce counted as failure")
	}
	// The fresh nonce works.
	res = b.r.handleRegister(p.request(t, append([]string{p.authHeader(challengeNonce(t, res, algMD5), 1)}, p.contactHdr("")...)...))
	if res.StatusCode != 200 {
		t.Fatalf("after stale: %d", res.StatusCode)
	}
	// A forged nonce is a failure, not stale.
	res = b.r.handleRegister(p.request(t, append([]string{p.authHeader(strings.Repeat("A", nonceLen), 1)}, p.contactHdr("")...)...))
	if res.StatusCode != 401 || strings.Contains(res.String(), "stale=true") {
		t.Fatalf("forged nonce: %s", res)
	}
}

func TestNonceCountReplay(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_ = b.r.Apply(context.Background(), lineCfg("L1", "100", dom, "pw"))
	p := newPhone("100", "pw", dom)
	nonce := challengeNonce(t, b.r.handleRegister(p.request(t)), algMD5)
	auth := p.authHeader(nonce, 1)
	if res := b.r.handleRegister(p.request(t, append([]string{auth}, p.contactHdr("")...)...)); res.StatusCode != 200 {
		t.Fatalf("first use: %d", res.StatusCode)
	}
	if res := b.r.handleRegister(p.request(t, append([]string{auth}, p.contactHdr("")...)...)); res.StatusCode != 401 {
		t.Fatalf("replay: %d", res.StatusCode)
	}
	if res := b.r.handleRegister(p.request(t, append([]string{p.authHeader(nonce, 2)}, p.contactHdr("")...)...)); res.StatusCode != 200 {
		t.Fatalf("nc=2: %d", res.StatusCode)
	}
	if res := b.r.handleRegister(p.request(t, append([]string{p.authHeader(nonce, 2)}, p.contactHdr("")...)...)); res.StatusCode != 401 {
		t.Fatalf("nc=2 again: %d", res.StatusCode)
	}
}

func TestNCTrackerBounded(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	tr := newNCTracker(1024, now)
	issued := now.Add(time.Second)
	later := now.Add(2 * time.Second)
	if ok, _ := tr.use("first", issued, 1, later); !ok {
		t.Fatal("first use refused")
	}
	for i := range 5000 {
		tr.use("n"+string(rune(i))+strings.Repeat("x", i%7), later, 1, later.Add(time.Duration(i)*time.Millisecond))
	}
	total := 0
	for i := range tr.shards {
		total += len(tr.shards[i].cur) + len(tr.shards[i].prev)
	}
	if total > 1024+2*len(tr.shards) {
		t.Fatalf("tracker holds %d entries", total)
	}
	// "first" may have been forgotten: it must then be refused as stale,
	// never accepted again.
	ok, stale := tr.use("first", issued, 1, later.Add(time.Hour))
	if ok || (!stale && ok) {
		t.Fatalf("replay of a forgotten nonce accepted (ok=%v stale=%v)", ok, stale)
	}
}

func TestExpiresBounds(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) {
		c.MinExpires = 60 * time.Second
		c.MaxExpires = time.Hour
		c.DefaultExpires = 30 * time.Minute
	})
	_ = b.r.Apply(context.Background(), lineCfg("L1", "100", dom, "pw"))
	p := newPhone("100", "pw", dom)
	res := p.register(t, b.r, p.contactHdr("10")...)
	if res.StatusCode != 423 || res.GetHeader("Min-Expires").Value() != "60" {
		t.Fatalf("too brief: %s", res)
	}
	if got := testutil.ToFloat64(b.r.m.registers.WithLabelValues(resultIntervalTooBrief)); got != 1 {
		t.Fatalf("metric %v", got)
	}
	res = p.register(t, b.r, p.contactHdr("99999")...)
	if res.StatusCode != 200 || !strings.HasSuffix(res.GetHeader("Contact").Value(), ";expires=3600") {
		t.Fatalf("clamped: %s", res)
	}
	// contact parameter wins over the header
	res = p.register(t, b.r, "Contact: "+p.contact+";expires=120", "Expires: 10")
	if res.StatusCode != 200 || !strings.HasSuffix(res.GetHeader("Contact").Value(), ";expires=120") {
		t.Fatalf("param: %s", res)
	}
	res = p.register(t, b.r, p.contactHdr("")...)
	if res.StatusCode != 200 || !strings.HasSuffix(res.GetHeader("Contact").Value(), ";expires=1800") {
		t.Fatalf("default: %s", res)
	}
	res = p.register(t, b.r, p.contactHdr("abc")...)
	if res.StatusCode != 400 {
		t.Fatalf("malformed Expires: %d", res.StatusCode)
	}
}

func TestRefreshUnregisterAndWildcard(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_ = b.r.Apply(context.Background(), lineCfg("L1", "100", dom, "pw"))
	p := newPhone("100", "pw", dom)
	if res := p.register(t, b.r, p.contactHdr("600")...); res.StatusCode != 200 {
		t.Fatal(res)
	}
	b.clock.Advance(300 * time.Second)
	if res := p.register(t, b.r, p.contactHdr("600")...); res.StatusCode != 200 {
		t.Fatal(res)
	}
	if bs := b.r.Contacts("L1"); len(bs) != 1 || !bs[0].ExpiresAt.Equal(b.clock.Now().Add(600*time.Second)) {
		t.Fatalf("refresh: %+v", bs)
	}
	res := p.register(t, b.r, p.contactHdr("0")...)
	if res.StatusCode != 200 || len(res.GetHeaders("Contact")) != 0 || len(b.r.Contacts("L1")) != 0 {
		t.Fatalf("unregister: %s", res)
	}
	// two contacts, then Contact: *
	q := newPhone("100", "pw", dom)
	q.callID, q.contact = "other-call", "<sip:100@198.51.100.7:5062>"
	_ = p.register(t, b.r, p.contactHdr("600")...)
	_ = q.register(t, b.r, q.contactHdr("600")...)
	if n := len(b.r.Contacts("L1")); n != 2 {
		t.Fatalf("want 2 contacts, got %d", n)
	}
	if res := p.register(t, b.r, "Contact: *", "Expires: 5"); res.StatusCode != 400 {
		t.Fatalf("* without Expires 0: %d", res.StatusCode)
	}
	if res := p.register(t, b.r, "Contact: *", "Contact: "+p.contact, "Expires: 0"); res.StatusCode != 400 {
		t.Fatalf("* with another contact: %d", res.StatusCode)
	}
	for range 10 { // drain
		if _, ok := b.r.events.pop(); !ok {
			break
		}
	}
	if res := p.register(t, b.r, "Contact: *", "Expires: 0"); res.StatusCode != 200 {
		t.Fatalf("Contact: *: %s", res)
	}
	if n := len(b.r.Contacts("L1")); n != 0 {
		t.Fatalf("after *: %d contacts", n)
	}
	if ev := nextEvent(t, b.r); ev.Registered() {
		t.Fatalf("event after *: %+v", ev)
	}
	flush(t, b.r)
	if s, _ := b.store.LoadBindings(context.Background()); len(s) != 0 {
		t.Fatalf("store after *: %+v", s)
	}
}

func TestFetch(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_ = b.r.Apply(context.Background(), lineCfg("L1", "100", dom, "pw"))
	p := newPhone("100", "pw", dom)
	_ = p.register(t, b.r, p.contactHdr("600")...)
	b.clock.Advance(100 * time.Second)
	res := p.register(t, b.r)
	if res.StatusCode != 200 || len(res.GetHeaders("Contact")) != 1 ||
		res.GetHeader("Contact").Value() != "<sip:100@192.0.2.10:5060>;expires=500" {
		t.Fatalf("fetch: %s", res)
	}
}

func TestMaxContacts(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.MaxContacts = 2 })
	_ = b.r.Apply(context.Background(), lineCfg("L1", "100", dom, "pw"))
	p := newPhone("100", "pw", dom)
	for i, c := range []string{"<sip:a@192.0.2.1>", "<sip:b@192.0.2.2>", "<sip:c@192.0.2.3>"} {
		p.contact = c
		p.callID = "call-" + c
		if res := p.register(t, b.r, p.contactHdr("600")...); res.StatusCode != 200 {
			t.Fatal(res)
		}
		b.clock.Advance(time.Second)
		_ = i
	}
	bs := b.r.Contacts("L1")
	if len(bs) != 2 || bs[0].ContactURI != "sip:b@192.0.2.2" || bs[1].ContactURI != "sip:c@192.0.2.3" {
		t.Fatalf("oldest not replaced: %+v", bs)
	}
	res := p.register(t, b.r, "Contact: <sip:x@192.0.2.9>, <sip:y@192.0.2.9>, <sip:z@192.0.2.9>", "Expires: 600")
	if res.StatusCode != 403 {
		t.Fatalf("3 contacts in one request: %d", res.StatusCode)
	}
	// The line's own limit wins over the default.
	lc := lineCfg("L1", "100", dom, "pw")
	lc.MaxContacts = 3
	_ = b.r.Apply(context.Background(), lc)
	if res := p.register(t, b.r, "Contact: <sip:x@192.0.2.9>, <sip:y@192.0.2.9>, <sip:z@192.0.2.9>", "Expires: 600"); res.StatusCode != 200 || len(b.r.Contacts("L1")) != 3 {
		t.Fatalf("line max 3: %s", res)
	}
}

func TestCSeqOrdering(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_ = b.r.Apply(context.Background(), lineCfg("L1", "100", dom, "pw"))
	p := newPhone("100", "pw", dom)
	p.cseq = 50
	if res := p.register(t, b.r, p.contactHdr("600")...); res.StatusCode != 200 {
		t.Fatal(res)
	}
	p.cseq = 10 // same Call-ID, lower CSeq
	if res := p.register(t, b.r, p.contactHdr("0")...); res.StatusCode != 500 {
		t.Fatalf("out of order: %d", res.StatusCode)
	}
	if len(b.r.Contacts("L1")) != 1 {
		t.Fatal("out-of-order request changed bindings")
	}
}

func TestThrottle(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) {
		c.ThrottleFailures = 3
		c.ThrottleWindow = time.Minute
		c.ThrottleBlock = 5 * time.Minute
	})
	_ = b.r.Apply(context.Background(), lineCfg("L1", "100", dom, "pw"))
	bad := newPhone("100", "guess", dom)
	for i := range 3 {
		if res := bad.register(t, b.r, bad.contactHdr("")...); res.StatusCode != 401 {
			t.Fatalf("failure %d: %d", i, res.StatusCode)
		}
	}
	if got := testutil.ToFloat64(b.r.m.throttled); got != 1 {
		t.Fatalf("throttled_total %v", got)
	}
	// Even the right password from that source is refused now.
	good := newPhone("100", "pw", dom)
	if res := good.register(t, b.r, good.contactHdr("")...); res.StatusCode != 403 {
		t.Fatalf("blocked source: %d", res.StatusCode)
	}
	if got := testutil.ToFloat64(b.r.m.registers.WithLabelValues(resultThrottled)); got != 1 {
		t.Fatalf("throttled results %v", got)
	}
	// Another source is not affected.
	other := newPhone("100", "pw", dom)
	other.src = "198.51.100.1:5060"
	if res := other.register(t, b.r, other.contactHdr("")...); res.StatusCode != 200 {
		t.Fatalf("other source: %d", res.StatusCode)
	}
	if b.r.thrUser.BlockedCount(b.clock.Now()) != 1 {
		t.Fatal("blocked gauge")
	}
	b.clock.Advance(5*time.Minute + time.Second)
	if res := good.register(t, b.r, good.contactHdr("")...); res.StatusCode != 200 {
		t.Fatalf("after block: %d", res.StatusCode)
	}
}

func TestSuspendedAndRemovedLines(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	lc := lineCfg("L1", "100", dom, "pw")
	_ = b.r.Apply(ctx, lc)
	p := newPhone("100", "pw", dom)
	_ = p.register(t, b.r, p.contactHdr("600")...)
	_ = nextEvent(t, b.r)
	lc.Suspended = true
	_ = b.r.Apply(ctx, lc)
	if ev := nextEvent(t, b.r); ev.LineID != "L1" || ev.Registered() {
		t.Fatalf("suspend event %+v", ev)
	}
	if len(b.r.Contacts("L1")) != 0 || b.r.ActiveContacts() != 0 {
		t.Fatal("bindings kept after suspension")
	}
	if res := p.register(t, b.r, p.contactHdr("600")...); res.StatusCode != 403 {
		t.Fatalf("suspended line: %d", res.StatusCode)
	}
	lc.Suspended = false
	_ = b.r.Apply(ctx, lc)
	if res := p.register(t, b.r, p.contactHdr("600")...); res.StatusCode != 200 {
		t.Fatalf("resumed line: %d", res.StatusCode)
	}
	_ = nextEvent(t, b.r)
	_ = b.r.Remove(ctx, "L1")
	if ev := nextEvent(t, b.r); ev.Registered() {
		t.Fatalf("remove event %+v", ev)
	}
	if res := p.register(t, b.r, p.contactHdr("600")...); res.StatusCode != 401 {
		t.Fatalf("removed line: %d", res.StatusCode)
	}
	flush(t, b.r)
	if s, _ := b.store.LoadBindings(ctx); len(s) != 0 {
		t.Fatalf("store %+v", s)
	}
}

func TestPasswordChange(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_ = b.r.Apply(context.Background(), lineCfg("L1", "100", dom, "old"))
	p := newPhone("100", "old", dom)
	if res := p.register(t, b.r, p.contactHdr("")...); res.StatusCode != 200 {
		t.Fatal(res)
	}
	_ = b.r.Apply(context.Background(), lineCfg("L1", "100", dom, "new"))
	if res := p.register(t, b.r, p.contactHdr("")...); res.StatusCode != 401 {
		t.Fatalf("old password: %d", res.StatusCode)
	}
	p.pw = "new"
	if res := p.register(t, b.r, p.contactHdr("")...); res.StatusCode != 200 {
		t.Fatalf("new password: %d", res.StatusCode)
	}
}

func TestAuthUsernameMustMatchTo(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_ = b.r.Apply(context.Background(), lineCfg("L1", "100", dom, "pw1"))
	_ = b.r.Apply(context.Background(), lineCfg("L2", "101", dom, "pw2"))
	p := newPhone("100", "pw2", dom) // registers 100 with 101's credentials
	p.authUser = "101"
	if res := p.register(t, b.r, p.contactHdr("")...); res.StatusCode != 401 {
		t.Fatalf("cross-user: %d", res.StatusCode)
	}
}

func TestSweepExpires(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_ = b.r.Apply(context.Background(), lineCfg("L1", "100", dom, "pw"))
	p := newPhone("100", "pw", dom)
	_ = p.register(t, b.r, p.contactHdr("120")...)
	_ = nextEvent(t, b.r)
	b.clock.Advance(119 * time.Second)
	if n := b.r.Sweep(); n != 0 {
		t.Fatalf("swept %d early", n)
	}
	b.clock.Advance(2 * time.Second)
	if n := b.r.Sweep(); n != 1 {
		t.Fatalf("swept %d", n)
	}
	if ev := nextEvent(t, b.r); ev.Registered() {
		t.Fatal("expiry event has contacts")
	}
	if testutil.ToFloat64(b.r.m.expired) != 1 || b.r.ActiveContacts() != 0 {
		t.Fatal("expiry metrics")
	}
}

func TestMalformed(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_ = b.r.Apply(context.Background(), lineCfg("L1", "100", dom, "pw"))
	noUser := "REGISTER sip:" + dom + " SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:" + dom + ">;tag=1\r\nTo: <sip:" + dom + ">\r\nCall-ID: x\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"
	if res := b.r.handleRegister(parseReq(t, noUser, "192.0.2.1:5060")); res.StatusCode != 400 {
		t.Fatalf("To without user: %d", res.StatusCode)
	}
	p := newPhone("100", "pw", dom)
	if res := b.r.handleRegister(p.request(t, `Authorization: Digest username="100", realm="`+dom+`", nonce="abc`)); res.StatusCode != 400 {
		t.Fatalf("broken Authorization: %d", res.StatusCode)
	}
	if res := b.r.handleRegister(p.request(t, "Authorization: Basic dXNlcjpwdw==")); res.StatusCode != 400 {
		t.Fatalf("Basic auth: %d", res.StatusCode)
	}
}

func TestBackend(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	var be pbx.Backend = b.r
	if be.Name() != "builtin" || be.Connected() {
		t.Fatal("name/connected before Run")
	}
	if err := be.Apply(ctx, pbx.LineConfig{ID: "x"}); !errors.Is(err, ErrInvalidLine) {
		t.Fatalf("invalid line: %v", err)
	}
	l2, l1 := lineCfg("L2", "101", dom, "a"), lineCfg("L1", "100", dom, "b")
	_ = be.Apply(ctx, l2)
	_ = be.Apply(ctx, l1)
	_ = be.Apply(ctx, l1) // idempotent
	got, _ := be.List(ctx)
	if len(got) != 2 || got[0] != l1 || got[1] != l2 {
		t.Fatalf("list %+v", got)
	}
	// Renaming a line moves its address.
	l1b := l1
	l1b.Username = "150"
	l1b.HA1MD5 = ha1(algMD5, "150", dom, "b")
	_ = be.Apply(ctx, l1b)
	p := newPhone("150", "b", dom)
	if res := p.register(t, b.r, p.contactHdr("")...); res.StatusCode != 200 {
		t.Fatalf("renamed: %d", res.StatusCode)
	}
	old := newPhone("100", "b", dom)
	if res := old.register(t, b.r, old.contactHdr("")...); res.StatusCode != 401 {
		t.Fatalf("old name: %d", res.StatusCode)
	}
	_ = be.Remove(ctx, "L2")
	_ = be.Remove(ctx, "absent")
	if got, _ := be.List(ctx); len(got) != 1 {
		t.Fatalf("after remove %+v", got)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if err := testConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := testConfig()
	bad.Secret = nil
	bad.MinExpires = 3 * time.Hour
	bad.TLSListen = "127.0.0.1:0"
	bad.UDPListen = "nope"
	err := bad.Validate()
	for _, want := range []string{"secret", "expires", "tls", "udp"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
	if _, err := New(bad, nil, nil, nil, nil); err == nil {
		t.Fatal("New accepted a bad config")
	}
}

func TestBindErrorAtNew(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	cfg := testConfig()
	cfg.TCPListen = b.r.Addrs().TCP
	if _, err := New(cfg, nil, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "listen tcp") {
		t.Fatalf("want bind error, got %v", err)
	}
}

// Values a binding stores are checked before the REGISTER is acknowledged:
// PostgreSQL refused NUL and invalid UTF-8 after the 200 and the write was
// retried for ever.
func TestUnstorableHeaderValues(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_ = b.r.Apply(context.Background(), lineCfg("L1", "100", dom, "pw"))
	long := strings.Repeat("x", 600)
	for name, c := range map[string]struct{ ua, contact string }{
		"UA NUL":          {"bad\x00phone", "<sip:100@192.0.2.10>"},
		"UA invalid UTF8": {"bad\xffphone", "<sip:100@192.0.2.10>"},
		"UA control":      {"bad\x1bphone", "<sip:100@192.0.2.10>"},
		"UA too long":     {long, "<sip:100@192.0.2.10>"},
		"contact UTF8":    {"ok", "<sip:10\xc3\x28@192.0.2.10>"},
		"contact long":    {"ok", "<sip:100@192.0.2.10;x=" + strings.Repeat("y", 3000) + ">"},
	} {
		p := newPhone("100", "pw", dom)
		p.callID, p.ua = name, c.ua
		res := p.register(t, b.r, "Contact: "+c.contact)
		if res.StatusCode != 400 {
			t.Errorf("%s: %d %s", name, res.StatusCode, res.Reason)
		}
	}
	if n := len(b.r.Contacts("L1")); n != 0 {
		t.Fatalf("%d bindings stored", n)
	}
	// Printable UTF-8 is fine.
	p := newPhone("100", "pw", dom)
	p.ua = "Téléphone 3.1\t(büro)"
	if res := p.register(t, b.r, "Contact: <sip:100@192.0.2.10>"); res.StatusCode != 200 {
		t.Fatalf("UTF-8 User-Agent: %d", res.StatusCode)
	}
}

// rejectingStore refuses every save for good, and counts attempts.
type rejectingStore struct {
	MemoryStore
	saves atomic.Int64
}

func (s *rejectingStore) SaveBinding(context.Context, Binding) error {
	s.saves.Add(1)
	return fmt.Errorf("invalid byte sequence: %w", ErrBindingRejected)
}

// A write the store rejects for good is dropped, not retried for ever.
func TestRejectedBindingNotRetried(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	st := &rejectingStore{}
	b.r.wb.store = st
	_ = b.r.Apply(context.Background(), lineCfg("L1", "100", dom, "pw"))
	p := newPhone("100", "pw", dom)
	if res := p.register(t, b.r, p.contactHdr("")...); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	for range 3 {
		_ = b.r.wb.flushOnce(context.Background())
	}
	if st.saves.Load() != 1 || b.r.wb.len() != 0 {
		t.Fatalf("saves %d, queue %d", st.saves.Load(), b.r.wb.len())
	}
}

// downStore fails every save at once, like a database that is down.
type downStore struct{ MemoryStore }

func (s *downStore) SaveBinding(context.Context, Binding) error {
	return errors.New("connection refused")
}

// A failing store does not hold up shutdown: one last attempt, not retries
// until FlushTimeout (12 s with the defaults in the field).
func TestShutdownWithFailingStore(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.FlushTimeout = 5 * time.Minute
	r, err := New(cfg, &downStore{}, SystemClock{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	go func() {
		for range r.Events() {
		}
	}()
	_ = r.Apply(context.Background(), lineCfg("L1", "100", dom, "pw"))
	for i := range 50 {
		r.wb.save(Binding{LineID: "L1", ContactURI: fmt.Sprintf("sip:%d@192.0.2.1", i)})
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return with a failing store")
	}
}

// batchStore saves batches in one call, refusing a whole batch holding a
// binding whose User-Agent is "bad" (like one PostgreSQL statement).
type batchStore struct {
	MemoryStore
	batches, rows atomic.Int64
}

func (s *batchStore) SaveBinding(ctx context.Context, b Binding) error {
	if b.UserAgent == "bad" {
		return ErrBindingRejected
	}
	return s.MemoryStore.SaveBinding(ctx, b)
}

func (s *batchStore) SaveBindings(ctx context.Context, bs []Binding) error {
	for _, b := range bs {
		if b.UserAgent == "bad" {
			return fmt.Errorf("batch: %w", ErrBindingRejected)
		}
	}
	s.batches.Add(1)
	for _, b := range bs {
		s.rows.Add(1)
		_ = s.MemoryStore.SaveBinding(ctx, b)
	}
	return nil
}

// The write-behind queue saves many bindings per store call when the store
// can; a batch with one unstorable row falls back to row by row, and only
// that row is lost. Deletes and line wipes keep their order.
func TestWriteBehindBatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := &batchStore{}
	b := setup(t, nil)
	wb := newWriteBehind(st, b.r.log, b.r.m)
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	bind := func(line, uri, ua string) Binding {
		return Binding{LineID: line, ContactURI: uri, UserAgent: ua, ExpiresAt: at.Add(time.Hour), UpdatedAt: at}
	}
	_ = st.MemoryStore.SaveBinding(ctx, bind("W", "sip:old@x", "p"))
	for i := range 600 {
		wb.save(bind(fmt.Sprint("L", i), "sip:a@x", "p"))
	}
	wb.removeLine("W")
	wb.save(bind("W", "sip:new@x", "p"))
	if err := wb.flushOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n := st.batches.Load(); n != 3 || st.rows.Load() != 600 {
		t.Fatalf("%d batches, %d rows; want 3 batches of the 600 plain saves", n, st.rows.Load())
	}
	got, _ := st.LoadBindings(ctx)
	if len(got) != 601 {
		t.Fatalf("%d bindings stored, want 601", len(got))
	}
	for _, g := range got {
		if g.LineID == "W" && g.ContactURI != "sip:new@x" {
			t.Fatalf("line W kept %s after its wipe", g.ContactURI)
		}
	}

	wb.save(bind("L1", "sip:b@x", "bad"))
	wb.save(bind("L2", "sip:b@x", "p"))
	if err := wb.flushOnce(ctx); err != nil || wb.len() != 0 {
		t.Fatalf("flush with a bad row: %v, %d lines left", err, wb.len())
	}
	got, _ = st.LoadBindings(ctx)
	if len(got) != 602 {
		t.Fatalf("%d bindings stored, want 602 (the bad one dropped)", len(got))
	}
}
