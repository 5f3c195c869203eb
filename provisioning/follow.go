package provisioning

import (
	"context"
	"fmt"
	"time"

	"github.com/pbxd/pbxd/internal/store/provdb"
)

// With a backend inside the process (the built-in registrar), each pbxd
// instance on the database holds its own copy of every line, but
// lines.applied_revision is one column: the first instance to apply a
// change marks it applied for all. So each instance also applies, on every
// wake-up, the lines changed recently (changed_at) that it has not applied
// itself at their current revision. The periodic full resync repairs
// anything this misses (a transaction that committed more than
// followSlack after its changed_at).

// followSlack is how far back a wide pass looks before the latest change
// seen: transactions commit out of changed_at order, and instances'
// clocks differ. A wide pass runs every followWideEvery; the passes
// between look back followNarrow only, so bulk provisioning (thousands
// of lines a minute) does not make every wake-up read the whole last
// minute again. Each pass first reads only ids and revisions, then the
// full rows (joins, decryption) of the lines not applied here yet.
const (
	followSlack     = time.Minute
	followNarrow    = 2 * time.Second
	followWideEvery = 10 * time.Second
)

// followBatch bounds the lines read per query.
const followBatch = 1000

// follower is what this instance applied of the recent changes.
type follower struct {
	mark time.Time               // latest changed_at seen; the loop goroutine's
	wide time.Time               // when the last wide pass ran (this process's clock)
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

// applyChanged applies the lines changed since mark - followSlack (a wide
// pass) or mark - followNarrow that this instance has not applied at
// their revision.
func (r *Reconciler) applyChanged(ctx context.Context) error {
	f := &r.followed
	back := followNarrow
	if time.Since(f.wide) >= followWideEvery {
		back, f.wide = followSlack, time.Now()
	}
	at, after := f.mark.Add(-back), "00000000-0000-0000-0000-000000000000"
	for {
		rows, err := r.svc.q.ChangedLines(ctx, provdb.ChangedLinesParams{ChangedAt: at, After: after, N: followBatch})
		if err != nil {
			return fmt.Errorf("read changed lines: %w", err)
		}
		var todo []string
		n := len(rows)
		for _, row := range rows {
			if row.ChangedAt.After(f.mark) {
				f.mark = row.ChangedAt
			}
			at, after = row.ChangedAt, row.ID
			r.mu.Lock()
			s, ok := f.seen[row.ID]
			r.mu.Unlock()
			if !ok || s.revision != row.Revision {
				todo = append(todo, row.ID)
			}
		}
		if len(todo) > 0 {
			if err := r.applyLines(ctx, todo); err != nil {
				return err
			}
		}
		if n < followBatch {
			break
		}
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

// applyLines reads the full rows of ids, applies them and notes them
// applied here.
func (r *Reconciler) applyLines(ctx context.Context, ids []string) error {
	rows, err := r.svc.q.DesiredLinesByID(ctx, ids)
	if err != nil {
		return fmt.Errorf("read changed lines: %w", err)
	}
	batch, err := desiredLines(r, rows)
	if err != nil {
		return err
	}
	r.applyAll(ctx, batch)
	r.noteApplied(batch)
	return nil
}
