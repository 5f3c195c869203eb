package sip

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxd/pbxd/internal/throttle"
)

func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{
		`Digest username="100", realm="acme.example", nonce="abc", uri="sip:acme.example", response="0123", algorithm=MD5, cnonce="x", qop=auth, nc=00000001`,
		`Digest username="200t",realm="sipp.example.net",cnonce="327b23c6",nc=00000001,qop=auth,uri="sip:sipp.example.net",nonce="n",response="r",algorithm=MD5`,
		`digest username="a\"b", uri="sip:x", nonce=n, response=r`,
		`Digest username="a", username="b", uri="u", nonce="n", response="r"`,
		`Basic dXNlcjpwdw==`, `Digest `, `Digest a="`, `Digest ,,,`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseAuthorization(s)
		if err != nil {
			return
		}
		if c.Username == "" || c.Nonce == "" || c.Response == "" || c.URI == "" {
			t.Fatalf("accepted incomplete credentials %+v from %q", c, s)
		}
		// A value re-quoted and re-parsed is read the same way.
		again := `Digest username=` + quote(c.Username) + `, nonce=` + quote(c.Nonce) + `, uri=` + quote(c.URI) +
			`, response=` + quote(c.Response)
		c2, err := parseAuthorization(again)
		if err != nil || c2.Username != c.Username || c2.Nonce != c.Nonce || c2.URI != c.URI || c2.Response != c.Response {
			t.Fatalf("round trip of %+v: %+v %v", c, c2, err)
		}
	})
}

func FuzzNonceCheck(f *testing.F) {
	n := newNoncer([]byte("0123456789abcdef"), time.Minute, 1)
	now := time.Unix(1_800_000_000, 0)
	src := throttle.Source("192.0.2.1")
	f.Add(n.mint(now, src, "acme.example"), "192.0.2.1", "acme.example", int64(0))
	f.Add(n.mint(now, src, "acme.example"), "192.0.2.2", "acme.example", int64(0))
	f.Add(n.mint(now, src, "acme.example"), "192.0.2.1", "other.example", int64(10))
	f.Add(strings.Repeat("A", nonceLen), "", "acme.example", int64(0))
	f.Add("", "", "", int64(-5))
	f.Fuzz(func(t *testing.T, nonce, ip, realm string, offset int64) {
		from := throttle.Source(ip)
		st, _ := n.check(now.Add(time.Duration(offset)*time.Second), nonce, from, realm)
		if st == nonceInvalid {
			return
		}
		// Only nonces we minted verify: the MAC must be reproducible.
		if len(nonce) != nonceLen {
			t.Fatalf("accepted nonce of length %d", len(nonce))
		}
		fresh := n.mint(now, from, realm)
		if st2, _ := n.check(now, fresh, from, realm); st2 != nonceValid {
			t.Fatal("own nonce rejected")
		}
		// It is bound to the address it was issued to.
		other := netip.AddrFrom4([4]byte{198, 51, 100, 7})
		if other == from {
			other = netip.AddrFrom4([4]byte{198, 51, 100, 8})
		}
		if st2, _ := n.check(now, fresh, other, realm); st2 != nonceInvalid {
			t.Fatalf("nonce for %v accepted from %v", from, other)
		}
	})
}

func FuzzParseExpires(f *testing.F) {
	for _, s := range []string{"3600", "0", "4294967295", "4294967296", "-1", " 60 ", "1e3", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := parseExpires(s)
		if ok && strings.TrimSpace(s) == "" {
			t.Fatal("empty accepted")
		}
		_ = v
	})
}

// FuzzRegister feeds arbitrary Contact/Expires/Authorization values (and
// whole messages) through the REGISTER handler: it must answer without
// panicking, and only with the statuses the registrar uses.
func FuzzRegister(f *testing.F) {
	f.Add("<sip:100@192.0.2.1:5060>;expires=60", "3600", `Digest username="100", nonce="x", uri="sip:a", response="r"`)
	f.Add("*", "0", "")
	f.Add("<sip:100@192.0.2.1>, <sip:101@192.0.2.2>;expires=abc", "", "")
	f.Add(`"a,b" <sip:x@y;lr>;q=0.5`, "99999999999", `Digest realm="fuzz.example"`)
	b := setup(f, nil)
	_ = b.r.Apply(context.Background(), lineCfg("L1", "100", "fuzz.example", "pw"))
	allowed := map[int]bool{200: true, 400: true, 401: true, 403: true, 423: true, 500: true}
	f.Fuzz(func(t *testing.T, contact, expires, auth string) {
		for _, s := range []string{contact, expires, auth} {
			if strings.ContainsAny(s, "\r\n") {
				return
			}
		}
		raw := "REGISTER sip:fuzz.example SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n" +
			"From: <sip:100@fuzz.example>;tag=1\r\nTo: <sip:100@fuzz.example>\r\nCall-ID: fuzz\r\nCSeq: 1 REGISTER\r\n" +
			"Contact: " + contact + "\r\nExpires: " + expires + "\r\n"
		if auth != "" {
			raw += "Authorization: " + auth + "\r\n"
		}
		raw += "Content-Length: 0\r\n\r\n"
		m, err := sip.ParseMessage([]byte(raw))
		if err != nil {
			return
		}
		req, ok := m.(*sip.Request)
		if !ok {
			return
		}
		req.SetSource("192.0.2.1:5060")
		req.SetTransport("UDP")
		res := b.r.handleRegister(req)
		if res == nil || !allowed[res.StatusCode] {
			t.Fatalf("status %v for %q", res, raw)
		}
		// Authenticated path with the same Contact/Expires.
		p := newPhone("100", "pw", "fuzz.example")
		p.src = "198.51.100.9:5060"
		hs := []string{"Contact: " + contact, "Expires: " + expires}
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("panic %v for %q", r, hs)
			}
		}()
		res = p.register(t, b.r, hs...)
		if !allowed[res.StatusCode] {
			t.Fatalf("status %d for %q", res.StatusCode, hs)
		}
	})
}

