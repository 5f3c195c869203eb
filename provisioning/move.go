package provisioning

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/sync/errgroup"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/provdb"
	"github.com/pbxd/pbxd/pbx"
)

// Account moves (issue 19). A move of an account from node A to node B:
//
//  1. StartMove, in one transaction: the account's pbx_node becomes B and
//     every live line gets a new revision, recorded as never applied, so
//     the reconciler pushes each line to B as a new one (prepared in bulk). A keeps its copies: phones registered there keep working,
//     their provisioning files and the number routes still name A.
//     State "copying".
//  2. When every live line of the account (those added meanwhile
//     included) has its latest revision applied, that is on B, the move is
//     "removing": phone files and number routes now name B (the
//     reconciler moves each route: set on B, then cleared on A).
//  3. Once no route of the account is left on A, the lines are removed
//     from A in line id order, recording the last id removed, so a pbxd
//     restarted meanwhile resumes where it was. Then the move is "done".
//
// Every step is read from and recorded in the database, and each is
// idempotent, so any pbxd instance may run it, twice if need be (two
// instances may remove one batch both; the cursor only moves forward). A line is
// never on neither node: it leaves A only after its latest revision is on
// B. A full resync removes a line held on a node other than its account's
// unless a move of the account from that node is not done, so no copy
// outlives a move (a slow apply that lands on A late included).

// MoveState is a move's state: copying → removing → done.
type MoveState string

// Move states.
const (
	MoveCopying  MoveState = "copying"
	MoveRemoving MoveState = "removing"
	MoveDone     MoveState = "done"
)

// MoveStates lists the states, for metrics and docs.
var MoveStates = []MoveState{MoveCopying, MoveRemoving, MoveDone}

// Move is an account's move between PBX nodes as the API shows it.
type Move struct {
	ID        string    `json:"id"`
	AccountID string    `json:"account_id"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	State     MoveState `json:"state"`
	// LinesTotal is the account's live lines; LinesDone those applied on
	// To (while copying; afterwards all); LinesRemoved those removed from
	// From so far.
	LinesTotal   int        `json:"lines_total"`
	LinesDone    int        `json:"lines_done"`
	LinesRemoved int        `json:"lines_removed"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
	FinishedAt   *time.Time `json:"finished_at"`
}

// moveMetrics count moves; they exist from start with every label value.
type moveMetrics struct {
	entered *prometheus.CounterVec // moves entering a state
	active  prometheus.Gauge
	lines   *prometheus.GaugeVec // over the moves not done: total, done, removed
}

var moveLineKinds = []string{"total", "done", "removed"}

func newMoveMetrics(reg prometheus.Registerer) *moveMetrics {
	f := promauto.With(reg)
	m := &moveMetrics{
		entered: f.NewCounterVec(prometheus.CounterOpts{Name: "pbxd_account_moves_total",
			Help: "Account moves between PBX nodes entering a state (copying: started, removing: every line on the new node, done)."}, []string{"state"}),
		active: f.NewGauge(prometheus.GaugeOpts{Name: "pbxd_account_moves_active", Help: "Account moves not done yet."}),
		lines: f.NewGaugeVec(prometheus.GaugeOpts{Name: "pbxd_account_move_lines",
			Help: "Lines of the moves not done yet: total, done (applied on the new node), removed (from the old node)."}, []string{"kind"}),
	}
	for _, st := range MoveStates {
		m.entered.WithLabelValues(string(st))
	}
	for _, k := range moveLineKinds {
		m.lines.WithLabelValues(k)
	}
	return m
}

// moveFrom is the API's view of a move row.
func moveFrom(r provdb.AccountMove) Move {
	return Move{ID: r.ID, AccountID: r.AccountID, From: r.FromNode, To: r.ToNode, State: MoveState(r.State),
		LinesTotal: int(r.LinesTotal), LinesDone: int(r.LinesDone), LinesRemoved: int(r.LinesRemoved),
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, FinishedAt: r.FinishedAt}
}

