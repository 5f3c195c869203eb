// Package sip is pbxd's built-in SIP registrar (RFC 3261 §10), and the
// "builtin" pbx.Backend. github.com/emiago/sipgo parses messages and serves
// TCP and TLS; UDP is read here, statelessly (see udp.go).
//
// Lines arrive through Apply (from the reconciler) and are indexed by
// (SIP domain, username). Phones REGISTER with digest authentication (MD5
// and SHA-256 as configured, qop=auth) checked against the stored HA1
// values; bindings live in memory, are persisted through a write-behind
// BindingStore, expire on a timer and are reported as
// pbx.RegistrationEvents.
//
// Answers chosen where RFC 3261 leaves room (see the tests for each):
//   - unknown domain, unknown user, wrong password, replayed nonce count and
//     unsupported digest parameters all get the same 401 with a fresh
//     challenge (same headers, stale=false), after the same amount of
//     hashing, so none of them reveals whether a user exists;
//   - a source IP with too many such failures for one user (or, with a
//     higher ceiling, for any users) is blocked and answered 403 (result
//     "throttled") without digest work; only failures echoing a nonce
//     issued to that source count, so spoofed packets block nobody;
//   - a suspended line that authenticates correctly gets 403;
//   - same Call-ID with a CSeq not higher than the binding's gets 500
//     (RFC 3261 §10.3 step 7: "the update MUST be aborted");
//   - malformed REGISTERs get 400; requests with no usable Via, From, To,
//     Call-ID or CSeq, and datagrams that are not SIP, are dropped;
//   - other methods get one 405 (501 if unknown), never a transaction;
//   - no UDP answer to an unauthenticated request is larger than it.
package sip

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxd/pbxd/internal/throttle"
	"github.com/pbxd/pbxd/pbx"
)

// Registrar is the built-in SIP registrar. It implements pbx.Backend.
// Create it with New, then call Run.
type Registrar struct {
	cfg     Config
	clock   Clock
	log     *slog.Logger
	store   BindingStore
	shared  SharedStore // store, when shared with other instances; else nil
	wb      *writeBehind
	events  *eventQueue
	nonces  *noncer
	nc      *ncTracker
	parser  *sip.Parser
	replays *replayCache
	// algs and domainAlgs are Config.DigestAlgorithms and
	// DomainDigestAlgorithms, canonical, domains in lower case.
	algs       []string
	domainAlgs map[string][]string
	thrUser    *throttle.Limiter // failures per source + user
	thrSrc     *throttle.Limiter // failures per source, any user (scanners)
	m          *metrics
	dates      dateCache // the Date header of the current second

	tableMu sync.RWMutex
	byID    map[string]*line
	byAOR   map[string]*line

	active atomic.Int64 // registered contacts

	ua       *sipgo.UserAgent
	srv      *sipgo.Server
	udpConns []net.PacketConn // Config.UDPListen, then ExtraListen
	// udpSockets are all the UDP sockets, udpSockets() per address
	// sharing its port (SO_REUSEPORT); udpConns holds the first of each.
	udpSockets []*net.UDPConn
	tcpLns     []net.Listener // Config.TCPListen, then ExtraListen
	tlsLn      net.Listener
	tcpGate    *connGate
	tlsGate    *connGate
	ourIPs     []netip.Addr // of the listeners; unspecified: any

	gate     sync.RWMutex // handlers hold it shared; Run takes it to drain
	closed   bool         // under gate: stop handling requests
	started  atomic.Bool
	running  atomic.Bool
	closeErr error
	once     sync.Once
}

// line is one provisioned line and its bindings.
type line struct {
	mu       sync.Mutex
	cfg      *pbx.LineConfig // nil: bindings loaded from the store, line not applied yet
	aor      string
	contacts []Binding
}

func aorKey(domain, user string) string { return strings.ToLower(domain) + "\x00" + user }

// Addrs are the addresses a Registrar is bound to; empty for a disabled
// transport.
type Addrs struct {
	UDP, TCP, TLS string
}

