package sip

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxd/pbxd/pbx"
)

// fakeClock is a settable Clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type bundle struct {
	r     *Registrar
	clock *fakeClock
	store *MemoryStore
	reg   *prometheus.Registry
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.UDPListen = "127.0.0.1:0"
	cfg.TCPListen = "127.0.0.1:0"
	cfg.Secret = []byte("0123456789abcdef0123456789abcdef")
	cfg.ThrottleFailures = 5
	return cfg
}

// setup returns a registrar that is not running (handlers are called
// directly); mod adjusts the config.
func setup(t testing.TB, mod func(*Config)) bundle {
	t.Helper()
	cfg := testConfig()
	if mod != nil {
		mod(&cfg)
	}
	b := bundle{clock: &fakeClock{t: time.Date(2026, 11, 16, 10, 0, 0, 0, time.UTC)}, store: &MemoryStore{}, reg: prometheus.NewRegistry()}
	r, err := New(cfg, b.store, b.clock, nil, b.reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	b.r = r
	return b
}

func ha1(alg, user, realm, pw string) string {
	if alg == algSHA256 {
		s := sha256.Sum256([]byte(user + ":" + realm + ":" + pw))
		return hex.EncodeToString(s[:])
	}
	s := md5.Sum([]byte(user + ":" + realm + ":" + pw))
	return hex.EncodeToString(s[:])
}

func lineCfg(id, user, domain, pw string) pbx.LineConfig {
	return pbx.LineConfig{
		ID: id, Domain: domain, Username: user, Extension: user, Password: pw,
		HA1MD5: ha1(algMD5, user, domain, pw), HA1SHA256: ha1(algSHA256, user, domain, pw),
	}
}

// phone is a scripted SIP client that talks to the handler directly.
type phone struct {
	user, pw, domain string
	alg              string
	callID           string
	cseq             int
	contact          string
	src              string
	authUser         string // Authorization username when != user
	ua               string // User-Agent, none if empty
	ruri             string // Request-URI host when not domain
}

func newPhone(user, pw, domain string) *phone {
	return &phone{user: user, pw: pw, domain: domain, alg: algMD5, callID: "call-" + user,
		contact: "<sip:" + user + "@192.0.2.10:5060>", src: "192.0.2.10:5060", ua: "testphone"}
}

// request builds a REGISTER; headers are extra header lines.
func (p *phone) request(t testing.TB, headers ...string) *sip.Request {
	t.Helper()
	return parseReq(t, p.raw(headers...), p.src)
}

// raw is request as text, for sending over the wire.
func (p *phone) raw(headers ...string) string {
	p.cseq++
	var b strings.Builder
	fmt.Fprintf(&b, "REGISTER sip:%s SIP/2.0\r\n", p.uriHost())
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-%s-%d\r\n", p.user, p.cseq)
	fmt.Fprintf(&b, "Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "From: <sip:%s@%s>;tag=ft%d\r\n", p.user, p.domain, p.cseq)
	fmt.Fprintf(&b, "To: <sip:%s@%s>\r\n", p.user, p.domain)
	fmt.Fprintf(&b, "Call-ID: %s\r\n", p.callID)
	fmt.Fprintf(&b, "CSeq: %d REGISTER\r\n", p.cseq)
	if p.ua != "" {
		fmt.Fprintf(&b, "User-Agent: %s\r\n", p.ua)
	}
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

func parseReq(t testing.TB, raw, src string) *sip.Request {
	t.Helper()
	m, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	req := m.(*sip.Request)
	req.SetSource(src)
	req.SetTransport("UDP")
	return req
}

var nonceRE = regexp.MustCompile(`nonce="([^"]+)"`)

// challengeNonce returns the nonce of the challenge for alg in res.
func challengeNonce(t testing.TB, res *sip.Response, alg string) string {
	t.Helper()
	for _, h := range res.GetHeaders("WWW-Authenticate") {
		if strings.Contains(h.Value(), "algorithm="+alg+",") {
			m := nonceRE.FindStringSubmatch(h.Value())
			if m != nil {
				return m[1]
			}
		}
	}
	t.Fatalf("no %s challenge in %s", alg, res.String())
	return ""
}

// authHeader computes an Authorization header for nonce and nc.
func (p *phone) authHeader(nonce string, nc int) string {
	user := p.user
	if p.authUser != "" {
		user = p.authUser
	}
	uri := "sip:" + p.uriHost()
	ncs := fmt.Sprintf("%08x", nc)
	resp := digestResponse(p.alg, ha1(p.alg, user, p.domain, p.pw), "REGISTER", uri, nonce, ncs, "abc123", "auth")
	return fmt.Sprintf(`Authorization: Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=%s, cnonce="abc123", qop=auth, nc=%s`,
		user, p.domain, nonce, uri, resp, p.alg, ncs)
}

func (p *phone) uriHost() string {
	if p.ruri != "" {
		return p.ruri
	}
	return p.domain
}

// register runs the challenge round trip and returns the final response.
func (p *phone) register(t testing.TB, r *Registrar, headers ...string) *sip.Response {
	t.Helper()
	res := r.handleRegister(p.request(t, headers...))
	if res.StatusCode != 401 {
		return res
	}
	nonce := challengeNonce(t, res, p.alg)
	return r.handleRegister(p.request(t, append([]string{p.authHeader(nonce, 1)}, headers...)...))
}

func (p *phone) contactHdr(expires string) []string {
	h := []string{"Contact: " + p.contact}
	if expires != "" {
		h = append(h, "Expires: "+expires)
	}
	return h
}

// nextEvent waits for a registration event.
func nextEvent(t testing.TB, r *Registrar) pbx.RegistrationEvent {
	t.Helper()
	ev, ok := r.events.pop()
	if !ok {
		t.Fatal("no registration event")
	}
	return ev
}

func flush(t testing.TB, r *Registrar) {
	t.Helper()
	if err := r.wb.flushOnce(context.Background()); err != nil {
		t.Fatalf("flush failed: %v", err)
	}
}
