package sip

import (
	"bytes"
	"errors"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
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

// udpReaders is the number of goroutines reading the UDP socket.
func udpReaders() int { return max(2, min(runtime.GOMAXPROCS(0)*2, 16)) }

// serveUDP reads datagrams until the connection is closed.
func (r *Registrar) serveUDP(c net.PacketConn) error {
	var wg sync.WaitGroup
	errs := make(chan error, udpReaders())
	for range udpReaders() {
		wg.Go(func() { errs <- r.readUDP(c) })
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func (r *Registrar) readUDP(c net.PacketConn) error {
	buf := make([]byte, 65535)
	var out bytes.Buffer
	for {
		n, addr, err := c.ReadFrom(buf)
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
		out.Reset()
		r.handleDatagram(c, buf[:n], addr, &out)
	}
}

// handleDatagram parses and answers one datagram; out is an empty buffer
// for the answer, reused across calls.
func (r *Registrar) handleDatagram(c net.PacketConn, data []byte, addr net.Addr, out *bytes.Buffer) {
	if isKeepAlive(data) {
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

	key := ""
	if req.Method == sip.REGISTER && req.GetHeader("Authorization") != nil {
		if v, cs := req.Via(), req.CSeq(); v != nil && cs != nil {
			branch, _ := v.Params.Get("branch")
			key = src + "\x00" + branch + "\x00" + cs.Value()
			if b, ok := r.replays.get(key); ok {
				r.writeUDP(c, b, addr)
				return
			}
		}
	}
	res := r.answer(req)
	if res == nil {
		return
	}
	res.StringWrite(out)
	if out.Len() > maxUDPPayload {
		// RFC 3261 §18.2.2 would have us try TCP; phones on UDP rarely
		// listen on it, so say why instead of staying silent.
		r.m.unsent.WithLabelValues("too_large").Inc()
		res = r.newResponse(req, sip.StatusMessageTooLarge, "Message Too Large")
		out.Reset()
		res.StringWrite(out)
		if out.Len() > maxUDPPayload {
			return
		}
	}
	if out.Len() > len(data) && !(req.Method == sip.REGISTER && res.IsSuccess()) {
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
		if out.Len() > len(data) {
			r.m.unsent.WithLabelValues("amplification").Inc()
			return
		}
	}
	if key != "" {
		r.replays.put(key, out.Bytes())
	}
	r.writeUDP(c, out.Bytes(), addr)
}

func (r *Registrar) writeUDP(c net.PacketConn, b []byte, addr net.Addr) {
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
// its generation is full or replayTTL (Timer J, 64*T1) has passed.
type replayCache struct {
	mu        sync.Mutex
	cur, prev map[string][]byte
	perGen    int
	curStart  time.Time
	now       func() time.Time
}

const replayTTL = 32 * time.Second

func newReplayCache(perGen int, now func() time.Time) *replayCache {
	return &replayCache{cur: map[string][]byte{}, prev: map[string][]byte{}, perGen: perGen, now: now, curStart: now()}
}

func (c *replayCache) get(key string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.cur[key]; ok {
		return b, true
	}
	b, ok := c.prev[key]
	return b, ok
}

func (c *replayCache) put(key string, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.now(); len(c.cur) >= c.perGen || now.Sub(c.curStart) > replayTTL {
		c.prev, c.cur, c.curStart = c.cur, make(map[string][]byte, min(c.perGen, 1024)), now
	}
	c.cur[key] = append([]byte(nil), b...)
}