// New validates cfg, binds the listeners (so a port in use fails here, at
// start-up) and returns a Registrar ready to Run. store may be nil (no
// persistence); clock nil means the system clock; reg receives the metrics
// (never the global registry in pbxd; nil registers nowhere). Until Run is
// called nothing is served; call Close if Run will never be called.
func New(cfg Config, store BindingStore, clock Clock, logger *slog.Logger, reg prometheus.Registerer) (*Registrar, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if clock == nil {
		clock = SystemClock{}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if store == nil {
		store = &MemoryStore{}
	}
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	now := clock.Now()
	r := &Registrar{
		cfg:    cfg,
		clock:  clock,
		log:    logger,
		store:  store,
		events: newEventQueue(cfg.EventBuffer),
		nonces: newNoncer(cfg.Secret, cfg.NonceLifetime, binary.BigEndian.Uint64(seed[:])),
		nc:     newNCTracker(cfg.NonceTrackerSize, now),
		thrUser: throttle.New(throttle.Config{Limit: cfg.ThrottleFailures, Window: cfg.ThrottleWindow,
			Block: cfg.ThrottleBlock, Size: cfg.ThrottleMaxSources}),
		thrSrc: throttle.New(throttle.Config{Limit: cfg.ThrottleSourceFailures, Window: cfg.ThrottleWindow,
			Block: cfg.ThrottleBlock, Size: cfg.ThrottleMaxSources}),
		parser: sip.NewParser(),
		byID:   make(map[string]*line),
		byAOR:  make(map[string]*line),
	}
	r.m = newMetrics(reg,
		func() float64 { return float64(r.active.Load()) },
		func() float64 {
			now := r.clock.Now()
			return float64(r.thrUser.BlockedCount(now) + r.thrSrc.BlockedCount(now))
		})
	r.wb = newWriteBehind(store, logger, r.m)
	r.shared, _ = store.(SharedStore)
	r.replays = newReplayCache(8192, clock.Now)
	canon := func(algs []string) []string {
		out := make([]string, len(algs))
		for i, a := range algs {
			out[i] = canonicalAlg(a)
		}
		return out
	}
	r.algs = canon(cfg.DigestAlgorithms)
	r.domainAlgs = make(map[string][]string, len(cfg.DomainDigestAlgorithms))
	for d, algs := range cfg.DomainDigestAlgorithms {
		r.domainAlgs[strings.ToLower(d)] = canon(algs)
	}

	quiet := slog.New(debugOnly{logger.Handler()}).With("component", "sipgo")
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent(cfg.UserAgent),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(quiet)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(quiet)),
	)
	if err != nil {
		return nil, fmt.Errorf("sip user agent: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(quiet))
	if err != nil {
		_ = ua.Close()
		return nil, fmt.Errorf("sip server: %w", err)
	}
	r.ua, r.srv = ua, srv
	// sipgo serves TCP and TLS; UDP is served by serveUDP.
	srv.OnRegister(r.serveTx)
	srv.OnOptions(r.serveTx)
	srv.OnNoRoute(r.serveTx)

	if err := r.listen(); err != nil {
		r.closeListeners()
		_ = ua.Close()
		return nil, err
	}
	return r, nil
}

func (r *Registrar) listen() error {
	udp, tcp := r.cfg.ExtraListen, r.cfg.ExtraListen
	if r.cfg.UDPListen != "" {
		udp = append([]string{r.cfg.UDPListen}, udp...)
	}
	if r.cfg.TCPListen != "" {
		tcp = append([]string{r.cfg.TCPListen}, tcp...)
	}
	for _, a := range udp {
		cs, err := listenUDP(a)
		if err != nil {
			return err
		}
		r.udpConns = append(r.udpConns, cs[0])
		r.udpSockets = append(r.udpSockets, cs...)
		r.addOurIP(cs[0].LocalAddr())
	}
	lim := connLimits{firstRead: r.cfg.ConnFirstReadTimeout, idle: r.cfg.ConnIdleTimeout,
		perSource: r.cfg.ConnsPerSource, total: r.cfg.ConnsMax}
	r.tcpGate = newConnGate(lim, r.m.connsRefused.MustCurryWith(prometheus.Labels{"transport": "tcp"}))
	r.m.connsOpen(r.tcpGate, "tcp")
	for _, a := range tcp {
		l, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("sip listen tcp: %w", err)
		}
		r.tcpLns = append(r.tcpLns, &limitListener{Listener: l, g: r.tcpGate})
		r.addOurIP(l.Addr())
	}
	if a := r.cfg.TLSListen; a != "" {
		cert, err := tls.LoadX509KeyPair(r.cfg.TLSCertFile, r.cfg.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("sip tls certificate: %w", err)
		}
		l, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("sip listen tls: %w", err)
		}
		r.tlsGate = newConnGate(lim, r.m.connsRefused.MustCurryWith(prometheus.Labels{"transport": "tls"}))
		r.m.connsOpen(r.tlsGate, "tls")
		r.tlsLn = tls.NewListener(&limitListener{Listener: l, g: r.tlsGate},
			&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		r.addOurIP(l.Addr())
	}
	return nil
}

