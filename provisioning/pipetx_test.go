package provisioning

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

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
	run := func(last []string, more func(tx *pipeTx) error) error {
		first := &pgx.Batch{}
		first.BeginTx(pgx.TxOptions{})
		first.Queue(`INSERT INTO pipe VALUES (1)`)
		return inPipeTx(ctx, pool, first, func(tx *pipeTx) error {
			if more != nil {
				if err := more(tx); err != nil {
					return err
				}
			}
			if last == nil {
				return nil
			}
			b := &pgx.Batch{}
			for _, q := range last {
				if q == "commit" {
					queueCommit(b)
				} else {
					b.Queue(q)
				}
			}
			return tx.finish(ctx, b)
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
	if err := run(nil, func(*pipeTx) error { return boom }); !errors.Is(err, boom) {
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

	// commitNextBatch: the callee's batch carries the COMMIT.
	if _, err := pool.Exec(ctx, `DELETE FROM pipe`); err != nil {
		t.Fatal(err)
	}
	if err := run(nil, func(tx *pipeTx) error {
		tx.commitNextBatch()
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO pipe VALUES (3)`)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		if st := tx.Conn().PgConn().TxStatus(); st != 'I' {
			t.Errorf("after the callee's batch the transaction is %q, want committed", st)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 2 {
		t.Fatalf("%d rows after commitNextBatch, want 2", n)
	}
	idle()
}
