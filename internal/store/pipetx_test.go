package store_test

import (
	"errors"
	"testing"

	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/storetest"
)

// The pipelined transaction commits what its last batch carries, rolls
// back everything when a statement before its COMMIT fails, and leaves no
// connection of the pool inside a transaction either way.
func TestPipeTxCommitsOrRollsBackWhole(t *testing.T) {
	t.Parallel()
	pool := storetest.NewPool(t)
	ctx := t.Context()
	if _, err := pool.Exec(ctx, `CREATE TABLE pipe (n int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pipe`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	run := func(last []string, more func(tx *store.PipeTx) error) error {
		first := &store.Batch{}
		first.BeginTx(store.ReadWrite)
		first.Queue(`INSERT INTO pipe VALUES (1)`)
		return store.InPipeTx(ctx, store.NewDB(pool), first, func(tx *store.PipeTx) error {
			if more != nil {
				if err := more(tx); err != nil {
					return err
				}
			}
			if last == nil {
				return nil
			}
			b := &store.Batch{}
			for _, q := range last {
				if q == "commit" {
					b.QueueCommit(nil)
				} else {
					b.Queue(q)
				}
			}
			return tx.Finish(ctx, b)
		})
	}
	idle := func() {
		t.Helper()
		for _, c := range pool.AcquireAllIdle(ctx) {
			if st := c.Conn().PgConn().TxStatus(); st != 'I' {
				t.Errorf("a pooled connection is in transaction state %q", st)
			}
			c.Release()
		}
	}

	// A statement failing before the COMMIT of the last batch: nothing
	// stays, not even the first batch's insert.
	if err := run([]string{`INSERT INTO pipe VALUES (2)`, `INSERT INTO pipe VALUES (2)`, "commit"}, nil); err == nil {
		t.Fatal("a duplicate key before the COMMIT: no error")
	}
	if n := count(); n != 0 {
		t.Fatalf("%d rows after a failed last batch, want 0", n)
	}
	idle()

	// fn failing: rolled back.
	boom := errors.New("boom")
	if err := run(nil, func(*store.PipeTx) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("fn's error: %v", err)
	}
	if n := count(); n != 0 {
		t.Fatalf("%d rows after fn failed, want 0", n)
	}
	idle()

	// The COMMIT riding on the last batch commits it all.
	if err := run([]string{`INSERT INTO pipe VALUES (2)`, "commit"}, nil); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 2 {
		t.Fatalf("%d rows after the last batch committed, want 2", n)
	}
	idle()

	// A failing first batch: nothing stays either.
	if err := run(nil, nil); !store.IsUniqueViolation(err, "") {
		t.Fatalf("inserting 1 again: %v, want a unique violation", err)
	}
	idle()

	// CommitNextBatch: the callee's batch, sent in the unit of work,
	// carries the COMMIT.
	for i := range 1 {
		if _, err := pool.Exec(ctx, `DELETE FROM pipe`); err != nil {
			t.Fatal(err)
		}
		committed := false
		if err := run(nil, func(tx *store.PipeTx) error {
			tx.CommitNextBatch(true)
			b := &store.Batch{}
			b.Queue(`INSERT INTO pipe VALUES (3)`)
			if err := tx.Unit().SendBatch(ctx, b); err != nil {
				return err
			}
			tx.CommitNextBatch(false)
			committed = tx.Done()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if !committed {
			t.Errorf("case %d: after the callee's batch the transaction is still open, want committed", i)
		}
		if n := count(); n != 2 {
			t.Fatalf("case %d: %d rows after CommitNextBatch, want 2", i, n)
		}
		idle()
	}

	// QueueCommit reports whether the COMMIT committed; statements after it
	// run on their own.
	if _, err := pool.Exec(ctx, `DELETE FROM pipe`); err != nil {
		t.Fatal(err)
	}
	committed := false
	if err := run(nil, func(tx *store.PipeTx) error {
		b := &store.Batch{}
		b.QueueCommit(&committed)
		b.Queue(`INSERT INTO pipe VALUES (4)`)
		return tx.Finish(ctx, b)
	}); err != nil || !committed {
		t.Fatalf("QueueCommit: err %v, committed %v", err, committed)
	}
	if n := count(); n != 2 {
		t.Fatalf("%d rows after a COMMIT and an insert of its own, want 2", n)
	}
	idle()
}