// capture is a net.PacketConn that records what is written to it.
type capture struct {
	net.PacketConn
	writes [][]byte
}

func (c *capture) WriteTo(b []byte, _ net.Addr) (int, error) {
	c.writes = append(c.writes, append([]byte(nil), b...))
	return len(b), nil
}

// FuzzRegisterPath drives whole datagrams through the UDP path (unfold,
// parse, throttle, authenticate, store, answer, serialise) from a fresh
// state each time; the seeds include a correctly authenticated REGISTER,
// whose nonce, digest and Call-ID the fuzzer then mutates. Invariants:
// at most one final answer per datagram, never larger than the datagram
// unless it is a 200 to a REGISTER, echoing the Call-ID;
// bindings change only with a 200, are storable, within the expiry bounds,
// and reach the store exactly as held in memory.
func FuzzRegisterPath(f *testing.F) {
	b := setup(f, func(c *Config) { c.ThrottleFailures, c.ThrottleSourceFailures = 2, 3 })
	ctx := context.Background()
	lc := lineCfg("L1", "100", dom, "pw")
	src := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 10), Port: 5060}

	p := newPhone("100", "pw", dom)
	first := p.raw(phoneHeaders...)
	nonce := b.r.nonces.mint(b.clock.Now(), throttle.Source("192.0.2.10"), dom)
	authed := p.raw(append([]string{p.authHeader(nonce, 1)}, phoneHeaders...)...)
	for _, s := range []string{first, authed,
		strings.Replace(authed, "Expires: 600", "Expires: 0", 1),
		strings.Replace(authed, phoneHeaders[0], "Contact: *\r\nExpires: 0", 1),
		strings.Replace(authed, "User-Agent: testphone", "User-Agent: t\x00\xff", 1),
		strings.Replace(authed, "SIP/2.0\r\n", "SIP/3.0\r\n", 1),
		strings.Replace(first, "REGISTER sip:", "INVITE sip:", 1),
		"x", "\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	var out udpScratch
	f.Fuzz(func(t *testing.T, data []byte) {
		// Fresh state: no bindings, no throttle or nonce-count memory.
		_ = b.r.Remove(ctx, "L1")
		_ = b.r.Apply(ctx, lc)
		if err := b.r.wb.flushOnce(ctx); err != nil {
			t.Fatal(err)
		}
		b.r.nc = newNCTracker(b.r.cfg.NonceTrackerSize, b.clock.Now())
		b.r.replays = newReplayCache(64, b.clock.Now)
		for range b.r.events.order {
			b.r.events.pop()
		}

		conn := &capture{}
		b.r.handleDatagram(conn, data, src, &out)

		if len(conn.writes) > 1 {
			t.Fatalf("%d answers to one datagram", len(conn.writes))
		}
		status := 0
		if len(conn.writes) == 1 {
			w := conn.writes[0]
			// Headers are echoed as received, so sipgo may not read its
			// own echo of garbage back; the status line is always ours.
			if len(w) < 13 || string(w[:8]) != "SIP/2.0 " {
				t.Fatalf("answer without a status line: %q", w)
			}
			code, err := strconv.Atoi(string(w[8:11]))
			if err != nil || code < 200 || code > 699 {
				t.Fatalf("answer status %q", w[:12])
			}
			status = code
			req, _ := sip.ParseMessage(unfold(data))
			isRegister := false
			if rq, ok := req.(*sip.Request); ok {
				isRegister = rq.Method == sip.REGISTER
				if m, err := sip.ParseMessage(w); err == nil && rq.CallID() != nil {
					if res := m.(*sip.Response); res.CallID() == nil || res.CallID().Value() != rq.CallID().Value() {
						t.Fatalf("Call-ID not echoed: %q -> %q", data, w)
					}
				}
			}
			if len(w) > len(data) && (!isRegister || status != 200) {
				t.Fatalf("%d-byte %d answer to a %d-byte datagram", len(w), status, len(data))
			}
			if len(w) > maxUDPPayload {
				t.Fatalf("answer of %d bytes", len(w))
			}
		}
		bs := b.r.Contacts("L1")
		if status != 200 && len(bs) != 0 {
			t.Fatalf("bindings %+v changed by a %d", bs, status)
		}
		now := b.clock.Now()
		for _, bn := range bs {
			if bn.LineID != "L1" || !storable(bn.ContactURI, maxContactLen) || !storable(bn.UserAgent, maxUserAgentLen) ||
				!storable(bn.CallID, maxCallIDLen) || !storable(bn.Params, maxContactLen) ||
				bn.ExpiresAt.Before(now.Add(b.r.cfg.MinExpires)) || bn.ExpiresAt.After(now.Add(b.r.cfg.MaxExpires)) {
				t.Fatalf("bad binding %+v", bn)
			}
		}
		if err := b.r.wb.flushOnce(ctx); err != nil {
			t.Fatal(err)
		}
		stored, _ := b.store.LoadBindings(ctx)
		if len(stored) != len(bs) {
			t.Fatalf("stored %d bindings, holding %d", len(stored), len(bs))
		}
		for _, s := range stored {
			found := false
			for _, m := range bs {
				s.Params = m.Params // not persisted
				found = found || s == m
			}
			if !found {
				t.Fatalf("stored %+v not held (%+v)", s, bs)
			}
		}
	})
}

// quote makes a quoted-string.
func quote(s string) string { return string(appendQuoted(nil, s)) }
