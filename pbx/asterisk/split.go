package asterisk

import (
	"context"
	"fmt"

	"github.com/pbxd/pbxd/pbx"
)

// The Asterisk backend can be split into one backend per node, so that
// several pbxd instances share the nodes out: each node's lines are
// reconciled by the instance that owns the node's lease (provisioning,
// shard.go). Every instance still connects to every node; only the owner
// writes.

var (
	_ pbx.Splitter      = (*Backend)(nil)
	_ pbx.Backend       = (*nodeBackend)(nil)
	_ pbx.Resyncer      = (*nodeBackend)(nil)
	_ pbx.ListedApplier = (*nodeBackend)(nil)
	_ pbx.Preparer      = (*nodeBackend)(nil)
	_ pbx.NumberRouter  = (*nodeBackend)(nil)
	_ pbx.NodeRemover   = (*nodeBackend)(nil)
)

// nodeBackend is one node of a split Backend.
type nodeBackend struct {
	b      *Backend
	n      *node
	events chan pbx.RegistrationEvent
	resync chan struct{}
}

// Split implements pbx.Splitter. Call it before Run; a second call
// returns the same node backends.
func (b *Backend) Split() []pbx.Node {
	out := make([]pbx.Node, 0, len(b.order))
	for _, n := range b.order {
		if n.view == nil {
			n.view = &nodeBackend{b: b, n: n, events: make(chan pbx.RegistrationEvent, 1024), resync: make(chan struct{}, 1)}
		}
		out = append(out, pbx.Node{Name: n.cfg.Name, Default: n.cfg.Name == b.cfg.DefaultNode, Backend: n.view})
	}
	return out
}

// emit sends a registration event to the node's backend once split, else
// to the whole backend's.
func (n *node) emit(ev pbx.RegistrationEvent) {
	if n.view == nil {
		n.b.emit(ev)
		return
	}
	n.b.emitMu.RLock()
	defer n.b.emitMu.RUnlock()
	if n.b.stopped {
		return
	}
	select {
	case n.view.events <- ev:
	case <-n.b.done:
	}
}

// signalResync asks for a full resync of the node (of the whole backend
// when not split).
func (n *node) signalResync() {
	ch := n.b.resync
	if n.view != nil {
		ch = n.view.resync
	}
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Name implements pbx.Backend.
func (v *nodeBackend) Name() string { return "asterisk" }

// Apply implements pbx.Backend (see Backend.Apply).
func (v *nodeBackend) Apply(ctx context.Context, line pbx.LineConfig) error {
	return v.b.apply(ctx, line, false, nil)
}

// ApplyListed implements pbx.ListedApplier (see Backend.ApplyListed).
func (v *nodeBackend) ApplyListed(ctx context.Context, line pbx.LineConfig, held *pbx.LineConfig) error {
	return v.b.apply(ctx, line, true, held)
}

// Prepare implements pbx.Preparer (see Backend.Prepare).
func (v *nodeBackend) Prepare(ctx context.Context, lines []pbx.LineConfig) error {
	return v.b.Prepare(ctx, lines)
}

// Remove implements pbx.Backend on this node only.
func (v *nodeBackend) Remove(ctx context.Context, lineID string) error {
	return v.b.RemoveFrom(ctx, v.n.cfg.Name, lineID)
}

// RemoveFrom implements pbx.NodeRemover for an account move, which
// removes a line from the node it leaves whichever node's reconciler
// advances it.
func (v *nodeBackend) RemoveFrom(ctx context.Context, node, lineID string) error {
	return v.b.RemoveFrom(ctx, node, lineID)
}

// List implements pbx.Backend: the lines pbxd owns on this node.
func (v *nodeBackend) List(ctx context.Context) ([]pbx.LineConfig, error) {
	lines, err := v.n.list(ctx)
	if err != nil {
		return nil, fmt.Errorf("asterisk: list %s: %w", v.n.cfg.Name, err)
	}
	for _, l := range lines {
		v.b.addWhere(l.ID, l.Node)
	}
	return lines, nil
}

// Events implements pbx.Backend: the node's registration events. The
// channel is never closed; read it until the backend stops.
func (v *nodeBackend) Events() <-chan pbx.RegistrationEvent { return v.events }

// Connected implements pbx.Backend: whether this node is connected.
func (v *nodeBackend) Connected() bool { return v.n.connected.Load() }

// Resync implements pbx.Resyncer: the node (re)connected or restarted.
func (v *nodeBackend) Resync() <-chan struct{} { return v.resync }

// RouteTarget implements pbx.NumberRouter.
func (v *nodeBackend) RouteTarget(line pbx.LineConfig) string { return v.b.RouteTarget(line) }

// SetRoute implements pbx.NumberRouter.
func (v *nodeBackend) SetRoute(ctx context.Context, node, number, target string) error {
	return v.b.SetRoute(ctx, node, number, target)
}

// HeldRoute implements pbx.NumberRouter.
func (v *nodeBackend) HeldRoute(ctx context.Context, node, number string) (string, error) {
	return v.b.HeldRoute(ctx, node, number)
}