// StartMove starts moving an account's lines to node. Refused, nothing
// changed: no nodes configured, node empty or unknown (Invalid, "node");
// the account already on node (Invalid); a move of the account not done,
// the account closed, or node without room for the account's lines under
// its capacity (Conflict, "node"). A suspended account moves: its lines
// are pushed suspended.
func (s *Service) StartMove(ctx context.Context, actor, accountID, node string) (Move, error) {
	node = strings.TrimSpace(node)
	switch {
	case len(s.nodeList()) == 0:
		return Move{}, fault.New(fault.Invalid, "node", "no PBX nodes are configured: accounts move only between Asterisk nodes")
	case node == "":
		return Move{}, fault.New(fault.Invalid, "node", "node is required (one of %s)", s.nodeNames())
	}
	target, ok := s.node(node)
	if !ok {
		return Move{}, fault.New(fault.Invalid, "node", "%q is not a configured PBX node (%s)", node, s.nodeNames())
	}
	var m Move
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		acct, err := s.lockAccount(ctx, tx, accountID)
		if err != nil {
			return err
		}
		from := s.nodeName(acct.PBXNode)
		switch {
		case AccountStatus(acct.Status) == AccountClosed:
			return fault.New(fault.Conflict, "node", "the account is closed: it has no lines to move")
		case from == node:
			return fault.New(fault.Invalid, "node", "the account is already on node %s", node)
		}
		q := provdb.New(tx)
		busy, err := q.ActiveMoveTarget(ctx, accountID)
		if err == nil {
			return fault.New(fault.Conflict, "node", "a move of this account to %s is not done yet", busy)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("read moves: %w", err)
		}
		if target.Capacity > 0 {
			if err := s.checkRoom(ctx, q, target, accountID); err != nil {
				return err
			}
		}
		now := s.clock.Now()
		if err := q.SetAccountNode(ctx, provdb.SetAccountNodeParams{ID: accountID, PbxNode: node}); err != nil {
			return fmt.Errorf("move account: %w", err)
		}
		// applied_revision 0: the new node never held them, so the
		// reconciler prepares them all before any endpoint (Asterisk's
		// AOR bookkeeping, see prepareAhead) instead of line by line.
		moved, err := q.MoveLines(ctx, provdb.MoveLinesParams{AccountID: accountID, ChangedAt: now})
		if err != nil {
			return fmt.Errorf("move lines: %w", err)
		}
		m = Move{ID: uuid.NewString(), AccountID: accountID, From: from, To: node, State: MoveCopying,
			LinesTotal: int(moved), CreatedAt: now, UpdatedAt: now}
		if err := q.InsertMove(ctx, provdb.InsertMoveParams{ID: m.ID, AccountID: accountID, FromNode: from, ToNode: node,
			State: string(m.State), LinesTotal: int32(m.LinesTotal), CreatedAt: now}); err != nil {
			return fmt.Errorf("record move: %w", err)
		}
		if err := audit(ctx, tx, now, actor, accountID, "account.move", m.ID, map[string]any{"from": from, "to": node, "lines": m.LinesTotal}); err != nil {
			return err
		}
		return notifyLines(ctx, tx)
	})
	if err != nil {
		return Move{}, err
	}
	s.moves.entered.WithLabelValues(string(MoveCopying)).Inc()
	return m, nil
}

// checkRoom refuses a move to a node whose capacity the account's lines
// would exceed.
func (s *Service) checkRoom(ctx context.Context, q *provdb.Queries, target Node, accountID string) error {
	room, err := q.NodeRoom(ctx, provdb.NodeRoomParams{Node: target.Name, AccountID: accountID, DefaultNode: s.nodeName("")})
	if err != nil {
		return fmt.Errorf("count lines on %s: %w", target.Name, err)
	}
	onNode, mine := int(room.OnNode), int(room.Mine)
	if onNode+mine > target.Capacity {
		return fault.New(fault.Conflict, "node", "node %s has room for %d more lines (capacity %d); the account has %d",
			target.Name, max(0, target.Capacity-onNode), target.Capacity, mine)
	}
	return nil
}

