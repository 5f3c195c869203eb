package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Batch is statements sent to PostgreSQL in one round trip (a pipelined
// pgx batch, driver-level): each one's result goes to the callback queued
// with it when the batch is sent (Tx.SendBatch, PipeTx.Finish). Its
// statements are the generated queries' own text (the <owner>db packages'
// ...SQL constants), rows scanned by position into their row types.
type Batch struct{ b pgx.Batch }

// Queued is a statement of a Batch. Without a callback its result is only
// checked for an error.
type Queued struct{ q *pgx.QueuedQuery }

// Queue adds a statement to b.
func (b *Batch) Queue(sql string, args ...any) Queued { return Queued{b.b.Queue(sql, args...)} }

// Len is the number of statements queued.
func (b *Batch) Len() int { return b.b.Len() }

// Append queues other's statements (with their callbacks) after b's.
func (b *Batch) Append(other *Batch) {
	b.b.QueuedQueries = append(b.b.QueuedQueries, other.b.QueuedQueries...)
}

// TxMode is how a pipelined transaction begins (Batch.BeginTx).
type TxMode int

const (
	// ReadWrite is PostgreSQL's default transaction: read committed, read
	// write ("begin").
	ReadWrite TxMode = iota
	// ReadOnlySnapshot reads one snapshot and writes nothing (repeatable
	// read, read only): a preview's state read.
	ReadOnlySnapshot
)

// txOptions are the pgx options of each mode.
var txOptions = [...]pgx.TxOptions{
	ReadWrite:        {},
	ReadOnlySnapshot: {IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
}

// BeginTx queues the BEGIN of a transaction in mode first: InPipeTx sends
// it with the batch's reads.
func (b *Batch) BeginTx(mode TxMode) { b.b.BeginTx(txOptions[mode]) }

// Row is one row of a statement's result, scanned by hand into its
// columns' destinations in order.
type Row interface{ Scan(dest ...any) error }

// QueryRow reads the statement's one row with fn; no row scans as
// ErrNotFound.
func (q Queued) QueryRow(fn func(Row) error) {
	q.q.QueryRow(func(r pgx.Row) error { return fn(row{r}) })
}

// QueryRows reads the statement's rows, each scanned by position into a T
// (a generated row type: its fields in column order), and hands them to fn.
func QueryRows[T any](q Queued, fn func([]T) error) {
	q.q.Query(func(rows pgx.Rows) error {
		list, err := pgx.CollectRows(rows, pgx.RowToStructByPos[T])
		if err != nil {
			return err
		}
		return fn(list)
	})
}

// QueryOne reads the statement's one row, scanned by position into a T,
// into *dst: no row is ErrNotFound, more than one an error.
func QueryOne[T any](q Queued, dst *T) {
	q.q.Query(func(rows pgx.Rows) error {
		var err error
		*dst, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[T])
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		return err
	})
}

// QueryValues reads the statement's rows of one column, each scanned into
// a T, and hands them to fn.
func QueryValues[T any](q Queued, fn func([]T) error) {
	q.q.Query(func(rows pgx.Rows) error {
		list, err := pgx.CollectRows(rows, pgx.RowTo[T])
		if err != nil {
			return err
		}
		return fn(list)
	})
}

// Exec hands the number of rows the statement affected to fn.
func (q Queued) Exec(fn func(rowsAffected int64) error) {
	q.q.Exec(func(tag pgconn.CommandTag) error { return fn(tag.RowsAffected()) })
}

// Commit hands whether the statement, a COMMIT, committed to fn: false
// when it rolled back (the transaction had failed).
func (q Queued) Commit(fn func(committed bool) error) {
	q.q.Exec(func(tag pgconn.CommandTag) error { return fn(tag.String() == "COMMIT") })
}

// QueueCommit queues the transaction's COMMIT into b, at the position the
// caller chooses (statements after it run on their own, outside the
// transaction). A COMMIT that rolls back (the transaction had failed) is
// pgx.ErrTxCommitRollback. committed, when not nil, is set to whether it
// committed.
func (b *Batch) QueueCommit(committed *bool) { queueCommit(&b.b, committed) }

func queueCommit(b *pgx.Batch, committed *bool) {
	b.Queue("commit").Exec(func(tag pgconn.CommandTag) error {
		if tag.String() == "ROLLBACK" {
			return pgx.ErrTxCommitRollback
		}
		if committed != nil {
			*committed = true
		}
		return nil
	})
}

// SendBatch sends b in the transaction, in one round trip, and reads its
// results with their callbacks.
func (t *Tx) SendBatch(ctx context.Context, b *Batch) error {
	return t.tx.SendBatch(ctx, &b.b).Close()
}

// PipeTx is a transaction whose BEGIN rides on its first batch and whose
// COMMIT may ride on its last (QueueCommit, Finish): the change order
// paths spend two round trips less per transaction, and a lock taken by
// the last batch (the invoice counter) is held for that batch only, not
// for a further round trip through a busy client. Generated queries run
// on Unit.
type PipeTx struct {
	pipe pipe
	unit Tx
}

// pipe is the pgx transaction under a PipeTx: the batches its unit of work
// sends go through it and honour CommitNextBatch.
type pipe struct {
	pgx.Tx
	commitNext bool
}

// Unit is the transaction as the unit of work generated queries and other
// owners' code take (a missing row is ErrNotFound). A batch sent in it
// honours CommitNextBatch.
func (t *PipeTx) Unit() *Tx { return &t.unit }

// SendBatch sends b, with the transaction's COMMIT queued last when
// CommitNextBatch asked for it.
func (p *pipe) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if p.commitNext {
		p.commitNext = false
		queueCommit(b, nil)
	}
	return p.Tx.SendBatch(ctx, b)
}

