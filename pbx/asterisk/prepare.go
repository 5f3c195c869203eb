package asterisk

import (
	"context"
	"errors"

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
// creates the endpoints (their auth and aor, already right, are not
// written again). Errors are left to that Apply; Prepare reports the
// first only for information.
func (b *Backend) Prepare(ctx context.Context, lines []pbx.LineConfig) error {
	var g errgroup.Group
	g.SetLimit(maxWritesInFlight)
	errs := make([]error, len(lines)+len(b.order))
	used := map[*node]bool{}
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
			errs[i] = n.push(ctx, "aor", endpointName(l), b.desiredAOR(l), nil)
			return nil
		})
	}
	_ = g.Wait()
	for i, n := range b.order {
		if used[n] {
			errs[len(lines)+i] = n.aors.drain(ctx)
		}
	}
	return errors.Join(errs...)
}