// CurrentMove returns the account's move not done yet, or else its last
// one; nil when it never moved. The counts of a copying move are read
// live.
func (s *Service) CurrentMove(ctx context.Context, accountID string) (*Move, error) {
	if _, err := s.Account(ctx, accountID); err != nil {
		return nil, err
	}
	row, err := s.q.CurrentMove(ctx, accountID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read move: %w", err)
	}
	m := moveFrom(row)
	if m.State == MoveCopying {
		if m.LinesTotal, m.LinesDone, err = s.copyProgress(ctx, accountID); err != nil {
			return nil, err
		}
	}
	return &m, nil
}

// GetMove returns one move of the account.
func (s *Service) GetMove(ctx context.Context, accountID, moveID string) (Move, error) {
	if uuid.Validate(moveID) != nil || uuid.Validate(accountID) != nil {
		return Move{}, fault.New(fault.NotFound, "", "move not found")
	}
	row, err := s.q.GetMove(ctx, provdb.GetMoveParams{ID: moveID, AccountID: accountID})
	if errors.Is(err, store.ErrNotFound) {
		return Move{}, fault.New(fault.NotFound, "", "move not found")
	}
	if err != nil {
		return Move{}, fmt.Errorf("read move: %w", err)
	}
	m := moveFrom(row)
	if m.State == MoveCopying {
		if m.LinesTotal, m.LinesDone, err = s.copyProgress(ctx, accountID); err != nil {
			return m, err
		}
	}
	return m, nil
}

// copyProgress counts the account's live lines and those whose latest
// revision is applied: since the move gave every line a revision with the
// new node, an applied latest revision is a line on the new node.
func (s *Service) copyProgress(ctx context.Context, accountID string) (total, done int, err error) {
	p, err := s.q.CopyProgress(ctx, accountID)
	if err != nil {
		return 0, 0, fmt.Errorf("count moved lines: %w", err)
	}
	return int(p.Total), int(p.Done), nil
}

// PhoneRegistrar is the registrar host written into the phone files of an
// account's devices: that of the node its phones use now (the old node
// while a move is copying), "" for the configured phones.registrar.
func (s *Service) PhoneRegistrar(ctx context.Context, accountID string) (string, error) {
	if len(s.nodeList()) == 0 {
		return "", nil
	}
	node, err := s.q.PhoneNode(ctx, accountID)
	if err != nil {
		return "", fmt.Errorf("read account node: %w", err)
	}
	n, _ := s.node(s.nodeName(node))
	return n.Registrar, nil
}

// moveBatch is how many lines one step removes from the old node.
const moveBatch = 500

// runMoves advances the moves not done until ctx ends, every
// MoveInterval. Only a backend that removes lines from one node (several
// Asterisk nodes) has moves to run.
func (r *Reconciler) runMoves(ctx context.Context) error {
	if _, ok := r.backend.(pbx.NodeRemover); !ok {
		return nil
	}
	t := time.NewTicker(r.o.MoveInterval)
	defer t.Stop()
	b := dbBackoff()
	for {
		delay := time.Duration(0)
		if err := r.StepMoves(ctx); err != nil && ctx.Err() == nil {
			delay = b.next()
			r.log.Warn("account moves", "retry_in", delay, "err", err)
		} else {
			b.reset()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if delay > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(delay):
			}
		}
	}
}