func (r *Registrar) addOurIP(a net.Addr) {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		r.ourIPs = append(r.ourIPs, ap.Addr().Unmap())
	}
}

// isOurAddress reports whether host is an IP address the registrar listens
// on (any IP when it listens on an unspecified address): phones configured
// with the registrar's address send it as the Request-URI.
func (r *Registrar) isOurAddress(host string) bool {
	if host == "" || (host[0] < '0' || host[0] > '9') && !strings.ContainsAny(host, ":[") {
		return false // a domain name: spare ParseAddr's error
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, o := range r.ourIPs {
		if o == ip || o.IsUnspecified() {
			return true
		}
	}
	return false
}

// Addrs returns the bound listener addresses (with the real port when the
// configuration asked for port 0); with ExtraListen, the first of each.
func (r *Registrar) Addrs() Addrs {
	var a Addrs
	if len(r.udpConns) > 0 {
		a.UDP = r.udpConns[0].LocalAddr().String()
	}
	if len(r.tcpLns) > 0 {
		a.TCP = r.tcpLns[0].Addr().String()
	}
	if r.tlsLn != nil {
		a.TLS = r.tlsLn.Addr().String()
	}
	return a
}

func (r *Registrar) closeListeners() {
	for _, c := range r.udpSockets {
		_ = c.Close()
	}
	for _, l := range r.tcpLns {
		_ = l.Close()
	}
	if r.tlsLn != nil {
		_ = r.tlsLn.Close()
	}
}

// Close releases the listeners of a Registrar whose Run was never called.
// After Run it does nothing.
func (r *Registrar) Close() error {
	if r.started.Load() {
		return nil
	}
	r.once.Do(func() {
		r.closeListeners()
		r.closeErr = r.ua.Close()
	})
	return r.closeErr
}

// Run loads the persisted bindings, serves SIP until ctx is done, then
// closes the listeners, waits for requests in progress, flushes the
// write-behind queue (bounded by Config.FlushTimeout) and closes the Events
// channel. It returns nil after a normal shutdown, or the error that
// stopped it (a listener failing, the store failing at load).
func (r *Registrar) Run(ctx context.Context) error {
	if !r.started.CompareAndSwap(false, true) {
		return errors.New("sip: registrar already started")
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var bg sync.WaitGroup
	bgCtx, bgCancel := context.WithCancel(context.WithoutCancel(ctx))
	bg.Go(func() { r.events.run(bgCtx) })
	bg.Go(func() { r.wb.run(bgCtx, r.cfg.FlushTimeout) })
	if r.shared != nil {
		bg.Go(func() { r.follow(bgCtx) })
	}

	if err := r.load(ctx); err != nil {
		r.closeListeners()
		_ = r.ua.Close()
		bgCancel()
		bg.Wait()
		return err
	}

	var serving sync.WaitGroup
	serve := func(name string, f func() error) {
		serving.Go(func() {
			err := f()
			if runCtx.Err() == nil {
				if err == nil {
					err = errors.New("stopped")
				}
				cancel(fmt.Errorf("sip %s listener: %w", name, err))
			}
		})
	}
	for _, c := range r.udpSockets {
		serve("udp", func() error { return r.serveUDP(c) })
	}
	for _, l := range r.tcpLns {
		serve("tcp", func() error { return r.srv.ServeTCP(l) })
	}
	if r.tlsLn != nil {
		serve("tls", func() error { return r.srv.ServeTLS(r.tlsLn) })
	}
	sweepDone := make(chan struct{})
	go func() { defer close(sweepDone); r.sweepLoop(runCtx) }()
	r.running.Store(true)
	r.log.Info("sip registrar listening", "udp", r.Addrs().UDP, "tcp", r.Addrs().TCP, "tls", r.Addrs().TLS)

	<-runCtx.Done()
	r.running.Store(false)
	r.closeListeners()
	serving.Wait()
	<-sweepDone
	r.gate.Lock() // wait for requests in progress
	r.closed = true
	r.gate.Unlock()
	_ = r.ua.Close()
	bgCancel() // final flush of the write-behind queue, close Events
	bg.Wait()
	r.log.Info("sip registrar stopped")
	if ctx.Err() == nil {
		return context.Cause(runCtx) // a listener failed
	}
	return nil
}

// load reads the persisted bindings into memory. Bindings of lines not
// applied yet are kept aside until Apply; expired ones are dropped.
func (r *Registrar) load(ctx context.Context) error {
	bs, err := r.store.LoadBindings(ctx)
	if err != nil {
		return fmt.Errorf("sip: load bindings: %w", err)
	}
	now := r.clock.Now()
	touched := map[*line]bool{}
	r.tableMu.Lock()
	for _, b := range bs {
		if !b.ExpiresAt.After(now) {
			if r.shared == nil { // else the sweep expires it, once
				r.wb.remove(b.LineID, b.ContactURI)
			}
			continue
		}
		l := r.byID[b.LineID]
		if l == nil {
			l = &line{}
			r.byID[b.LineID] = l
		}
		if l.cfg != nil && l.cfg.Suspended {
			r.wb.remove(b.LineID, b.ContactURI)
			continue
		}
		l.mu.Lock()
		if idx := l.find(b.ContactURI); idx >= 0 {
			l.contacts[idx] = b
		} else {
			l.contacts = append(l.contacts, b)
			r.active.Add(1)
		}
		l.mu.Unlock()
		touched[l] = true
	}
	r.tableMu.Unlock()
	for l := range touched {
		l.mu.Lock()
		if len(l.contacts) > 0 {
			r.emitLocked(l.contacts[0].LineID, l, now)
		}
		l.mu.Unlock()
	}
	r.log.Info("sip bindings loaded", "bindings", len(bs), "lines", len(touched))
	return nil
}

func (l *line) find(uri string) int {
	for i := range l.contacts {
		if l.contacts[i].ContactURI == uri {
			return i
		}
	}
	return -1
}

// emitLocked queues the line's current contact set as an event. l.mu held.
func (r *Registrar) emitLocked(lineID string, l *line, now time.Time) {
	ev := pbx.RegistrationEvent{LineID: lineID, At: now}
	if len(l.contacts) > 0 {
		ev.Contacts = make([]pbx.Contact, len(l.contacts))
		for i, b := range l.contacts {
			ev.Contacts[i] = pbx.Contact{URI: b.ContactURI, UserAgent: b.UserAgent, Source: b.Source, Expires: b.ExpiresAt}
		}
	}
	r.events.push(ev)
}

// dropLocked removes every binding of the line, persists and reports it.
func (r *Registrar) dropLocked(lineID string, l *line, now time.Time) {
	if len(l.contacts) == 0 {
		return
	}
	r.active.Add(-int64(len(l.contacts)))
	l.contacts = nil
	r.wb.removeLine(lineID)
	r.emitLocked(lineID, l, now)
}

func (r *Registrar) sweepLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.Sweep()
		}
	}
}

