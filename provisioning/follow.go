package provisioning

import (
	"context"
	"fmt"
	"time"
)

// With a backend inside the process (the built-in registrar), each pbxd
// instance on the database holds its own copy of every line, but
// lines.applied_revision is one column: the first instance to apply a
// change marks it applied for all. So each instance also applies, on every
// wake-up, the lines changed recently (changed_at) that it has not applied
// itself at their current revision. The periodic full resync repairs
// anything this misses (a transaction that committed more than
// followSlack after its changed_at).

// followSlack is how far back each pass looks before the latest change
// seen: transactions commit out of changed_at order, and instances'
// clocks differ.
const followSlack = time.Minute

// followBatch bounds the lines read per query.
const followBatch = 1000

// follower is what this instance applied of the recent changes.
type follower struct {
	mark time.Time               // latest changed_at seen; the loop goroutine's
	seen map[string]followedLine // line → applied here, changed within followSlack of mark; under Reconciler.mu
}

type followedLine struct {
	revision  int64
	changedAt time.Time
}

// noteApplied records, with Options.Local, the lines of todo applied here
// (not waiting for a retry), so that applyChanged does not apply them again.
func (r *Reconciler) noteApplied(todo []pendingLine) {
	if !r.o.Local {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, pl := range todo {
		if _, failed := r.retry[pl.cfg.ID]; !failed {
			r.followed.seen[pl.cfg.ID] = followedLine{pl.cfg.Revision, pl.changedAt}
		}
	}
}

// applyChanged applies the lines changed since mark - followSlack that
// this instance has not applied at their revision.
func (r *Reconciler) applyChanged(ctx context.Context) error {
	f := &r.followed
	at, after := f.mark.Add(-followSlack), "00000000-0000-0000-0000-000000000000"
	for {
		rows, err := r.pool.Query(ctx, `SELECT `+desiredCols+` FROM lines l
			JOIN accounts a ON a.id = l.account_id JOIN packages p ON p.code = l.package_code
			WHERE (l.changed_at, l.id) > ($1, $2::uuid) ORDER BY l.changed_at, l.id LIMIT `+fmt.Sprint(followBatch), at, after)
		if err != nil {
			return fmt.Errorf("read changed lines: %w", err)
		}
		batch, err := r.scanDesired(rows)
		if err != nil {
			return err
		}
		var todo []pendingLine
		for _, pl := range batch {
			if pl.changedAt.After(f.mark) {
				f.mark = pl.changedAt
			}
			r.mu.Lock()
			s, ok := f.seen[pl.cfg.ID]
			r.mu.Unlock()
			if ok && s.revision == pl.cfg.Revision {
				continue
			}
			todo = append(todo, pl)
		}
		if len(todo) > 0 {
			r.applyAll(ctx, todo)
			r.noteApplied(todo)
		}
		if len(batch) < followBatch {
			break
		}
		last := batch[len(batch)-1]
		at, after = last.changedAt, last.cfg.ID
	}
	r.mu.Lock()
	for id, s := range f.seen {
		if s.changedAt.Before(f.mark.Add(-followSlack)) {
			delete(f.seen, id)
		}
	}
	r.mu.Unlock()
	return ctx.Err()
}
