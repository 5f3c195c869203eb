// Package asterisk is the pbx.Backend that provisions lines into one or
// more Asterisk servers through ARI push configuration (res_pjsip auth, aor
// and endpoint objects, see sorcery.conf in configs/asterisk) and follows
// phone registrations through ARI events.
//
// It uses github.com/CyCoreSystems/ari/v5 (v5.3.1) for writes. Reads go
// through a small context-aware HTTP client instead: that version's
// Config().Data decodes an error body into the tuple list and so loses the
// status code (a 404 "absent" looks like a 500), and none of its calls take
// a context. ari calls are bounded by Config.RequestTimeout. The events
// websocket is read by pbxd's own reader (events.go): the library panics on
// event types it does not know.
//
// A line's endpoint and aor are named <username>@<domain>, so Asterisk
// matches phones to them; its auth is <prefix><line id>. See objects.go.
package asterisk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/pbxd/pbxd/pbx"
)

// Backend provisions lines into the configured Asterisk nodes, routing each
// line by LineConfig.Node. Create it with New and run it with Run.
type Backend struct {
	cfg    Config
	logger *slog.Logger
	nodes  map[string]*node
	order  []*node
	m      metrics

	events  chan pbx.RegistrationEvent
	done    chan struct{}
	emitMu  sync.RWMutex
	stopped bool
	resync  chan struct{}

	mu sync.Mutex
	// where holds, per line id, the nodes known to hold some of its
	// objects (learnt from Prepare, Apply and List), so Remove deletes
	// them wherever they are: during an account move a line is on two.
	where map[string]map[string]bool
	ran   bool
}

type metrics struct {
	connected *prometheus.GaugeVec
	outages   *prometheus.CounterVec
	resyncs   *prometheus.CounterVec
	requests  *prometheus.CounterVec
}

// The Asterisk backend has every optional capability of pbx.
var (
	_ pbx.Backend       = (*Backend)(nil)
	_ pbx.Resyncer      = (*Backend)(nil)
	_ pbx.ListedApplier = (*Backend)(nil)
	_ pbx.Preparer      = (*Backend)(nil)
	_ pbx.NodeRemover   = (*Backend)(nil)
)

// New builds the backend. cfg gets its defaults and is validated; logger
// and reg must not be nil (use prometheus.NewRegistry() in tests). Nothing
// connects until Run.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Backend, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger = logger.With("component", "pbx/asterisk")
	f := promauto.With(reg)
	b := &Backend{
		cfg:    cfg,
		logger: logger,
		nodes:  map[string]*node{},
		events: make(chan pbx.RegistrationEvent, 1024),
		done:   make(chan struct{}),
		resync: make(chan struct{}, 1),
		where:  map[string]map[string]bool{},
		m: metrics{
			connected: f.NewGaugeVec(prometheus.GaugeOpts{
				Name: "pbxd_pbx_backend_connected",
				Help: "Whether the PBX backend node is reachable with its events websocket up (1) or not (0).",
			}, []string{"node"}),
			outages: f.NewCounterVec(prometheus.CounterOpts{
				Name: "pbxd_pbx_asterisk_outages_total",
				Help: "Times a node became unreachable (or could not be reached at start), by node.",
			}, []string{"node"}),
			resyncs: f.NewCounterVec(prometheus.CounterOpts{
				Name: "pbxd_pbx_asterisk_resyncs_total",
				Help: "Full resyncs requested after a (re)connection, by node and reason (connect, restart).",
			}, []string{"node", "reason"}),
			requests: f.NewCounterVec(prometheus.CounterOpts{
				Name: "pbxd_pbx_asterisk_requests_total",
				Help: "ARI requests by node, operation and outcome (ok, absent, error, unavailable).",
			}, []string{"node", "op", "outcome"}),
		},
	}
	for _, nc := range cfg.Nodes {
		n := newNode(b, nc)
		b.nodes[nc.Name] = n
		b.order = append(b.order, n)
		b.m.connected.WithLabelValues(nc.Name).Set(0)
		b.m.outages.WithLabelValues(nc.Name)
		for _, reason := range []string{"connect", "restart"} {
			b.m.resyncs.WithLabelValues(nc.Name, reason)
		}
		for _, op := range []string{"info", "subscribe", "list_endpoints", "probe", "get_endpoint", "get_auth", "get_aor", "get_contact",
			"put_endpoint", "put_auth", "put_aor", "delete_endpoint", "delete_auth", "delete_aor",
			"get_var", "set_var", "unset_var"} {
			for _, outcome := range []string{"ok", "absent", "error", "unavailable"} {
				b.m.requests.WithLabelValues(nc.Name, op, outcome)
			}
		}
	}
	return b, nil
}