// CommitNextBatch, on, makes the next batch sent in t (by a callee that
// writes last in t, in one batch: the payment intent) carry t's COMMIT; a
// callee that sends none leaves the COMMIT to InPipeTx, once the caller
// turns it off again.
func (t *PipeTx) CommitNextBatch(on bool) { t.pipe.commitNext = on }

// Done reports whether t is over: committed by the last batch it sent.
func (t *PipeTx) Done() bool { return t.pipe.Conn().PgConn().TxStatus() == 'I' }

// Finish sends b, holding the transaction's COMMIT (QueueCommit), in one
// round trip. A statement that fails before the COMMIT leaves the
// transaction to be rolled back by InPipeTx.
func (t *PipeTx) Finish(ctx context.Context, b *Batch) error {
	return t.pipe.Tx.SendBatch(ctx, &b.b).Close()
}

// RollbackOpen rolls back a transaction statements after the COMMIT left
// open (their own, begun in the same batch); InPipeTx rolls back the rest.
func (t *PipeTx) RollbackOpen(ctx context.Context) {
	if !t.Done() {
		_, _ = t.pipe.Conn().Exec(ctx, "rollback") // best effort: InPipeTx rolls back what is left
	}
}

// errNoBegin is a first batch without its BEGIN.
var errNoBegin = errors.New("pipelined transaction: the first batch began none")

// InPipeTx sends first, which must have been started with
// first.BeginTx(mode) before anything was queued, on a connection of db's
// pool, then runs fn in the transaction first began. The transaction
// commits after fn unless fn's last batch did (Finish, CommitNextBatch); it
// rolls back when first or fn fail. first's callbacks run before fn.
func InPipeTx(ctx context.Context, db *DB, first *Batch, fn func(tx *PipeTx) error) (err error) {
	c, err := db.pool.Acquire(ctx)
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
	br := c.SendBatch(ctx, &first.b)
	if err := br.Close(); err != nil {
		return fmt.Errorf("begin and read: %w", err)
	}
	tx := &PipeTx{pipe: pipe{Tx: br.Tx()}}
	if tx.pipe.Tx == nil {
		return errNoBegin
	}
	tx.unit.tx = &tx.pipe
	if err := fn(tx); err != nil {
		return err
	}
	if c.Conn().PgConn().TxStatus() == 'I' {
		return nil // committed by fn's last batch
	}
	return tx.pipe.Commit(ctx)
}
