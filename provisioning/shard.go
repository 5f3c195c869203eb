package provisioning

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/sync/errgroup"

	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/provdb"
	"github.com/pbxd/pbxd/pbx"
)

// Reconciler sharding (issue 19). With a backend made of several nodes
// (pbx.Splitter: Asterisk), each node is reconciled by its own Reconciler,
// which runs only while this instance holds the node's lease: a row of
// node_leases (migration 00038) that the owner renews every quarter of the
// lease time. Why a lease row and not a session advisory lock per node: a
// lease lapses at its expiry whatever happened to its holder (kill -9, a
// cut connection, a network loss that PostgreSQL only notices after TCP
// keep-alive, hours by default, or a failover to a replica, which holds
// no advisory locks but has the rows), so takeover is bounded by
// LeaseTTL alone; and the holder knows how long it may act without asking.
//
// Rules:
//   - Every instance heartbeats in pbxd_instances with each renewal; the
//     live ones (heartbeat not expired) share the nodes: an instance holds
//     at most ceil(nodes / live) of them. It releases the excess (a new
//     instance came) and takes free or lapsed leases up to its share (one
//     died). Each instance prefers nodes by rendezvous hashing of its id
//     and the node's name, so the split is spread, not first-come.
//   - An owner stops reconciling a node 3/4 of LeaseTTL after the start
//     of its last successful renewal, before the lease can lapse in the
//     database (whose expiry counts from a later instant), and cancels
//     what it has in flight.
//   - Taking a lease bumps its epoch, and every write of a node's
//     reconciler checks pbxd_node_fence(node, epoch) in its own
//     statement: once the lease has lapsed or been taken, the old owner
//     commits nothing. (What it sent to Asterisk before it stopped is
//     repaired by the new owner's full resync on taking the node.)
//   - Times are the database's clock_timestamp(): the one clock the
//     instances share (the daemon's clock may be a test clock).
//
// Takeover of a dead instance's nodes: within LeaseTTL plus one renewal
// period (1.25 × LeaseTTL), then the node's full resync.

// ShardOptions tune the sharding of a split backend's nodes.
type ShardOptions struct {
	// Instance names this process in pbxd_instances and node_leases; it
	// must differ between processes (default: host, pid and a random
	// suffix, new at each start).
	Instance string
	// LeaseTTL is how long a node's lease lasts unrenewed (default 10 s).
	LeaseTTL time.Duration
}

// nodeScope limits a reconciler to the lines of one node.
type nodeScope struct {
	name      string
	isDefault bool         // the node of accounts naming none
	epoch     atomic.Int64 // of the lease held; 0: none, every write fails
}

// shardSet runs the reconcilers of the nodes this instance holds.
type shardSet struct {
	r     *Reconciler // the parent, for the pool and the log
	me    string
	ttl   time.Duration
	nodes []*shard // in this instance's order of preference

	mu sync.Mutex // the shards' run state

	owned   *prometheus.GaugeVec
	changes *prometheus.CounterVec
	alive   prometheus.Gauge
}

// shard is one node and its reconciler.
type shard struct {
	name    string
	backend pbx.Backend
	r       *Reconciler
	// Run state, under shardSet.mu.
	cancel context.CancelFunc
	done   chan struct{}
	timer  *time.Timer
}

func (sh *shard) running() bool { return sh.cancel != nil }