// Sweep removes expired bindings now (Run does it every
// Config.SweepInterval). It returns the number of bindings it expired:
// with a SharedStore, those it deleted from the store (another instance
// expires the others; every instance drops them from memory).
func (r *Registrar) Sweep() int {
	if r.shared != nil {
		ctx, cancel := context.WithTimeout(context.Background(), max(r.cfg.SweepInterval, 10*time.Second))
		defer cancel()
		return r.sweepShared(ctx)
	}
	return r.sweepLocal(r.clock.Now())
}

// snapshot returns the lines held now and their IDs, to visit one by one
// without holding the table lock.
func (r *Registrar) snapshot() ([]string, []*line) {
	r.tableMu.RLock()
	defer r.tableMu.RUnlock()
	ids := make([]string, 0, len(r.byID))
	ls := make([]*line, 0, len(r.byID))
	for id, l := range r.byID {
		ids = append(ids, id)
		ls = append(ls, l)
	}
	return ids, ls
}

// sweepLocal expires the bindings lapsed at now from memory, persisting
// and reporting each.
func (r *Registrar) sweepLocal(now time.Time) int {
	ids, ls := r.snapshot()
	removed := 0
	for i, l := range ls {
		l.mu.Lock()
		n := 0
		kept := l.contacts[:0]
		for _, b := range l.contacts {
			if b.ExpiresAt.After(now) {
				kept = append(kept, b)
				continue
			}
			n++
			r.wb.remove(ids[i], b.ContactURI)
		}
		clear(l.contacts[len(kept):])
		l.contacts = kept
		if n > 0 {
			removed += n
			r.active.Add(-int64(n))
			r.m.expired.Add(float64(n))
			r.emitLocked(ids[i], l, now)
		}
		l.mu.Unlock()
	}
	if removed > 0 {
		r.log.Debug("sip bindings expired", "count", removed)
	}
	return removed
}

// Name implements pbx.Backend.
func (r *Registrar) Name() string { return "builtin" }

// Connected implements pbx.Backend: true while Run serves.
func (r *Registrar) Connected() bool { return r.running.Load() }

// Events implements pbx.Backend. Events are coalesced per line (each
// carries the full contact set) and the channel is closed when Run returns.
func (r *Registrar) Events() <-chan pbx.RegistrationEvent { return r.events.out }

