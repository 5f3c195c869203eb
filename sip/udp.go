package sip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/emiago/sipgo/sip"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// UDP is served by the registrar itself, not by sipgo's UDP transport:
// sipgo keeps a pool entry per source address for ever (a leak a
// spoofed flood turns into an outage), refuses to send anything over
// 1,300 bytes (answers silently lost) and reads at most 32 KiB. Every
// datagram here is answered statelessly, at most once, from a fixed set of
// readers: no per-source state, no retransmission timers (RFC 3261
// §17.2.2: a non-INVITE server retransmits only when the request is
// retransmitted, which the replay cache below covers for authenticated
// REGISTERs; INVITEs are refused with a single 405).

// maxUDPPayload is the largest UDP payload over IPv4 (65,535 - 8 - 20).
const maxUDPPayload = 65507

// udpBatch is how many datagrams one recvmmsg/sendmmsg call moves at most.
// Under load a reader finds several queued REGISTERs and answers them with
// two system calls instead of 2×n; when idle it gets one at a time, as
// before. Only the pages a datagram is written to become resident.
const udpBatch = 32

// udpSockets is the number of sockets bound to each UDP address with
// SO_REUSEPORT (the kernel spreads sources over them by address hash);
// udpReadersPerSocket goroutines read each, so that a single busy source
// hashed to one socket still keeps every core busy.
func udpSockets() int { return max(1, min(runtime.GOMAXPROCS(0), 16)) }

// udpReadersPerSocket is 2, or 1 with one P (GOMAXPROCS=1, e.g. pinned
// to one core), where a second reader cannot run in parallel and would
// only add goroutine switches.
func udpReadersPerSocket() int { return min(2, runtime.GOMAXPROCS(0)) }

