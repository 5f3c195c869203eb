package sip

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// SIP/3.0 gets 505 rather than an echo; Require gets 420 with Unsupported.
func TestVersionAndRequire(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	p := newPhone("100", "pw", dom)
	req := parseReq(t, strings.Replace(p.raw(p.contactHdr("")...), "SIP/2.0\r\n", "SIP/3.0\r\n", 1), p.src)
	if res := b.r.answer(req); res.StatusCode != 505 || res.SipVersion != "SIP/2.0" {
		t.Fatalf("SIP/3.0: %d %s", res.StatusCode, res.SipVersion)
	}
	res := b.r.answer(p.request(t, append(p.contactHdr(""), "Require: unknown-ext")...))
	if res.StatusCode != 420 || res.GetHeader("Unsupported") == nil || res.GetHeader("Unsupported").Value() != "unknown-ext" {
		t.Fatalf("Require: %v", res)
	}
}

// RFC 4475 §3.1.1.1 wsinv (folded headers, odd whitespace) is valid: it is
// an INVITE, so 405 over UDP. testdata/wsinv.dat is the RFC's message (from
// sipgo's torture suite).
func TestTortureWsinv(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/wsinv.dat")
	if err != nil {
		t.Fatal(err)
	}
	r := running(t, nil, nil)
	c := udpPeer(t, "127.0.0.1:0")
	sendUDP(t, c, r.Addrs().UDP, string(raw))
	res, _ := recvUDP(t, c, 10*time.Second)
	if res == nil || res.StatusCode != 405 {
		t.Fatalf("wsinv: %v", res)
	}
}

// The Server header is the configured one, or none.
func TestServerHeader(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"", "acme-registrar/2"} {
		b := setup(t, func(c *Config) { c.UserAgent = name })
		p := newPhone("100", "pw", dom)
		res := b.r.handleRegister(p.request(t, p.contactHdr("")...))
		h := res.GetHeader("Server")
		if (name == "" && h != nil) || (name != "" && (h == nil || h.Value() != name)) {
			t.Errorf("Server %q: %v", name, h)
		}
	}
}

// The 200 echoes each binding's Contact parameters (+sip.instance, reg-id:
// RFC 5626 clients check them).
func TestContactParamsEchoed(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_ = b.r.Apply(context.Background(), lineCfg("L1", "100", dom, "pw"))
	p := newPhone("100", "pw", dom)
	res := p.register(t, b.r, `Contact: <sip:100@192.0.2.10:5060;transport=udp>;+sip.instance="<urn:uuid:0000-1>";reg-id=1;expires=600`)
	c := res.GetHeaders("Contact")
	want := `<sip:100@192.0.2.10:5060;transport=udp>;+sip.instance="<urn:uuid:0000-1>";reg-id=1;expires=600`
	if res.StatusCode != 200 || len(c) != 1 || c[0].Value() != want {
		t.Fatalf("200 contacts %v, want %s", c, want)
	}
}

// Third-party registration (From is not To) is allowed by default and
// refused with AllowThirdParty false.
func TestThirdPartyRegistration(t *testing.T) {
	t.Parallel()
	for _, allow := range []bool{true, false} {
		b := setup(t, func(c *Config) { c.AllowThirdParty = allow })
		_ = b.r.Apply(context.Background(), lineCfg("L1", "100", dom, "pw"))
		p := newPhone("100", "pw", dom)
		raw := strings.Replace(p.raw(p.contactHdr("")...), "From: <sip:100@", "From: <sip:assistant@", 1)
		res := b.r.handleRegister(parseReq(t, raw, p.src))
		if allow && res.StatusCode != 401 || !allow && res.StatusCode != 403 {
			t.Errorf("allow %v: %d", allow, res.StatusCode)
		}
	}
}

// A phone configured with the registrar's IP address as Request-URI
// registers with the account of its To domain (it got 401 for ever, the
// realm being the IP).
func TestRequestURIIsOurAddress(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_ = b.r.Apply(context.Background(), lineCfg("L1", "100", dom, "pw"))
	p := newPhone("100", "pw", dom)
	p.ruri = "127.0.0.1"
	res := p.register(t, b.r, p.contactHdr("")...)
	if res.StatusCode != 200 || len(b.r.Contacts("L1")) != 1 {
		t.Fatalf("Request-URI %s: %d", p.ruri, res.StatusCode)
	}
	// Another IP is not ours: its realm is the IP, which has no account.
	q := newPhone("100", "pw", dom)
	q.ruri, q.callID = "192.0.2.99", "other"
	if res := q.register(t, b.r, q.contactHdr("")...); res.StatusCode != 401 {
		t.Fatalf("foreign Request-URI: %d", res.StatusCode)
	}
}

// One registrar serves several addresses (127.0.0.1 and ::1 together).
func TestExtraListen(t *testing.T) {
	t.Parallel()
	extra := "[::1]:0"
	if l, err := net.ListenPacket("udp", extra); err != nil {
		extra = "127.0.0.2:0" // no IPv6 loopback here
	} else {
		_ = l.Close()
	}
	r := running(t, nil, func(c *Config) { c.ExtraListen = []string{extra} })
	if len(r.udpConns) != 2 || len(r.tcpLns) != 2 {
		t.Fatalf("%d UDP, %d TCP listeners", len(r.udpConns), len(r.tcpLns))
	}
	for _, target := range []string{r.udpConns[0].LocalAddr().String(), r.udpConns[1].LocalAddr().String()} {
		host, _, _ := net.SplitHostPort(target)
		c := udpPeer(t, net.JoinHostPort(host, "0"))
		sendUDP(t, c, target, "OPTIONS sip:"+dom+" SIP/2.0\r\nVia: SIP/2.0/UDP "+c.LocalAddr().String()+";branch=z9hG4bK-x\r\n"+
			"From: <sip:p@x>;tag=1\r\nTo: <sip:"+dom+">\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nUser-Agent: pbxd-test-peer\r\n"+
			"Accept: application/sdp\r\nAllow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\nContent-Length: 0\r\n\r\n")
		if res, _ := recvUDP(t, c, 10*time.Second); res == nil || res.StatusCode != 200 {
			t.Errorf("OPTIONS to %s: %v", target, res)
		}
	}
}