// Name implements pbx.Backend.
func (b *Backend) Name() string { return "asterisk" }

// Events implements pbx.Backend. The channel closes when Run returns.
func (b *Backend) Events() <-chan pbx.RegistrationEvent { return b.events }

// Resync receives a value whenever a node (re)connects or restarted, so
// the reconciler should List and repair everything: a restarted Asterisk
// with the memory wizard has forgotten every line. Signals coalesce.
func (b *Backend) Resync() <-chan struct{} { return b.resync }

// Connected implements pbx.Backend: true when every node is connected.
func (b *Backend) Connected() bool {
	for _, n := range b.order {
		if !n.connected.Load() {
			return false
		}
	}
	return true
}

// NodeConnected reports whether one node is connected.
func (b *Backend) NodeConnected(name string) bool {
	n, ok := b.nodes[name]
	return ok && n.connected.Load()
}

// Run connects to every node, keeps the connections up (capped exponential
// back-off, restart detection) and feeds Events until ctx ends. It returns
// nil after ctx is cancelled; Events is closed on return. Call it once.
func (b *Backend) Run(ctx context.Context) error {
	b.mu.Lock()
	if b.ran {
		b.mu.Unlock()
		return errors.New("asterisk: Run called twice")
	}
	b.ran = true
	b.mu.Unlock()

	var wg sync.WaitGroup
	for _, n := range b.order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.run(ctx)
		}()
	}
	wg.Wait()

	close(b.done)
	b.emitMu.Lock()
	b.stopped = true
	close(b.events)
	b.emitMu.Unlock()
	return nil
}

func (b *Backend) emit(ev pbx.RegistrationEvent) {
	b.emitMu.RLock()
	defer b.emitMu.RUnlock()
	if b.stopped {
		return
	}
	select {
	case b.events <- ev:
	case <-b.done:
	}
}

// objectID is the id of a line's auth object and its ownership marker.
func (b *Backend) objectID(lineID string) string { return b.cfg.ObjectPrefix + lineID }

func (b *Backend) nodeFor(line pbx.LineConfig) (*node, error) {
	name := line.Node
	if name == "" {
		name = b.cfg.DefaultNode
	}
	n, ok := b.nodes[name]
	if !ok {
		return nil, fmt.Errorf("asterisk: line %s: unknown node %q", line.ID, name)
	}
	return n, nil
}

// Apply implements pbx.Backend. It reads the line's objects and PUTs only
// the attributes that differ (creating absent objects), auth and aor before
// the endpoint that references them. Objects are never deleted to be
// updated; a changed username or domain renames the endpoint and aor, so
// the new ones are created and the old ones deleted. A line that moved to
// another node stays on the old one until RemoveFrom removes it there (an
// account move removes it only once every line is on the new node).
func (b *Backend) Apply(ctx context.Context, line pbx.LineConfig) error {
	return b.apply(ctx, line, false, nil)
}

// ApplyListed is Apply for the repairs of a full resync: held is what the
// List that resync just called reported for the line (nil: not listed).
// What that List read of the line's objects stands in for reading them
// again, as long as nothing has written them since, the node has not
// reconnected and the List is recent; otherwise it is Apply. An object
// that differs then gets every attribute pbxd owns, so a change made to it
// behind pbxd's back since the List is overwritten too.
func (b *Backend) ApplyListed(ctx context.Context, line pbx.LineConfig, held *pbx.LineConfig) error {
	return b.apply(ctx, line, true, held)
}

