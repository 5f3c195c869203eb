package provisioning

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/pbxd/pbxd/internal/store/provdb"
	"github.com/pbxd/pbxd/pbx"
)

// Inbound routes of numbers. A backend that is a pbx.NumberRouter
// (Asterisk) routes every number assigned to an active line of an active
// account to that line; numbers unassigned, released, on a suspended or
// removed line, or of a suspended account are unrouted. numbers.routed_to
// and routed_node record what pbxd set, so a pass only writes what
// changed; a resync reads every route back and repairs it (an Asterisk
// restart forgets them all).

// routeRow is one number to route or unroute.
type routeRow struct {
	number     string
	node       string // desired node (the line's account's)
	target     string // desired target; "" unrouted
	routedNode string // what pbxd last set
	routedTo   string
}

// routeRows reads the numbers that are on a line or were routed.
func (r *Reconciler) routeRows(ctx context.Context, router pbx.NumberRouter) ([]routeRow, error) {
	// While an account's move is copying, its routes stay on the node it
	// comes from (move.go); they follow once every line is on the new one.
	node, isDefault := r.nodeScope()
	rows, err := r.svc.q.RouteRows(ctx, provdb.RouteRowsParams{Node: node, IsDefault: isDefault})
	if err != nil {
		return nil, fmt.Errorf("read number routes: %w", err)
	}
	var out []routeRow
	for _, row := range rows {
		rr := routeRow{number: row.E164, routedNode: row.RoutedNode, routedTo: row.RoutedTo, node: row.Node}
		// "" is the default node: one name for it, so a route is never
		// cleared on one alias after being set on the other.
		rr.node, rr.routedNode = r.svc.nodeName(rr.node), r.svc.nodeName(rr.routedNode)
		if row.Active {
			rr.target = router.RouteTarget(pbx.LineConfig{Node: rr.node, Domain: row.SipDomain, Username: row.SipUsername})
		}
		out = append(out, rr)
	}
	return out, nil
}

// errRoutes reports that some routes could not be written; they are
// retried.
var errRoutes = errors.New("number routes not applied")

// syncRoutes brings the backend's number routes to the database's. With
// verify (a resync), each route is read back from the PBX and rewritten if
// it differs; otherwise only the numbers whose recorded route differs
// from the desired one are written. It returns errRoutes (wrapped) when
// some writes failed, other errors when the database could not be read.
func (r *Reconciler) syncRoutes(ctx context.Context, verify bool) (int, error) {
	router, ok := r.backend.(pbx.NumberRouter)
	if !ok {
		return 0, nil
	}
	rows, err := r.routeRows(ctx, router)
	if err != nil {
		return 0, err
	}
	fenceNode, fenceEpoch := r.fenceArgs()
	var g errgroup.Group
	g.SetLimit(r.o.Concurrency)
	var failed, written atomic.Int64
	for _, rr := range rows {
		if !verify && rr.routedTo == rr.target && (rr.target == "" || rr.routedNode == rr.node) {
			continue
		}
		g.Go(func() error {
			n, err := r.route(ctx, router, rr, verify)
			written.Add(int64(n))
			if err != nil {
				failed.Add(1)
				reason := "rejected"
				if errors.Is(err, pbx.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
					reason = "unavailable"
				}
				r.errs.WithLabelValues(reason).Inc()
				if ctx.Err() == nil && reason == "rejected" {
					r.log.Warn("route number failed; will retry", "number", rr.number, "err", err)
				}
				return nil
			}
			if rr.routedNode == rr.node && rr.routedTo == rr.target {
				return nil
			}
			if err := r.svc.q.SetNumberRoute(ctx, provdb.SetNumberRouteParams{E164: rr.number, RoutedNode: rr.node, RoutedTo: rr.target, FenceNode: fenceNode, FenceEpoch: fenceEpoch}); err != nil {
				failed.Add(1)
				r.errs.WithLabelValues("database").Inc()
			}
			return nil
		})
	}
	_ = g.Wait()
	if f := failed.Load(); f > 0 {
		return int(written.Load()), fmt.Errorf("%w: %d failed", errRoutes, f)
	}
	return int(written.Load()), nil
}

// route writes one number's route and returns how many writes it took. A
// route no longer wanted is cleared. A route held on another node (the
// account moved) is set on the new node first, then cleared on the old
// one, so calls to the number always find a route. With verify the PBX's
// route is read first and written only if it differs (a number on a
// suspended line included).
func (r *Reconciler) route(ctx context.Context, router pbx.NumberRouter, rr routeRow, verify bool) (int, error) {
	n := 0
	moved := rr.routedTo != "" && rr.routedNode != rr.node
	if rr.routedTo != "" && rr.target == "" {
		if err := router.SetRoute(ctx, rr.routedNode, rr.number, ""); err != nil {
			return n, err
		}
		n++
		if !moved {
			return n, nil
		}
	}
	k, err := r.setRoute(ctx, router, rr, verify)
	n += k
	if err != nil || !moved || rr.target == "" {
		return n, err
	}
	if err := router.SetRoute(ctx, rr.routedNode, rr.number, ""); err != nil {
		return n, err
	}
	return n + 1, nil
}

// setRoute writes the desired route of a number on its node, after
// reading it back with verify.
func (r *Reconciler) setRoute(ctx context.Context, router pbx.NumberRouter, rr routeRow, verify bool) (int, error) {
	if verify {
		held, err := router.HeldRoute(ctx, rr.node, rr.number)
		if err != nil {
			return 0, err
		}
		if held == rr.target {
			return 0, nil
		}
		kind := "stale"
		if held == "" {
			kind = "missing"
		}
		r.drift.WithLabelValues(kind).Inc()
	} else if rr.target == "" {
		return 0, nil
	}
	if err := router.SetRoute(ctx, rr.node, rr.number, rr.target); err != nil {
		return 0, err
	}
	return 1, nil
}
