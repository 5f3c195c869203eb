package sip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// udpPeer is a raw UDP client bound to laddr.
func udpPeer(t *testing.T, laddr string) *net.UDPConn {
	t.Helper()
	a, err := net.ResolveUDPAddr("udp", laddr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP("udp", a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func sendUDP(t *testing.T, c *net.UDPConn, target, raw string) {
	t.Helper()
	a, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteToUDP([]byte(raw), a); err != nil {
		t.Fatal(err)
	}
}

// recvUDP waits up to d for a response; nil when none came.
func recvUDP(t *testing.T, c *net.UDPConn, d time.Duration) (*sip.Response, int) {
	t.Helper()
	buf := make([]byte, 65535)
	_ = c.SetReadDeadline(time.Now().Add(d))
	n, _, err := c.ReadFromUDP(buf)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, 0
	}
	if err != nil {
		t.Fatal(err)
	}
	m, err := sip.ParseMessage(buf[:n])
	if err != nil {
		t.Fatalf("unparsable answer %q: %v", buf[:n], err)
	}
	res, ok := m.(*sip.Response)
	if !ok {
		t.Fatalf("not a response: %s", m)
	}
	return res, n
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// phoneHeaders are what a real phone's first REGISTER carries besides the
// mandatory headers (a request smaller than its challenge gets none).
var phoneHeaders = []string{
	"Contact: <sip:100@192.0.2.10:5060;transport=udp>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000a95a0e128>\"",
	"Expires: 600", "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY, REFER, MESSAGE", "Supported: path, gruu, outbound",
}

func invite(method, port string) string {
	body := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
	return method + " sip:100@" + dom + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:" + port + ";branch=z9hG4bK-inv-" + method + "\r\n" +
		"From: <sip:x@example.net>;tag=1\r\nTo: <sip:100@" + dom + ">\r\nCall-ID: inv-" + method + "\r\n" +
		"CSeq: 1 " + method + "\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\n" +
		fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)) + body
}

// A method the registrar does not serve gets one small answer, never a
// retransmitting transaction (sipgo retransmitted a 405 to an INVITE 11
// times, 15x the request to a spoofable source): 405 for a known method,
// 501 for an unknown one.
func TestUDPUnsupportedMethodsAnsweredOnce(t *testing.T) {
	t.Parallel()
	r := running(t, nil, nil)
	c := udpPeer(t, "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(c.LocalAddr().String())
	for method, want := range map[string]int{"INVITE": 405, "FROBNICATE": 501} {
		req := invite(method, port)
		sendUDP(t, c, r.Addrs().UDP, req)
		res, n := recvUDP(t, c, 10*time.Second)
		if res == nil || res.StatusCode != want || res.GetHeader("Allow") == nil {
			t.Fatalf("%s: %v", method, res)
		}
		if n > len(req) {
			t.Errorf("%s: %d-byte answer to a %d-byte request", method, n, len(req))
		}
		// sipgo's INVITE server transaction retransmits at 0.5, 1, 2 s.
		if again, _ := recvUDP(t, c, 2500*time.Millisecond); again != nil {
			t.Fatalf("%s answered twice: %s", method, again.StartLine())
		}
	}
}

// An answer larger than an unauthenticated UDP request is not sent.
func TestUDPNoAmplification(t *testing.T) {
	t.Parallel()
	r := running(t, nil, nil)
	c := udpPeer(t, "127.0.0.1:0")
	// Compact header forms: the 401 (full names, a challenge) is larger.
	req := "REGISTER sip:a SIP/2.0\r\nv: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx\r\n" +
		"f: <sip:u@a>;tag=1\r\nt: <sip:u@a>\r\ni: c\r\nCSeq: 1 REGISTER\r\n\r\n"
	sendUDP(t, c, r.Addrs().UDP, req)
	waitFor(t, "the unsent answer to be counted", func() bool {
		return testutil.ToFloat64(r.m.unsent.WithLabelValues("amplification")) == 1
	})
	if res, n := recvUDP(t, c, 200*time.Millisecond); res != nil {
		t.Fatalf("%d-byte answer to a %d-byte request: %s", n, len(req), res.StartLine())
	}
}

// Answers over the path MTU are sent (IP fragments them), and a REGISTER
// with hundreds of Vias is answered: sipgo refused anything over 1,300
// bytes and logged it at debug only.
func TestUDPLargeAnswers(t *testing.T) {
	t.Parallel()
	r := running(t, nil, func(c *Config) { c.MaxContacts = 4 })
	_ = r.Apply(context.Background(), lineCfg("L1", "100", dom, "pw"))
	c := udpPeer(t, "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(c.LocalAddr().String())

	p := newPhone("100", "pw", dom)
	vias := make([]string, 600)
	for i := range vias {
		vias[i] = fmt.Sprintf("Via: SIP/2.0/UDP 10.0.%d.%d:5060;branch=z9hG4bK-hop%d", i/250, i%250, i)
	}
	raw := strings.Replace(p.raw(phoneHeaders...), "Via: SIP/2.0/UDP 192.0.2.10:5060", "Via: SIP/2.0/UDP 127.0.0.1:"+port, 1)
	raw = strings.Replace(raw, "Max-Forwards: 70\r\n", "Max-Forwards: 70\r\n"+strings.Join(vias, "\r\n")+"\r\n", 1)
	sendUDP(t, c, r.Addrs().UDP, raw)
	res, n := recvUDP(t, c, 10*time.Second)
	if res == nil || res.StatusCode != 401 || len(res.GetHeaders("Via")) != 601 {
		t.Fatalf("600 Vias: %v", res)
	}
	t.Logf("401 of %d bytes", n)

	// Four contacts with push-notification parameters: a 200 over 1,300 bytes.
	var contacts []string
	for i := range 4 {
		contacts = append(contacts, fmt.Sprintf("Contact: <sip:100@192.0.2.10:%d;transport=udp;pn-provider=apns;pn-prid=%s;pn-param=ABCD1234.org.example.phone.voip>",
			5060+i, strings.Repeat(fmt.Sprintf("%x", i+10), 160)))
	}
	nonce := challengeNonce(t, res, algMD5)
	raw = strings.Replace(p.raw(append([]string{p.authHeader(nonce, 1)}, contacts...)...), "192.0.2.10:5060;", "127.0.0.1:"+port+";", 1)
	sendUDP(t, c, r.Addrs().UDP, raw)
	res, n = recvUDP(t, c, 10*time.Second)
	if res == nil || res.StatusCode != 200 || len(res.GetHeaders("Contact")) != 4 {
		t.Fatalf("4 long contacts: %v", res)
	}
	if n <= 1300 {
		t.Fatalf("test answer only %d bytes", n)
	}
}

// A retransmitted authenticated REGISTER gets the same answer again, not a
// 401 for a replayed nonce count (and is not processed twice).
func TestUDPRetransmittedRegister(t *testing.T) {
	t.Parallel()
	r := running(t, nil, nil)
	_ = r.Apply(context.Background(), lineCfg("L1", "100", dom, "pw"))
	c := udpPeer(t, "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(c.LocalAddr().String())
	p := newPhone("100", "pw", dom)
	via := func(s string) string {
		return strings.Replace(s, "Via: SIP/2.0/UDP 192.0.2.10:5060", "Via: SIP/2.0/UDP 127.0.0.1:"+port, 1)
	}
	sendUDP(t, c, r.Addrs().UDP, via(p.raw(phoneHeaders...)))
	ch, _ := recvUDP(t, c, 10*time.Second)
	if ch == nil {
		t.Fatal("no challenge")
	}
	raw := via(p.raw(append([]string{p.authHeader(challengeNonce(t, ch, algMD5), 1)}, p.contactHdr("600")...)...))
	for i := range 2 {
		sendUDP(t, c, r.Addrs().UDP, raw)
		if res, _ := recvUDP(t, c, 10*time.Second); res == nil || res.StatusCode != 200 {
			t.Fatalf("send %d: %v", i, res)
		}
	}
	if got := testutil.ToFloat64(r.m.registers.WithLabelValues(resultOK)); got != 1 {
		t.Fatalf("processed %v times", got)
	}
}

// Datagrams from many sources leave no per-source state behind (sipgo's
// UDP pool kept ~140 bytes per source address for ever).
func TestUDPNoPerSourceState(t *testing.T) {
	t.Parallel()
	r := running(t, nil, nil)
	target := r.Addrs().UDP
	const sources = 500
	for i := range sources {
		c := udpPeer(t, fmt.Sprintf("127.77.%d.%d:0", i/250, i%250+1))
		sendUDP(t, c, target, "x")
		_ = c.Close()
	}
	c := udpPeer(t, "127.0.0.1:0")
	sendUDP(t, c, target, "OPTIONS sip:"+dom+" SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK-o\r\n"+
		"From: <sip:p@x>;tag=1\r\nTo: <sip:"+dom+">\r\nCall-ID: o\r\nCSeq: 1 OPTIONS\r\nUser-Agent: pbxd-test-peer\r\n"+
		"Accept: application/sdp\r\nAllow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\nContent-Length: 0\r\n\r\n")
	if res, _ := recvUDP(t, c, 10*time.Second); res == nil || res.StatusCode != 200 {
		t.Fatalf("OPTIONS: %v", res)
	}
	waitFor(t, "the junk datagrams to be dropped", func() bool {
		return testutil.ToFloat64(r.m.dropped.WithLabelValues("unparsable")) == sources
	})
	if n := r.ua.TransportLayer().Pool("udp").Size(); n > 1 {
		t.Fatalf("%d UDP connections pooled after %d sources", n, sources)
	}
}

// A REGISTER too small for every challenge still gets the preferred one
// (baresip's first REGISTER is smaller than an MD5 + SHA-256 401).
func TestUDPTrimsChallengesToRequestSize(t *testing.T) {
	t.Parallel()
	r := running(t, nil, func(c *Config) { c.DigestAlgorithms = []string{algMD5, algSHA256} })
	c := udpPeer(t, "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(c.LocalAddr().String())
	req := "REGISTER sip:" + dom + ";transport=udp SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:" + port + ";branch=z9hG4bK4d6dc34f43464ee1;rport\r\n" +
		"Contact: <sip:100-0x556f73680410@127.0.0.1:" + port + ">;expires=600\r\nMax-Forwards: 70\r\n" +
		"To: <sip:100@" + dom + ">\r\nFrom: <sip:100@" + dom + ">;tag=ca24e52b70da2adb\r\n" +
		"Call-ID: 7d2b56b2e3ab352c\r\nCSeq: 57493 REGISTER\r\nUser-Agent: baresip v1.0.0 (x86_64/linux)\r\n" +
		"Allow: INVITE,ACK,BYE,CANCEL,OPTIONS,NOTIFY,SUBSCRIBE,INFO,MESSAGE,REFER\r\nContent-Length: 0\r\n\r\n"
	sendUDP(t, c, r.Addrs().UDP, req)
	res, n := recvUDP(t, c, 10*time.Second)
	if res == nil || res.StatusCode != 401 {
		t.Fatalf("no challenge: %v", res)
	}
	ws := res.GetHeaders("WWW-Authenticate")
	t.Logf("%d-byte REGISTER, %d-byte challenge", len(req), n)
	if len(ws) != 1 || !strings.Contains(ws[0].Value(), "algorithm=MD5") || n > len(req) {
		t.Fatalf("%d-byte challenge to a %d-byte request: %v", n, len(req), ws)
	}
}

// Several sockets share the UDP port (SO_REUSEPORT), and requests from
// many sources, arriving together, are all answered once, from the port
// they were sent to.
func TestUDPSocketsShareThePort(t *testing.T) {
	t.Parallel()
	r := running(t, nil, nil)
	target := r.Addrs().UDP
	if want := udpSockets(); haveReusePort && len(r.udpSockets) != want {
		t.Fatalf("%d UDP sockets, want %d", len(r.udpSockets), want)
	}
	for _, c := range r.udpSockets {
		if c.LocalAddr().String() != target {
			t.Fatalf("socket on %s, registrar on %s", c.LocalAddr(), target)
		}
	}
	peers := make([]*net.UDPConn, 64)
	for i := range peers {
		peers[i] = udpPeer(t, "127.0.0.1:0")
	}
	for round := range 3 { // back to back, so that batches hold several
		for i, c := range peers {
			sendUDP(t, c, target, "OPTIONS sip:"+dom+" SIP/2.0\r\nVia: SIP/2.0/UDP "+c.LocalAddr().String()+
				fmt.Sprintf(";branch=z9hG4bK-%d-%d\r\n", round, i)+"From: <sip:p@x>;tag=1\r\nTo: <sip:"+dom+">\r\n"+
				fmt.Sprintf("Call-ID: share-%d-%d\r\n", round, i)+"CSeq: 1 OPTIONS\r\nUser-Agent: pbxd-test-peer\r\n"+
				"Accept: application/sdp\r\nAllow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\nContent-Length: 0\r\n\r\n")
		}
	}
	for i, c := range peers {
		got := map[string]bool{} // readers run in parallel: any order
		for range 3 {
			res, _ := recvUDP(t, c, 10*time.Second)
			if res == nil || res.StatusCode != 200 {
				t.Fatalf("peer %d: %v", i, res)
			}
			got[res.CallID().Value()] = true
		}
		for round := range 3 {
			if want := fmt.Sprintf("share-%d-%d", round, i); !got[want] {
				t.Fatalf("peer %d: no answer to %s (got %v)", i, want, got)
			}
		}
		if res, _ := recvUDP(t, c, 50*time.Millisecond); res != nil {
			t.Fatalf("peer %d: extra answer %v", i, res)
		}
	}
}

// A UDP port in use fails New, also when its holder set SO_REUSEPORT
// (another pbxd of the same user): traffic is never shared by accident.
func TestUDPPortInUse(t *testing.T) {
	t.Parallel()
	first := running(t, nil, nil)
	lc := net.ListenConfig{Control: reusePort}
	held, err := lc.ListenPacket(context.Background(), "udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = held.Close() })
	for _, addr := range []string{first.Addrs().UDP, held.LocalAddr().String()} {
		cfg := testConfig()
		cfg.UDPListen, cfg.TCPListen = addr, ""
		r, err := New(cfg, nil, nil, nil, nil)
		if err == nil {
			_ = r.Close()
			t.Fatalf("New on %s (in use) succeeded", addr)
		}
	}
}

func TestReplayCacheGenerations(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	c := newReplayCache(2, func() time.Time { return now })
	get := func(key []byte) ([]byte, bool) {
		b, st := c.claim(key)
		if st == replayClaimed {
			c.release(key)
		}
		return b, st == replayHit
	}
	key := func(i int) []byte {
		return appendReplayKey(nil, "192.0.2.1:5060", fmt.Sprint("z9hG4bK", i), 2, "REGISTER")
	}
	c.put(key(1), []byte("answer 1"))
	first, ok := get(key(1))
	if !ok || string(first) != "answer 1" {
		t.Fatalf("get 1 = %q %v", first, ok)
	}
	if _, ok := get(appendReplayKey(nil, "192.0.2.1:5060", "z9hG4bK1", 3, "REGISTER")); ok {
		t.Fatal("another CSeq hit")
	}
	c.put(key(2), []byte("answer 2"))
	now = now.Add(replayMinAge)
	c.put(key(3), []byte("answer 3")) // generation 1 full and old enough: 1 and 2 are the previous one
	for i := 1; i <= 3; i++ {
		if b, ok := get(key(i)); !ok || string(b) != fmt.Sprint("answer ", i) {
			t.Fatalf("get %d = %q %v", i, b, ok)
		}
	}
	c.put(key(4), []byte("answer 4"))
	now = now.Add(replayMinAge)
	c.put(key(5), []byte("answer 5")) // 1 and 2 are gone
	if _, ok := get(key(1)); ok {
		t.Fatal("entry of a dropped generation still there")
	}
	if string(first) != "answer 1" {
		t.Fatalf("returned bytes changed to %q", first)
	}
	now = now.Add(replayTTL + time.Second)
	c.put(key(6), []byte("answer 6")) // past the TTL: 5 moves to the previous generation
	c.put(key(7), []byte("answer 7"))
	if _, ok := get(key(5)); !ok {
		t.Fatal("entry of the previous generation lost")
	}
	if _, ok := get(key(4)); ok {
		t.Fatal("entry older than two generations still there")
	}
}

// TestReplayCacheClaim: a retransmission that arrives while the original
// is being answered is dropped (busy), then gets the answer (hit).
func TestReplayCacheClaim(t *testing.T) {
	c := newReplayCache(8, time.Now)
	key := appendReplayKey(nil, "192.0.2.1:5060", "z9hG4bK1", 2, "REGISTER")
	if _, st := c.claim(key); st != replayClaimed {
		t.Fatalf("first claim: %d", st)
	}
	if _, st := c.claim(key); st != replayBusy {
		t.Fatalf("claim while answering: %d", st)
	}
	c.put(key, []byte("200"))
	c.release(key)
	if b, st := c.claim(key); st != replayHit || string(b) != "200" {
		t.Fatalf("claim after the answer: %d %q", st, b)
	}
	other := appendReplayKey(nil, "192.0.2.1:5060", "z9hG4bK2", 2, "REGISTER")
	if _, st := c.claim(other); st != replayClaimed {
		t.Fatalf("claim of another request: %d", st)
	}
	c.release(other) // no answer (e.g. dropped for size): claimable again
	if _, st := c.claim(other); st != replayClaimed {
		t.Fatalf("claim after a release without answer: %d", st)
	}
}

// TestReplayCacheOutlivesRetransmissions: under overload a full
// generation is kept until it is replayMinAge old (up to 4 times full),
// so a retransmission seconds later still gets the answer.
func TestReplayCacheOutlivesRetransmissions(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	c := newReplayCache(2, func() time.Time { return now })
	key := func(i int) []byte { return appendReplayKey(nil, "192.0.2.1:5060", fmt.Sprint("b", i), 2, "REGISTER") }
	hit := func(i int) bool {
		_, st := c.claim(key(i))
		if st == replayClaimed {
			c.release(key(i))
		}
		return st == replayHit
	}
	for i := range 12 { // 6 times a generation within 1.2 s
		c.put(key(i), []byte("200"))
		now = now.Add(100 * time.Millisecond)
	}
	// Rotated only at 4 times full: entries 0-7 went to the previous
	// generation at the 9th put, 8-11 are current.
	for i := range 12 {
		if !hit(i) {
			t.Errorf("answer %d lost within 1.2 s", i)
		}
	}
	now = now.Add(replayMinAge)
	c.put(key(12), []byte("200")) // full and old: rotates
	if hit(0) || !hit(8) || !hit(12) {
		t.Errorf("after the rotation: 0 %v, 8 %v, 12 %v", hit(0), hit(8), hit(12))
	}
}