func (b *Backend) apply(ctx context.Context, line pbx.LineConfig, listed bool, held *pbx.LineConfig) error {
	if line.ID == "" {
		return errors.New("asterisk: line without id")
	}
	n, err := b.nodeFor(line)
	if err != nil {
		return err
	}
	if held != nil && held.Node != n.cfg.Name {
		listed = false // moving to another node: read the new one
	}
	if err := n.apply(ctx, line, listed, held != nil); err != nil {
		return fmt.Errorf("asterisk: apply line %s on %s: %w", line.ID, n.cfg.Name, err)
	}
	b.addWhere(line.ID, n.cfg.Name)
	return nil
}

// addWhere records that node holds (some of) the line's objects.
func (b *Backend) addWhere(lineID, node string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.where[lineID] == nil {
		b.where[lineID] = map[string]bool{}
	}
	b.where[lineID][node] = true
}

// RemoveFrom implements pbx.NodeRemover: it deletes the line's objects on
// node only ("" the default node), whichever node the line was applied
// to last. An unknown node is an error.
func (b *Backend) RemoveFrom(ctx context.Context, node, lineID string) error {
	if node == "" {
		node = b.cfg.DefaultNode
	}
	n, ok := b.nodes[node]
	if !ok {
		return fmt.Errorf("asterisk: remove line %s: unknown node %q", lineID, node)
	}
	if err := n.remove(ctx, lineID); err != nil {
		return fmt.Errorf("asterisk: remove line %s on %s: %w", lineID, node, err)
	}
	b.mu.Lock()
	if w := b.where[lineID]; w != nil {
		delete(w, node)
		if len(w) == 0 {
			delete(b.where, lineID)
		}
	}
	b.mu.Unlock()
	return nil
}

// Remove implements pbx.Backend. It deletes the endpoint, aor and auth
// objects (absent ones are fine) on every node the line is known to be on
// (two during an account move, its objects prepared on the new node
// included), or on every node when that is unknown, and reports the line
// unregistered.
func (b *Backend) Remove(ctx context.Context, lineID string) error {
	b.mu.Lock()
	var targets []*node
	for _, n := range b.order {
		if b.where[lineID][n.cfg.Name] {
			targets = append(targets, n)
		}
	}
	b.mu.Unlock()
	if len(targets) == 0 {
		targets = b.order
	}
	var errs []error
	for _, n := range targets {
		if err := n.remove(ctx, lineID); err != nil {
			errs = append(errs, fmt.Errorf("asterisk: remove line %s on %s: %w", lineID, n.cfg.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	b.mu.Lock()
	delete(b.where, lineID)
	b.mu.Unlock()
	return nil
}

// List implements pbx.Backend: the lines pbxd owns on every node, rebuilt
// from the objects Asterisk holds; settings LineConfig does not carry are
// reported in LineConfig.Drift. It fails, with
// pbx.ErrUnavailable, if any node cannot be read: a partial list would make
// the reconciler re-create lines that exist.
func (b *Backend) List(ctx context.Context) ([]pbx.LineConfig, error) {
	var out []pbx.LineConfig
	for _, n := range b.order {
		lines, err := n.list(ctx)
		if err != nil {
			return nil, fmt.Errorf("asterisk: list %s: %w", n.cfg.Name, err)
		}
		out = append(out, lines...)
	}
	for _, l := range out {
		b.addWhere(l.ID, l.Node)
	}
	slices.SortFunc(out, func(a, c pbx.LineConfig) int {
		if a.ID < c.ID {
			return -1
		} else if a.ID > c.ID {
			return 1
		}
		return 0
	})
	return out, nil
}

// backoff returns the capped exponential delay before attempt n (from 0),
// with up to 20% jitter.
func (b *Backend) backoff(attempt int) time.Duration {
	d := b.cfg.BackoffMin
	for i := 0; i < attempt && d < b.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, b.cfg.BackoffMax)
	jitter := time.Duration(time.Now().UnixNano() % int64(d/5+1))
	return d - jitter
}