// StepMoves advances every move not done by one step and refreshes the
// move gauges. Exported for tests.
func (r *Reconciler) StepMoves(ctx context.Context) error {
	rows, err := r.svc.q.ActiveMoves(ctx)
	if err != nil {
		return fmt.Errorf("read moves: %w", err)
	}
	type active struct {
		Move
		upto string
	}
	moves := make([]active, len(rows))
	for i, row := range rows {
		moves[i].Move = moveFrom(row)
		if row.RemovedUpto != nil {
			moves[i].upto = *row.RemovedUpto
		}
	}
	var errs []error
	var total, done, removed int
	for i := range moves {
		m := &moves[i]
		var err error
		switch m.State {
		case MoveCopying:
			err = r.stepCopying(ctx, &m.Move)
		case MoveRemoving:
			err = r.stepRemoving(ctx, &m.Move, m.upto)
		case MoveDone: // not read
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("move %s of account %s: %w", m.ID, m.AccountID, err))
		}
		if m.State != MoveDone {
			total, done, removed = total+m.LinesTotal, done+m.LinesDone, removed+m.LinesRemoved
		}
	}
	mm := r.svc.moves
	n := 0
	for _, m := range moves {
		if m.State != MoveDone {
			n++
		}
	}
	mm.active.Set(float64(n))
	mm.lines.WithLabelValues("total").Set(float64(total))
	mm.lines.WithLabelValues("done").Set(float64(done))
	mm.lines.WithLabelValues("removed").Set(float64(removed))
	return errors.Join(errs...)
}

// stepCopying records the copy's progress and, once every live line is on
// the new node, lets the move remove them from the old one.
func (r *Reconciler) stepCopying(ctx context.Context, m *Move) error {
	total, done, err := r.svc.copyProgress(ctx, m.AccountID)
	if err != nil {
		return err
	}
	m.LinesTotal, m.LinesDone = total, done
	now := r.svc.clock.Now()
	next := MoveCopying
	if done == total {
		next = MoveRemoving
	}
	n, err := r.svc.q.RecordMoveProgress(ctx, provdb.RecordMoveProgressParams{ID: m.ID, LinesTotal: int32(total), LinesDone: int32(done),
		State: string(next), UpdatedAt: now})
	if err != nil {
		return fmt.Errorf("record move progress: %w", err)
	}
	if next == MoveRemoving && n == 1 {
		m.State = MoveRemoving
		r.svc.moves.entered.WithLabelValues(string(MoveRemoving)).Inc()
		r.log.Info("account move: every line is on the new node; removing them from the old one",
			"account", m.AccountID, "from", m.From, "to", m.To, "lines", total)
		// The routes follow on the reconciler's next pass.
		if err := notifyLines(ctx, r.svc.db); err != nil {
			return fmt.Errorf("wake reconciler: %w", err)
		}
		r.Wake()
	}
	return nil
}

// stepRemoving removes one batch of the account's lines from the old node,
// once no number route of the account is left there, and ends the move
// when none is left.
func (r *Reconciler) stepRemoving(ctx context.Context, m *Move, upto string) error {
	routes, err := r.svc.q.RoutesOnNode(ctx, provdb.RoutesOnNodeParams{AccountID: m.AccountID, Node: m.From, DefaultNode: r.svc.nodeName("")})
	if err != nil {
		return fmt.Errorf("count routes on the old node: %w", err)
	}
	if routes > 0 {
		r.Wake()
		return nil
	}
	if upto == "" {
		upto = uuid.Nil.String()
	}
	ids, err := r.svc.q.LinesToRemove(ctx, provdb.LinesToRemoveParams{AccountID: m.AccountID, Upto: upto, Since: &m.CreatedAt, N: moveBatch})
	if err != nil {
		return fmt.Errorf("read lines to remove: %w", err)
	}
	now := r.svc.clock.Now()
	if len(ids) == 0 {
		ended, err := r.svc.q.EndMove(ctx, provdb.EndMoveParams{ID: m.ID, FinishedAt: now})
		if err != nil {
			return fmt.Errorf("end move: %w", err)
		}
		if ended == 1 {
			m.State = MoveDone
			r.svc.moves.entered.WithLabelValues(string(MoveDone)).Inc()
			r.log.Info("account move done", "account", m.AccountID, "from", m.From, "to", m.To,
				"took", now.Sub(m.CreatedAt).Round(time.Millisecond))
		}
		return nil
	}
	remover := r.backend.(pbx.NodeRemover)
	var g errgroup.Group
	g.SetLimit(r.o.Concurrency)
	var failed atomic.Int64
	var firstErr atomic.Value
	for _, id := range ids {
		g.Go(func() error {
			if err := remover.RemoveFrom(ctx, m.From, id); err != nil {
				if failed.Add(1) == 1 {
					firstErr.Store(err)
				}
			}
			return nil
		})
	}
	_ = g.Wait()
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("remove %d of %d lines from %s: %w", f, len(ids), m.From, firstErr.Load().(error))
	}
	// Only forward: another instance may have removed the same batch.
	if err := r.svc.q.RecordMoveRemoval(ctx, provdb.RecordMoveRemovalParams{ID: m.ID, RemovedUpto: ids[len(ids)-1],
		Removed: int32(len(ids)), UpdatedAt: now}); err != nil {
		return fmt.Errorf("record removal: %w", err)
	}
	m.LinesRemoved += len(ids)
	return nil
}

