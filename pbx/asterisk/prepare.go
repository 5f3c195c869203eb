package asterisk

import (
	"context"
	"errors"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pbxd/pbxd/pbx"
)

// Prepare creates the auth and aor objects of lines about to be applied
// for the first time, before any of their endpoints. Asterisk (res_pjsip
// pjsip_options) reads every endpoint of the node each time an AOR is
// created (later, on its sorcery serializer: it finds the endpoints that
// exist when its turn comes), so pushing a big batch line by line costs it
// time in the square of the batch (10,000 lines: 8 minutes, with thousands
// of tasks queued on its sorcery serializers); with every AOR first, each
// finds the endpoints the node had before, and creating an endpoint only
// looks up its own AORs (10,000 lines: 48 s, nothing queued). The
// reconciler gives it every pending new line at once, not one batch. The
// AOR writes are paced on Asterisk's AOR queue (aorQueue), and Prepare
// returns once Asterisk has run every one of them, so that no AOR's task
// runs after the endpoints that follow. The lines' Apply follows and
// creates the endpoints: their auth and aor, already right, are neither
// written nor read again (notePrepared), so each line costs one PUT
// there. Errors are left to that Apply; Prepare reports them only for
// information.
func (b *Backend) Prepare(ctx context.Context, lines []pbx.LineConfig) error {
	var g errgroup.Group
	g.SetLimit(maxWritesInFlight)
	errs := make([]error, len(lines)+len(b.order))
	used := map[*node]bool{}
	written := make([]*node, len(lines)) // the node that holds line i's new auth and aor
	for i, l := range lines {
		n, err := b.nodeFor(l)
		if err == nil {
			err = validName(l)
		}
		if err != nil {
			errs[i] = err
			continue
		}
		used[n] = true
		b.addWhere(l.ID, n.cfg.Name) // a removal before its Apply finds it
		g.Go(func() error {
			n.forgetListed(l.ID)
			defer n.forgetListed(l.ID)
			if err := n.push(ctx, "auth", b.objectID(l.ID), desiredAuth(l), nil); err != nil {
				errs[i] = err
				return nil
			}
			name := endpointName(l)
			unlock := n.names.lock(name)
			defer unlock()
			if errs[i] = n.push(ctx, "aor", name, b.desiredAOR(l), nil); errs[i] == nil {
				written[i] = n
			}
			return nil
		})
	}
	_ = g.Wait()
	for i, n := range b.order {
		if !used[n] {
			continue
		}
		if err := n.aors.drain(ctx); err != nil {
			errs[len(lines)+i] = err
			continue
		}
		errs[len(lines)+i] = n.notePrepared(ctx, lines, written)
	}
	return errors.Join(errs...)
}

// notePrepared records, for the lines whose auth and aor Prepare created
// on n (written[i] == n), that the line's Apply needs only its endpoint:
// one listing of n's PJSIP endpoints, once Asterisk has run the AOR
// writes, shows that no endpoint holds the line's name yet (not a
// hand-made one either). That spares every new line three GETs.
func (n *node) notePrepared(ctx context.Context, lines []pbx.LineConfig, written []*node) error {
	eps, err := n.pjsipEndpoints(ctx)
	if err != nil {
		return err
	}
	taken := make(map[string]bool, len(eps))
	for _, e := range eps {
		taken[e.Resource] = true
	}
	now := time.Now()
	out := map[string]preparedLine{}
	for i, l := range lines {
		name := endpointName(l)
		if written[i] != n || taken[name] {
			continue
		}
		out[l.ID] = preparedLine{at: now, name: name,
			auth: tupleMapOf(desiredAuth(l)), aor: tupleMapOf(n.b.desiredAOR(l))}
	}
	n.setPrepared(out)
	return nil
}

// tupleMapOf is the attribute → value map of tuples as sent.
func tupleMapOf(ts []tuple) map[string]string {
	m := make(map[string]string, len(ts))
	for _, t := range ts {
		m[t.attr] = t.value
	}
	return m
}
