package provisioning

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
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
		rows, err := r.pool.Query(ctx, `SELECT l.id, l.revision, l.changed_at FROM lines l
			WHERE (l.changed_at, l.id) > ($1, $2::uuid) ORDER BY l.changed_at, l.id LIMIT `+fmt.Sprint(followBatch), at, after)
		if err != nil {
			return fmt.Errorf("read changed lines: %w", err)
		}
		var id string
		var rev int64
		var changed time.Time
		var todo []string
		n := 0
		_, err = pgx.ForEachRow(rows, []any{&id, &rev, &changed}, func() error {
			n++
			if changed.After(f.mark) {
				f.mark = changed
			}
			at, after = changed, id
			r.mu.Lock()
			s, ok := f.seen[id]
			r.mu.Unlock()
			if !ok || s.revision != rev {
				todo = append(todo, id)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read changed lines: %w", err)
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
	rows, err := r.pool.Query(ctx, `SELECT `+desiredCols+` FROM lines l
		JOIN accounts a ON a.id = l.account_id JOIN packages p ON p.code = l.package_code
		WHERE l.id = ANY($1::uuid[])`, ids)
	if err != nil {
		return fmt.Errorf("read changed lines: %w", err)
	}
	batch, err := r.scanDesired(rows)
	if err != nil {
		return err
	}
	r.applyAll(ctx, batch)
	r.noteApplied(batch)
	return nil
}