// batchConn reads and writes several datagrams per system call
// (golang.org/x/net/ipv4 and ipv6 use recvmmsg/sendmmsg on Linux and one
// datagram per call elsewhere).
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// serveUDP reads datagrams from one socket until it is closed.
func (r *Registrar) serveUDP(c *net.UDPConn) error {
	var bc batchConn
	v4 := false
	if la, ok := c.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() != nil {
		bc, v4 = ipv4.NewPacketConn(c), true
	} else {
		bc = ipv6.NewPacketConn(c)
	}
	var wg sync.WaitGroup
	readers := udpReadersPerSocket()
	errs := make(chan error, readers)
	for range readers {
		wg.Go(func() { errs <- r.readUDP(c, bc, v4) })
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// udpOut collects the answers to one batch of datagrams for a single
// sendmmsg. It implements the WriteTo handleDatagram answers through; the
// bytes must stay valid until flush (each answer has its own buffer).
type udpOut struct {
	ms []ipv4.Message
	n  int
}

func newUDPOut() *udpOut {
	o := &udpOut{ms: make([]ipv4.Message, udpBatch)}
	for i := range o.ms {
		o.ms[i].Buffers = make([][]byte, 1)
	}
	return o
}

func (o *udpOut) WriteTo(b []byte, addr net.Addr) (int, error) {
	m := &o.ms[o.n]
	m.Buffers[0], m.Addr = b, addr
	o.n++
	return len(b), nil
}

// flush sends the collected answers. v4: the socket is IPv4, so sendmmsg
// can take the addresses as they are; an IPv6 (possibly dual-stack)
// socket is written one datagram at a time by package net, which maps
// IPv4 peers (x/net would marshal them as AF_INET and fail).
func (r *Registrar) flush(c *net.UDPConn, bc batchConn, o *udpOut, v4 bool) {
	ms := o.ms[:o.n]
	for len(ms) > 0 {
		var err error
		n := 0
		if v4 {
			n, err = bc.WriteBatch(ms, 0)
		} else {
			_, err = c.WriteTo(ms[0].Buffers[0], ms[0].Addr)
			if err == nil {
				n = 1
			}
		}
		if err != nil || n <= 0 {
			// The first unsent datagram failed: count it, go on with the rest.
			r.m.unsent.WithLabelValues("write_error").Inc()
			r.log.Debug("sip udp write", "to", ms[0].Addr.String(), "bytes", len(ms[0].Buffers[0]), "err", err)
			n = 1
		}
		ms = ms[n:]
	}
	for i := range o.ms[:o.n] {
		o.ms[i].Buffers[0], o.ms[i].Addr = nil, nil
	}
	o.n = 0
}

func (r *Registrar) readUDP(c *net.UDPConn, bc batchConn, v4 bool) error {
	in := make([]ipv4.Message, udpBatch)
	bufs := make([][]byte, udpBatch)
	outs := make([]udpScratch, udpBatch)
	for i := range in {
		bufs[i] = make([]byte, 65535)
		in[i].Buffers = [][]byte{bufs[i]}
	}
	out := newUDPOut()
	for {
		n, err := bc.ReadBatch(in, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		for i := range in[:n] {
			m := &in[i]
			r.handleDatagram(out, bufs[i][:m.N], m.Addr, &outs[out.n])
			m.Addr = nil
		}
		r.flush(c, bc, out, v4)
	}
}

// udpScratch is the memory one answer in a batch uses, reused: the
// answer's bytes must stay valid until the batch is sent.
type udpScratch struct {
	q   fastRequest
	a   regAnswer
	out []byte       // the fast path's answer
	key []byte       // its replay cache key
	buf bytes.Buffer // sipgo's
}

// handleDatagram parses and answers one datagram: a plain REGISTER on the
// fast path, anything else through sipgo's parser.
func (r *Registrar) handleDatagram(c udpWriter, data []byte, addr net.Addr, s *udpScratch) {
	if isKeepAlive(data) {
		return
	}
	// One copy of the datagram: the request's fields are substrings of it.
	if parseFast(string(data), data, &s.q) {
		s.q.source = sourceString(addr)
		r.answerFast(c, len(data), addr, s)
		return
	}
	msg, err := r.parser.ParseSIP(unfold(data))
	if err != nil {
		r.m.dropped.WithLabelValues("unparsable").Inc()
		return
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		return // a stray response: we send no requests
	}
	src := addr.String()
	req.SetSource(src)
	req.SetTransport("UDP")

	var key []byte
	var keyBuf [128]byte
	if req.Method == sip.REGISTER && headerNamed(req, "Authorization") != nil {
		if v, cs := req.Via(), req.CSeq(); v != nil && cs != nil {
			branch, _ := v.Params.Get("branch")
			key = appendReplayKey(keyBuf[:0], src, branch, cs.SeqNo, string(cs.MethodName))
			if !r.claimReplay(c, key, addr) {
				return
			}
			defer r.replays.release(key)
		}
	}
	res := r.answer(req)
	if res == nil {
		return
	}
	out := &s.buf
	if !r.renderUDP(out, req, res, len(data)) {
		return
	}
	if key != nil {
		r.replays.put(key, out.Bytes())
	}
	r.writeUDP(c, out.Bytes(), addr)
}

// renderUDP writes res, the answer to req (a datagram of size bytes), into
// out as UDP may carry it, and reports whether there is anything to send:
// an answer too large for a datagram becomes 413, and no answer but a 200
// to a REGISTER may be larger than the request.
func (r *Registrar) renderUDP(out *bytes.Buffer, req *sip.Request, res *sip.Response, size int) bool {
	out.Reset()
	res.StringWrite(out)
	if out.Len() > maxUDPPayload {
		// RFC 3261 §18.2.2 would have us try TCP; phones on UDP rarely
		// listen on it, so say why instead of staying silent.
		r.m.unsent.WithLabelValues("too_large").Inc()
		res = r.newResponse(req, sip.StatusMessageTooLarge, "Message Too Large")
		out.Reset()
		res.StringWrite(out)
		if out.Len() > maxUDPPayload {
			return false
		}
	}
	if out.Len() > size && (req.Method != sip.REGISTER || !res.IsSuccess()) {
		// An unauthenticated source may be spoofed: never send it more
		// than it sent (no amplification). Drop what is optional first:
		// Server, Accept, the challenges after the preferred one.
		res.RemoveHeader("Server")
		res.RemoveHeader("Accept")
		if ws := res.GetHeaders("WWW-Authenticate"); len(ws) > 1 {
			for range ws { // RemoveHeader removes one at a time
				res.RemoveHeader("WWW-Authenticate")
			}
			res.AppendHeader(ws[0]) // the preferred algorithm only
		}
		out.Reset()
		res.StringWrite(out)
		if out.Len() > size {
			r.m.unsent.WithLabelValues("amplification").Inc()
			return false
		}
	}
	return true
}

// sourceString is addr.String() with one allocation instead of three.
func sourceString(addr net.Addr) string {
	if ua, ok := addr.(*net.UDPAddr); ok && ua.Zone == "" {
		var b [64]byte
		ap := ua.AddrPort()
		// Unmapped as net prints it: a dual-stack socket reports IPv4
		// peers as ::ffff:a.b.c.d.
		return string(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).AppendTo(b[:0]))
	}
	return addr.String()
}

// appendReplayKey appends the name of one request in the replay cache.
func appendReplayKey(b []byte, src, branch string, cseq uint32, method string) []byte {
	b = append(append(append(append(b, src...), 0), branch...), 0)
	return append(append(strconv.AppendUint(b, uint64(cseq), 10), ' '), method...)
}

// answerFast answers a REGISTER parseFast read (s.q, from a datagram of
// size bytes) with the rules of the sipgo path: a retransmitted
// authenticated REGISTER gets the cached answer, and no answer but a 200
// is larger than the request (Server and the second challenge go first).
func (r *Registrar) answerFast(c udpWriter, size int, addr net.Addr, s *udpScratch) {
	q, a := &s.q, &s.a
	var key []byte
	if len(q.auth) > 0 {
		key = appendReplayKey(s.key[:0], q.source, q.branch, q.cseq, q.cseqMethod)
		s.key = key[:0] // keep a grown buffer
		if !r.claimReplay(c, key, addr) {
			return
		}
		defer r.replays.release(key)
	}
	a.reset()
	r.register(&q.regRequest, a)
	tag := toTag() // the same in every rendering of this answer
	out := r.appendFast(s.out[:0], q, a, tag, false)
	defer func() { s.out = out[:0] }() // keep the grown buffer
	if len(out) > maxUDPPayload {
		r.m.unsent.WithLabelValues("too_large").Inc()
		a.reset()
		a.code, a.reason = sip.StatusMessageTooLarge, "Message Too Large"
		if out = r.appendFast(out[:0], q, a, tag, false); len(out) > maxUDPPayload {
			return
		}
	}
	if len(out) > size && a.code != sip.StatusOK {
		if out = r.appendFast(out[:0], q, a, tag, true); len(out) > size {
			r.m.unsent.WithLabelValues("amplification").Inc()
			return
		}
	}
	if key != nil {
		r.replays.put(key, out)
	}
	r.writeUDP(c, out, addr)
}

// claimReplay looks an authenticated REGISTER up in the replay cache: a
// retransmission gets the cached answer, and one that arrives while
// another reader is still answering the original is dropped (RFC 3261
// §17.2.2: in the Trying state retransmissions are discarded; the client
// sends it again and then gets the cached answer). Processing both would
// fail the second on the nonce-count replay check and count an
// authentication failure against the source. It reports whether the
// caller is to answer; then it must call r.replays.release(key) when done.
func (r *Registrar) claimReplay(c udpWriter, key []byte, addr net.Addr) bool {
	b, st := r.replays.claim(key)
	switch st {
	case replayHit:
		r.writeUDP(c, b, addr)
		return false
	case replayBusy:
		r.m.dropped.WithLabelValues("in_progress").Inc()
		return false
	}
	return true
}

// udpWriter sends one datagram (a batch collector, or a socket).
type udpWriter interface {
	WriteTo(b []byte, addr net.Addr) (int, error)
}

func (r *Registrar) writeUDP(c udpWriter, b []byte, addr net.Addr) {
	// Payloads over the path MTU are fragmented by IP: RFC 3261 §18.2.2
	// sends responses over the transport the request came on, whatever
	// their size.
	if _, err := c.WriteTo(b, addr); err != nil {
		r.m.unsent.WithLabelValues("write_error").Inc()
		r.log.Debug("sip udp write", "to", addr.String(), "bytes", len(b), "err", err)
	}
}

// unfold joins folded header lines (RFC 3261 §7.3.1: CRLF followed by
// whitespace is a continuation), which sipgo's parser does not; RFC 4475
// wsinv is valid. Messages without folding are returned as they are.
func unfold(data []byte) []byte {
	end := bytes.Index(data, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(data)
	}
	head := data[:end]
	if !bytes.Contains(head, []byte("\r\n ")) && !bytes.Contains(head, []byte("\r\n\t")) {
		return data
	}
	out := make([]byte, 0, len(data))
	for i := 0; i < end; i++ {
		if head[i] == '\r' && i+2 < end && head[i+1] == '\n' && (head[i+2] == ' ' || head[i+2] == '\t') {
			out = append(out, ' ')
			i++ // skip the LF; the whitespace is kept
			continue
		}
		out = append(out, head[i])
	}
	return append(out, data[end:]...)
}

// isKeepAlive reports a CRLF keep-alive (RFC 5626 §3.5.1) or padding.
func isKeepAlive(b []byte) bool {
	for _, c := range b {
		if c != '\r' && c != '\n' && c != 0 && c != ' ' {
			return false
		}
	}
	return true
}

// replayCache remembers the answers to authenticated REGISTERs over UDP
// for a retransmission of the same request (same source, branch and
// CSeq): re-processing it would hit the nonce-count replay check and
// answer 401. Two generations bound memory; an entry lives at least until
// its generation is full and replayMinAge old, or 4 times full, or
// replayTTL (Timer J, 64*T1) has passed. A generation keeps its keys and
// answers end to end in fixed-size chunks, indexed by a seeded hash of
// the key (the key is compared on a hit): no allocation per entry.
type replayCache struct {
	mu        sync.Mutex
	cur, prev replayGen
	inflight  map[uint64]struct{} // keys being answered (hashes)
	perGen    int
	curStart  time.Time
	now       func() time.Time
	seed      maphash.Seed
}

type replayGen struct {
	idx    map[uint64]replaySpan
	chunks [][]byte // key, then answer, per entry; only ever appended to
}

// replaySpan is one entry of a generation: where in which chunk.
type replaySpan struct{ chunk, off, keyLen, ansLen int }

// replayChunk is the size of a generation's buffers (about 120 answers):
// fixed chunks, not one growing buffer, so that nothing is copied as a
// generation grows.
const replayChunk = 64 << 10

const replayTTL = 32 * time.Second

// A generation is not rotated out for being full before it is
// replayMinAge old, up to replayMaxFactor times its size: under overload
// (10,000 REGISTERs a second fill 8,192 entries in 0.8 s) the answers
// must outlive the client's retransmissions (500 ms, then 1, 2 and 4 s
// later), or a late retransmission is processed again, fails the
// nonce-count replay check and counts as an authentication failure.
const (
	replayMinAge    = 8 * time.Second
	replayMaxFactor = 4
)

func newReplayCache(perGen int, now func() time.Time) *replayCache {
	c := &replayCache{perGen: perGen, now: now, curStart: now(), seed: maphash.MakeSeed(), inflight: map[uint64]struct{}{}}
	c.cur.idx, c.prev.idx = c.newIndex(), c.newIndex()
	return c
}

func (c *replayCache) newIndex() map[uint64]replaySpan {
	return make(map[uint64]replaySpan, min(c.perGen, 1024))
}

// What claim found.
const (
	replayClaimed = iota // not cached, not being answered: answer it
	replayHit            // answered before: the answer is returned
	replayBusy           // being answered by another reader
)

// claim returns the answer cached for key (replayHit), or reports that
// another caller is answering it (replayBusy), or marks it as being
// answered by this caller (replayClaimed), who must call release.
func (c *replayCache) claim(key []byte) ([]byte, int) {
	h := maphash.Bytes(c.seed, key)
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.cur.get(h, key); ok {
		return b, replayHit
	}
	if b, ok := c.prev.get(h, key); ok {
		return b, replayHit
	}
	if _, ok := c.inflight[h]; ok {
		return nil, replayBusy
	}
	c.inflight[h] = struct{}{}
	return nil, replayClaimed
}

// release ends a claim, whether an answer was put or not.
func (c *replayCache) release(key []byte) {
	h := maphash.Bytes(c.seed, key)
	c.mu.Lock()
	delete(c.inflight, h)
	c.mu.Unlock()
}

func (g *replayGen) get(h uint64, key []byte) ([]byte, bool) {
	sp, ok := g.idx[h]
	if !ok {
		return nil, false
	}
	c := g.chunks[sp.chunk]
	if !bytes.Equal(c[sp.off:sp.off+sp.keyLen], key) {
		return nil, false
	}
	a := sp.off + sp.keyLen
	return c[a : a+sp.ansLen : a+sp.ansLen], true
}

func (g *replayGen) put(h uint64, key, b []byte) {
	need := len(key) + len(b)
	n := len(g.chunks)
	if n == 0 || cap(g.chunks[n-1])-len(g.chunks[n-1]) < need {
		g.chunks = append(g.chunks, make([]byte, 0, max(replayChunk, need)))
		n++
	}
	c := &g.chunks[n-1]
	g.idx[h] = replaySpan{chunk: n - 1, off: len(*c), keyLen: len(key), ansLen: len(b)}
	*c = append(append(*c, key...), b...)
}

func (c *replayCache) put(key, b []byte) {
	h := maphash.Bytes(c.seed, key)
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	n, age := len(c.cur.idx), now.Sub(c.curStart)
	if (n >= c.perGen && age >= replayMinAge) || n >= replayMaxFactor*c.perGen || age > replayTTL {
		c.prev, c.cur, c.curStart = c.cur, replayGen{idx: c.newIndex()}, now
	}
	c.cur.put(h, key, b)
}

// listenUDP binds udpSockets() sockets to addr, sharing the port with
// SO_REUSEPORT. The port is first bound alone, without the option, so
// that a port another process holds (even with SO_REUSEPORT, e.g. a
// second pbxd of the same user) fails here instead of silently sharing
// its traffic; port 0 is resolved by that first bind.
func listenUDP(addr string) ([]*net.UDPConn, error) {
	laddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("sip listen udp %s: %w", addr, err)
	}
	// Between the probe's close and the shared binds another process may
	// take a port the kernel chose for us; then choose again. A port the
	// caller named is never retried: losing it is a real conflict.
	for try := 0; ; try++ {
		cs, err := listenUDPOnce(laddr)
		if err == nil || laddr.Port != 0 || try == 4 || !errors.Is(err, syscall.EADDRINUSE) {
			return cs, err
		}
	}
}

func listenUDPOnce(laddr *net.UDPAddr) ([]*net.UDPConn, error) {
	probe, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, fmt.Errorf("sip listen udp: %w", err)
	}
	n := 1
	if haveReusePort {
		n = udpSockets()
	}
	if n == 1 {
		_ = probe.SetReadBuffer(4 << 20) // absorb bursts of REGISTERs
		return []*net.UDPConn{probe}, nil
	}
	bound := probe.LocalAddr().String()
	_ = probe.Close()
	lc := net.ListenConfig{Control: reusePort}
	cs := make([]*net.UDPConn, 0, n)
	for range n {
		pc, err := lc.ListenPacket(context.Background(), "udp", bound)
		if err != nil {
			for _, c := range cs {
				_ = c.Close()
			}
			return nil, fmt.Errorf("sip listen udp %s (SO_REUSEPORT): %w", bound, err)
		}
		c := pc.(*net.UDPConn)
		_ = c.SetReadBuffer(4 << 20)
		cs = append(cs, c)
	}
	return cs, nil
}