// ErrInvalidLine is returned by Apply for a line config lacking an ID,
// domain or username.
var ErrInvalidLine = errors.New("sip: line config needs id, domain and username")

// Apply implements pbx.Backend: it stores the line config, replacing any
// previous one with the same ID. A suspended line loses its bindings at
// once; so does a line whose domain or username changed. A new password
// (new HA1 values) takes effect for the next REGISTER; existing bindings
// stay until they expire or are refreshed with the new password.
func (r *Registrar) Apply(_ context.Context, cfg pbx.LineConfig) error {
	if cfg.ID == "" || cfg.Domain == "" || cfg.Username == "" {
		return ErrInvalidLine
	}
	now := r.clock.Now()
	c := cfg
	key := aorKey(c.Domain, c.Username)
	r.tableMu.Lock()
	l := r.byID[c.ID]
	if l == nil {
		l = &line{}
		r.byID[c.ID] = l
	}
	if old := r.byAOR[key]; old != nil && old != l {
		// The database keeps addresses unique among live lines, so this is a
		// freed extension reused in the same change (3 → 4 France, 1 → 0
		// World), applied before the old line's removal: routine, not a fault.
		r.log.Info("sip address moved to another line", "domain", c.Domain, "username", c.Username, "line", c.ID)
		old.mu.Lock()
		old.aor = ""
		old.mu.Unlock()
	}
	l.mu.Lock()
	if l.aor != "" && l.aor != key {
		if r.byAOR[l.aor] == l {
			delete(r.byAOR, l.aor)
		}
		r.dropLocked(c.ID, l, now) // registered under the old address
	}
	l.aor = key
	r.byAOR[key] = l
	l.cfg = &c
	if c.Suspended {
		r.dropLocked(c.ID, l, now)
	}
	l.mu.Unlock()
	r.tableMu.Unlock()
	return nil
}

// Remove implements pbx.Backend: the line and its bindings are dropped.
func (r *Registrar) Remove(_ context.Context, lineID string) error {
	now := r.clock.Now()
	r.tableMu.Lock()
	l := r.byID[lineID]
	if l == nil {
		r.tableMu.Unlock()
		return nil
	}
	delete(r.byID, lineID)
	l.mu.Lock()
	if l.aor != "" && r.byAOR[l.aor] == l {
		delete(r.byAOR, l.aor)
	}
	l.cfg = nil
	l.aor = ""
	r.dropLocked(lineID, l, now)
	l.mu.Unlock()
	r.tableMu.Unlock()
	return nil
}

// List implements pbx.Backend: every applied line config, sorted by ID.
func (r *Registrar) List(context.Context) ([]pbx.LineConfig, error) {
	r.tableMu.RLock()
	out := make([]pbx.LineConfig, 0, len(r.byID))
	for _, l := range r.byID {
		l.mu.Lock()
		if l.cfg != nil {
			out = append(out, *l.cfg)
		}
		l.mu.Unlock()
	}
	r.tableMu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Contacts returns the current bindings of a line (for the API and tests).
func (r *Registrar) Contacts(lineID string) []Binding {
	r.tableMu.RLock()
	l := r.byID[lineID]
	r.tableMu.RUnlock()
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Binding(nil), l.contacts...)
}

// OpenConnections returns the TCP and TLS connections open now.
func (r *Registrar) OpenConnections() int {
	n := r.tcpGate.open.Load()
	if r.tlsGate != nil {
		n += r.tlsGate.open.Load()
	}
	return int(n)
}

// ActiveContacts returns the number of registered contacts on all lines.
func (r *Registrar) ActiveContacts() int { return int(r.active.Load()) }

var _ pbx.Backend = (*Registrar)(nil)

// debugOnly lowers every record of sipgo to Debug: sipgo logs malformed
// packets and transport hiccups at Error, which a scanner on the Internet
// could turn into a log flood.
type debugOnly struct{ h slog.Handler }

func (d debugOnly) Enabled(ctx context.Context, _ slog.Level) bool {
	return d.h.Enabled(ctx, slog.LevelDebug)
}

func (d debugOnly) Handle(ctx context.Context, rec slog.Record) error {
	rec.Level = slog.LevelDebug
	return d.h.Handle(ctx, rec)
}

func (d debugOnly) WithAttrs(as []slog.Attr) slog.Handler { return debugOnly{d.h.WithAttrs(as)} }
func (d debugOnly) WithGroup(name string) slog.Handler    { return debugOnly{d.h.WithGroup(name)} }