// NewShardedReconciler builds a reconciler for a backend made of several
// nodes: it splits the backend and runs one reconciler per node, while
// this instance holds that node's lease. Metrics are those of a
// reconciler, per node (label node), plus pbxd_reconcile_node_owned.
func (s *Service) NewShardedReconciler(backend pbx.Splitter, o ReconcilerOptions, so ShardOptions) *Reconciler {
	if so.LeaseTTL <= 0 {
		so.LeaseTTL = 10 * time.Second
	}
	if so.Instance == "" {
		so.Instance = instanceID()
	}
	if o.MoveInterval <= 0 {
		o.MoveInterval = time.Second
	}
	parent := &Reconciler{svc: s, o: o, log: o.Logger, wake: make(chan struct{}, 1), retry: map[string]retryState{}}
	if b, ok := backend.(pbx.Backend); ok {
		parent.backend = b
	}
	f := promauto.With(o.Registry)
	set := &shardSet{r: parent, me: so.Instance, ttl: so.LeaseTTL,
		owned: f.NewGaugeVec(prometheus.GaugeOpts{Name: "pbxd_reconcile_node_owned",
			Help: "Whether this instance holds the node's lease and reconciles it (1) or not (0)."}, []string{"node"}),
		changes: f.NewCounterVec(prometheus.CounterOpts{Name: "pbxd_reconcile_node_lease_changes_total",
			Help: "Node leases acquired, released (to share the nodes out, or at shutdown) and lost (not renewed in time, or taken), by node."},
			[]string{"node", "change"}),
		alive: f.NewGauge(prometheus.GaugeOpts{Name: "pbxd_reconcile_instances_alive",
			Help: "pbxd instances with a live heartbeat, this one included, among which the nodes are shared."}),
	}
	for _, n := range backend.Split() {
		co := o
		co.Registry = prometheus.WrapRegistererWith(prometheus.Labels{"node": n.Name}, o.Registry)
		co.Logger = o.Logger.With("node", n.Name)
		co.Local = false
		child := s.NewReconciler(n.Backend, co)
		child.node = &nodeScope{name: n.Name, isDefault: n.Default}
		set.nodes = append(set.nodes, &shard{name: n.Name, backend: n.Backend, r: child})
		set.owned.WithLabelValues(n.Name).Set(0)
		for _, c := range leaseChanges {
			set.changes.WithLabelValues(n.Name, string(c))
		}
	}
	slices.SortStableFunc(set.nodes, func(a, b *shard) int { // most preferred first
		ha, hb := rendezvous(set.me, a.name), rendezvous(set.me, b.name)
		switch {
		case ha > hb:
			return -1
		case ha < hb:
			return 1
		}
		return 0
	})
	parent.shards = set
	return parent
}

// instanceID is a process's default instance id: readable, and new at
// each start.
func instanceID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// rendezvous scores node for instance (highest random weight hashing).
func rendezvous(instance, node string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(instance + "\x00" + node))
	return h.Sum64()
}

// runShards runs the parent: NOTIFY wake-ups for every node's
// reconciler, the nodes' registration events, and the leases.
func (r *Reconciler) runShards(ctx context.Context) error {
	s := r.shards
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return r.listen(ctx) })
	for _, sh := range s.nodes {
		g.Go(func() error { return s.pump(ctx, sh) })
	}
	g.Go(func() error { return s.leases(ctx) })
	// Account moves span two nodes: every instance advances them through
	// the whole backend (each step is idempotent), owner or not.
	g.Go(func() error { return r.runMoves(ctx) })
	return g.Wait()
}

// pump stores a node's registration events while this instance holds the
// node, and drops them otherwise (the owner receives them too).
func (s *shardSet) pump(ctx context.Context, sh *shard) error {
	events := sh.backend.Events()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			if sh.r.node.epoch.Load() != 0 {
				sh.r.storeEvent(ctx, ev)
			}
		}
	}
}

// wake wakes every node's reconciler.
func (s *shardSet) wake() {
	for _, sh := range s.nodes {
		sh.r.Wake()
	}
}

