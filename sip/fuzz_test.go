package sip

import (
	"context"
	"net/netip"
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