// indexHeld indexes what a resync's List reported by line id. With several
// nodes, only a copy on the line's own node counts as held: a copy on
// another node does not make the line present (a line only there is
// missing).
func (r *Reconciler) indexHeld(held []pbx.LineConfig, desired []pendingLine) map[string]pbx.LineConfig {
	heldBy := make(map[string]pbx.LineConfig, len(held))
	_, multi := r.backend.(pbx.NodeRemover)
	if !multi || len(r.svc.nodeList()) == 0 {
		for _, h := range held {
			heldBy[h.ID] = h
		}
		return heldBy
	}
	node := make(map[string]string, len(desired))
	for _, d := range desired {
		node[d.cfg.ID] = r.svc.nodeName(d.cfg.Node)
	}
	for _, h := range held {
		if want, ok := node[h.ID]; ok && r.svc.nodeName(h.Node) != want {
			continue
		}
		heldBy[h.ID] = h
	}
	return heldBy
}

// movingLines maps the lines of accounts whose move is not done to the
// node the move comes from.
func (r *Reconciler) movingLines(ctx context.Context) (map[string]string, error) {
	rows, err := r.svc.q.MovingLines(ctx)
	if err != nil {
		return nil, fmt.Errorf("read moves: %w", err)
	}
	moving := make(map[string]string, len(rows))
	for _, row := range rows {
		moving[row.LineID] = row.FromNode
	}
	return moving, nil
}

// removeMisplaced removes, after a resync's repairs, the copies of live
// lines held on a node other than their account's, except on the node a
// move of the account not done yet comes from (the move removes those).
func (r *Reconciler) removeMisplaced(ctx context.Context, held []pbx.LineConfig, desired []pendingLine) error {
	remover, ok := r.backend.(pbx.NodeRemover)
	if !ok || len(r.svc.nodeList()) == 0 {
		return nil
	}
	node := make(map[string]string, len(desired))
	for _, d := range desired {
		if !d.deleted {
			node[d.cfg.ID] = r.svc.nodeName(d.cfg.Node)
		}
	}
	var misplaced []pbx.LineConfig
	for _, h := range held {
		if want, ok := node[h.ID]; ok && r.svc.nodeName(h.Node) != want {
			misplaced = append(misplaced, h)
		}
	}
	if len(misplaced) == 0 {
		return nil
	}
	// Read after the List and the desired lines: a move seen started by
	// the desired read is seen here too, unless it is done.
	moving, err := r.movingLines(ctx)
	if err != nil {
		return err
	}
	var g errgroup.Group
	g.SetLimit(r.o.Concurrency)
	for _, h := range misplaced {
		if from, ok := moving[h.ID]; ok && from == r.svc.nodeName(h.Node) {
			continue
		}
		r.drift.WithLabelValues("misplaced").Inc()
		g.Go(func() error {
			if err := remover.RemoveFrom(ctx, h.Node, h.ID); err != nil {
				r.errs.WithLabelValues("rejected").Inc()
				if ctx.Err() == nil {
					r.log.Warn("remove misplaced line", "line", h.ID, "node", h.Node, "err", err)
				}
			}
			return nil
		})
	}
	return g.Wait()
}