// resync runs a full resync of every node this instance holds.
func (s *shardSet) resync(ctx context.Context) error {
	var errs []error
	for _, sh := range s.nodes {
		if sh.r.node.epoch.Load() != 0 {
			if err := sh.r.Resync(ctx); err != nil {
				errs = append(errs, fmt.Errorf("node %s: %w", sh.name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// applyPending runs ApplyPending on every node this instance holds and
// returns the earliest retry due.
func (s *shardSet) applyPending(ctx context.Context) (time.Time, error) {
	var next time.Time
	var errs []error
	for _, sh := range s.nodes {
		if sh.r.node.epoch.Load() == 0 {
			continue
		}
		n, err := sh.r.ApplyPending(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", sh.name, err))
		}
		next = earliest(next, n)
	}
	return next, errors.Join(errs...)
}

// Owned lists the nodes this instance reconciles now (none without a
// split backend).
func (r *Reconciler) Owned() []string {
	if r.shards == nil {
		return nil
	}
	var out []string
	for _, sh := range r.shards.nodes {
		if sh.r.node.epoch.Load() != 0 {
			out = append(out, sh.name)
		}
	}
	slices.Sort(out)
	return out
}

// leases heartbeats, renews, takes and releases node leases every quarter
// of the lease time until ctx ends, then stops every node's reconciler
// and releases its leases, so another instance takes them at once.
func (s *shardSet) leases(ctx context.Context) error {
	t := time.NewTicker(s.ttl / 4)
	defer t.Stop()
	defer s.shutdown(context.WithoutCancel(ctx))
	for {
		if err := s.round(ctx); err != nil && ctx.Err() == nil {
			s.r.log.Warn("node leases", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// round is one pass of leases. It may take up to half the lease time (a
// busy database): the deadline counts from its start, and a renewal that
// commits within 3/4 of the lease time still lapses after it.
func (s *shardSet) round(runCtx context.Context) error {
	ctx, cancel := context.WithTimeout(runCtx, s.ttl/2)
	defer cancel()
	start := time.Now()
	ttl := s.ttl.Milliseconds()
	q := s.r.svc.q
	n, err := q.Heartbeat(ctx, provdb.HeartbeatParams{ID: s.me, TtlMs: ttl})
	if err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	alive := int(n)
	s.alive.Set(float64(alive))
	rows, err := q.RenewLeases(ctx, provdb.RenewLeasesParams{Owner: s.me, TtlMs: ttl})
	if err != nil {
		return fmt.Errorf("renew node leases: %w", err)
	}
	renewed := make(map[string]int64, len(rows))
	for _, row := range rows {
		renewed[row.Node] = row.Epoch
	}
	deadline := start.Add(s.ttl * 3 / 4)
	held := 0
	for _, sh := range s.nodes {
		ep, ok := renewed[sh.name]
		switch {
		case ok && s.extend(sh, ep, deadline):
			held++
		case ok: // renewed but not running here (stopped by its deadline): release, take again with a new epoch
			if err := q.ReleaseLease(ctx, provdb.ReleaseLeaseParams{Node: sh.name, Owner: s.me, Epoch: ep}); err != nil {
				return fmt.Errorf("release node %s: %w", sh.name, err)
			}
		default:
			s.stop(sh, leaseLost)
		}
	}
	share := (len(s.nodes) + alive - 1) / alive
	for i := len(s.nodes) - 1; i >= 0 && held > share; i-- { // least preferred first
		sh := s.nodes[i]
		if ep := sh.r.node.epoch.Load(); ep != 0 && s.stop(sh, leaseReleased) {
			held--
			if err := q.ReleaseLease(ctx, provdb.ReleaseLeaseParams{Node: sh.name, Owner: s.me, Epoch: ep}); err != nil {
				return fmt.Errorf("release node %s: %w", sh.name, err)
			}
		}
	}
	for _, sh := range s.nodes {
		if held >= share {
			break
		}
		if sh.r.node.epoch.Load() != 0 {
			continue
		}
		epoch, err := q.AcquireLease(ctx, provdb.AcquireLeaseParams{Node: sh.name, Owner: s.me, TtlMs: ttl})
		if errors.Is(err, store.ErrNotFound) {
			continue // held by another instance
		}
		if err != nil {
			return fmt.Errorf("acquire node %s: %w", sh.name, err)
		}
		s.start(runCtx, sh, epoch, deadline)
		held++
	}
	return nil
}

// extend moves a running node's deadline after a renewal; false if the
// node is not running here under epoch.
func (s *shardSet) extend(sh *shard, epoch int64, deadline time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !sh.running() || sh.r.node.epoch.Load() != epoch {
		return false
	}
	sh.timer.Reset(time.Until(deadline))
	return true
}

// start runs a node's reconciler under the lease epoch until stopped or
// deadline, beginning with a full resync.
func (s *shardSet) start(ctx context.Context, sh *shard, epoch int64, deadline time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rs, ok := sh.backend.(pbx.Resyncer); ok {
		select { // a (re)connection signalled earlier: the resync at start covers it
		case <-rs.Resync():
		default:
		}
	}
	sh.r.node.epoch.Store(epoch)
	rctx, cancel := context.WithCancel(ctx)
	sh.cancel, sh.done = cancel, make(chan struct{})
	sh.timer = time.AfterFunc(time.Until(deadline), func() { s.stop(sh, leaseLost) })
	done := sh.done
	go func() {
		defer close(done)
		if err := sh.r.loop(rctx); err != nil {
			sh.r.log.Warn("node reconciler stopped", "err", err)
		}
	}()
	s.owned.WithLabelValues(sh.name).Set(1)
	s.changes.WithLabelValues(sh.name, string(leaseAcquired)).Inc()
	sh.r.log.Info("node lease acquired", "instance", s.me, "epoch", epoch)
}

// leaseChange is what happened to a node's lease here (the label of
// pbxd_reconcile_node_lease_changes_total).
type leaseChange string

// Lease changes.
const (
	leaseAcquired leaseChange = "acquired"
	leaseReleased leaseChange = "released" // to share the nodes out, or at shutdown
	leaseLost     leaseChange = "lost"     // not renewed in time, or taken
)

var leaseChanges = []leaseChange{leaseAcquired, leaseReleased, leaseLost}

// stop stops a node's reconciler (fencing its writes first) and waits for
// it; it reports whether it was running.
func (s *shardSet) stop(sh *shard, why leaseChange) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !sh.running() {
		return false
	}
	epoch := sh.r.node.epoch.Swap(0)
	sh.timer.Stop()
	sh.cancel()
	<-sh.done
	sh.cancel, sh.done, sh.timer = nil, nil, nil
	s.owned.WithLabelValues(sh.name).Set(0)
	s.changes.WithLabelValues(sh.name, string(why)).Inc()
	lvl := "node lease " + string(why)
	switch why {
	case leaseLost:
		sh.r.log.Warn(lvl+": stopped reconciling the node", "instance", s.me, "epoch", epoch)
	case leaseAcquired, leaseReleased:
		sh.r.log.Info(lvl, "instance", s.me, "epoch", epoch)
	}
	return true
}

// shutdown stops every node's reconciler, then releases the leases and
// the heartbeat, so other instances take the nodes at their next round.
func (s *shardSet) shutdown(ctx context.Context) {
	for _, sh := range s.nodes {
		s.stop(sh, leaseReleased)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.r.svc.q.ReleaseLeasesOf(ctx, s.me); err != nil {
		s.r.log.Warn("release node leases", "err", err)
	}
	if err := s.r.svc.q.DeleteInstance(ctx, s.me); err != nil {
		s.r.log.Warn("remove heartbeat", "err", err)
	}
}

// NodeLease is who reconciles an Asterisk node: its lease's holder.
type NodeLease struct {
	Node      string    `json:"node"`
	Owner     string    `json:"owner"` // an instance id
	Epoch     int64     `json:"epoch"`
	ExpiresAt time.Time `json:"expires_at"`
	// Live is false once the lease has lapsed or was released: the node
	// is reconciled by nobody until an instance takes it.
	Live bool `json:"live"`
}

// Instance is a pbxd instance's heartbeat.
type Instance struct {
	ID        string    `json:"id"`
	ExpiresAt time.Time `json:"expires_at"`
	Live      bool      `json:"live"`
}

// Cluster lists the node leases and the instances' heartbeats (empty
// with the built-in registrar).
func (s *Service) Cluster(ctx context.Context) (nodes []NodeLease, instances []Instance, err error) {
	leases, err := s.q.NodeLeases(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("read node leases: %w", err)
	}
	for _, l := range leases {
		nodes = append(nodes, NodeLease(l))
	}
	live, err := s.q.Instances(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("read instances: %w", err)
	}
	for _, in := range live {
		instances = append(instances, Instance(in))
	}
	return nodes, instances, nil
}

// nodeScope is the node a data-access query is scoped to ("" without a
// node: every row) and whether it is the default node, which also holds
// the rows with no node.
func (r *Reconciler) nodeScope() (string, bool) {
	if r.node == nil {
		return "", false
	}
	return r.node.name, r.node.isDefault
}

// fenceArgs are the node and lease epoch a data-access write is fenced by
// ("" without a node: unfenced).
func (r *Reconciler) fenceArgs() (string, int64) {
	if r.node == nil {
		return "", 0
	}
	return r.node.name, r.node.epoch.Load()
}

// leavingLines are, for a node's reconciler, the lines of accounts whose
// move away from its node is not done; nil without a node.
func (r *Reconciler) leavingLines(ctx context.Context) (map[string]bool, error) {
	if r.node == nil {
		return nil, nil
	}
	moving, err := r.movingLines(ctx)
	if err != nil {
		return nil, err
	}
	leaving := map[string]bool{}
	for id, from := range moving {
		if r.svc.nodeName(from) == r.node.name {
			leaving[id] = true
		}
	}
	return leaving, nil
}
