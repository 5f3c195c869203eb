package provisioning

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pipeTx is a transaction whose BEGIN rides on its first batch and whose
// COMMIT may ride on its last (queueCommit, finish): the change order
// paths spend two round trips less per transaction, and a lock taken by
// the last batch (the invoice counter) is held for that batch only, not
// for a further round trip through a busy client.
type pipeTx struct {
	pgx.Tx
	commitNext bool
}

// SendBatch sends b, with the transaction's COMMIT queued last when
// commitNextBatch asked for it.
func (t *pipeTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if t.commitNext {
		t.commitNext = false
		queueCommit(b)
	}
	return t.Tx.SendBatch(ctx, b)
}

// commitNextBatch makes the next batch sent in t (by a callee that writes
// last in t, in one batch: the payment intent) carry t's COMMIT. A callee
// that sends none leaves the COMMIT to inPipeTx.
func (t *pipeTx) commitNextBatch() { t.commitNext = true }

// inPipeTx sends first, which must have been started with
// first.BeginTx(opts) before anything was queued, on a connection of pool,
// then runs fn in the transaction first began. The transaction commits
// after fn unless fn's last batch did (finish, commitNextBatch); it rolls
// back when first or fn fail. first's callbacks run before fn.
func inPipeTx(ctx context.Context, pool *pgxpool.Pool, first *pgx.Batch, fn func(tx *pipeTx) error) (err error) {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer func() {
		// A transaction left open (an error, a panic) is rolled back; the
		// pool destroys a connection that is still not idle.
		if c.Conn().PgConn().TxStatus() != 'I' && !c.Conn().IsClosed() {
			_, _ = c.Exec(context.WithoutCancel(ctx), "rollback") // best effort: Release closes a connection left in a transaction
		}
		c.Release()
	}()
	br := c.SendBatch(ctx, first)
	if err := br.Close(); err != nil {
		return fmt.Errorf("begin and read: %w", err)
	}
	tx := &pipeTx{Tx: br.Tx()}
	if tx.Tx == nil {
		return fmt.Errorf("pipelined transaction: the first batch began none")
	}
	if err := fn(tx); err != nil {
		return err
	}
	if c.Conn().PgConn().TxStatus() == 'I' {
		return nil // committed by fn's last batch
	}
	return tx.Commit(ctx)
}

// queueCommit queues the transaction's COMMIT into b, at the position the
// caller chooses (statements after it run on their own, outside the
// transaction); finish sends b. It returns the queued COMMIT, whose Fn a
// caller may replace to learn whether it ran.
func queueCommit(b *pgx.Batch) *pgx.QueuedQuery {
	q := b.Queue("commit")
	q.Exec(func(tag pgconn.CommandTag) error {
		if tag.String() == "ROLLBACK" {
			return pgx.ErrTxCommitRollback
		}
		return nil
	})
	return q
}

// finish sends b, holding the transaction's COMMIT (queueCommit), in one
// round trip. A statement that fails before the COMMIT leaves the
// transaction to be rolled back by inPipeTx.
func (t *pipeTx) finish(ctx context.Context, b *pgx.Batch) error {
	return t.Tx.SendBatch(ctx, b).Close()
}
