package sip

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

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

// limitListener caps connections per source (IPv6 /64) and in all, and
// gives every accepted connection read deadlines, so partial headers,
// silent TLS clients and idle connections are closed: sipgo's TCP and TLS
// transports read without any deadline. Connections over a cap are closed
// at once, before sipgo sees them.
type limitListener struct {
	net.Listener
	lim     connLimits
	refused *prometheus.CounterVec // by reason

	mu       sync.Mutex
	bySource map[netip.Addr]int // entries only while connections are open
	open     atomic.Int64
}

func newLimitListener(l net.Listener, lim connLimits, refused *prometheus.CounterVec) *limitListener {
	return &limitListener{Listener: l, lim: lim, refused: refused, bySource: make(map[netip.Addr]int)}
}

// Accept returns the next connection within the caps.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := throttle.Source(sourceIP(c.RemoteAddr().String()))
		l.mu.Lock()
		reason := ""
		switch {
		case int(l.open.Load()) >= l.lim.total:
			reason = "total"
		case l.bySource[src] >= l.lim.perSource:
			reason = "per_source"
		default:
			l.bySource[src]++
			l.open.Add(1)
		}
		l.mu.Unlock()
		if reason != "" {
			l.refused.WithLabelValues(reason).Inc()
			_ = c.Close()
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(l.lim.firstRead))
		return &limitConn{Conn: c, l: l, src: src}, nil
	}
}

func (l *limitListener) release(src netip.Addr) {
	l.mu.Lock()
	if n := l.bySource[src] - 1; n > 0 {
		l.bySource[src] = n
	} else {
		delete(l.bySource, src)
	}
	l.open.Add(-1)
	l.mu.Unlock()
}

// limitConn extends its read deadline by the idle timeout after each read
// and gives its slot back when closed.
type limitConn struct {
	net.Conn
	l      *limitListener
	src    netip.Addr
	closed atomic.Bool
}

func (c *limitConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.l.lim.idle))
	}
	return n, err
}

func (c *limitConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.release(c.src)
	}
	return c.Conn.Close()
}
