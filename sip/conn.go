package sip

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	sipgo "github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxd/pbxd/internal/throttle"
)

// connLimits are the TCP and TLS connection policies (see Config).
type connLimits struct {
	firstRead time.Duration // until the first bytes (TLS: the ClientHello)
	idle      time.Duration // between reads afterwards
	perSource int
	total     int
}

// connGate caps connections per source (IPv6 /64) and in all, over every
// listener of one transport, and gives every accepted connection read
// deadlines, so partial headers, silent TLS clients and idle connections
// are closed: sipgo's TCP and TLS transports read without any deadline.
// Connections over a cap are closed at once, before sipgo sees them.
type connGate struct {
	lim     connLimits
	refused *prometheus.CounterVec // by reason

	mu       sync.Mutex
	bySource map[netip.Addr]int // entries only while connections are open
	open     atomic.Int64
}

func newConnGate(lim connLimits, refused *prometheus.CounterVec) *connGate {
	return &connGate{lim: lim, refused: refused, bySource: make(map[netip.Addr]int)}
}

// readBufferSize replaces sipgo's 32 KiB read buffer per TCP/TLS
// connection: its stream parser joins reads, so a small buffer only means
// more reads for rare large messages, and 20,000 idle connections cost
// 80 MB less.
const readBufferSize = 4096

func init() { sipgo.TransportBufferReadSize = readBufferSize }

// limitListener is a listener behind a connGate.
type limitListener struct {
	net.Listener
	g *connGate
}

// Accept returns the next connection within the caps.
func (l *limitListener) Accept() (net.Conn, error) {
	g := l.g
	for {
		c, err := l.Listener.Accept()
		if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
			// Out of file descriptors: wait for some to close rather than
			// stop serving (sipgo ends its accept loop on any error).
			g.refused.WithLabelValues("fd_limit").Inc()
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if err != nil {
			return nil, err
		}
		src := throttle.Source(sourceIP(c.RemoteAddr().String()))
		g.mu.Lock()
		reason := ""
		switch {
		case int(g.open.Load()) >= g.lim.total:
			reason = "total"
		case g.bySource[src] >= g.lim.perSource:
			reason = "per_source"
		default:
			g.bySource[src]++
			g.open.Add(1)
		}
		g.mu.Unlock()
		if reason != "" {
			g.refused.WithLabelValues(reason).Inc()
			_ = c.Close()
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(g.lim.firstRead))
		return &limitConn{Conn: c, g: g, src: src}, nil
	}
}

func (g *connGate) release(src netip.Addr) {
	g.mu.Lock()
	if n := g.bySource[src] - 1; n > 0 {
		g.bySource[src] = n
	} else {
		delete(g.bySource, src)
	}
	g.open.Add(-1)
	g.mu.Unlock()
}

// limitConn extends its read deadline by the idle timeout after each read
// and gives its slot back when closed.
type limitConn struct {
	net.Conn
	g      *connGate
	src    netip.Addr
	closed atomic.Bool
}

func (c *limitConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		_ = c.SetReadDeadline(time.Now().Add(c.g.lim.idle))
	}
	return n, err
}

func (c *limitConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.g.release(c.src)
	}
	return c.Conn.Close()
}
