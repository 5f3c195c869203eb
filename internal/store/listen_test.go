package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/storetest"
)

// Listen calls back once it listens and on every notification, and ends
// with its context.
func TestListen(t *testing.T) {
	t.Parallel()
	pool := storetest.NewPool(t)
	db := store.NewDB(pool)
	ctx, cancel := context.WithCancel(t.Context())
	calls := make(chan struct{}, 4)
	type result struct {
		listened bool
		err      error
	}
	done := make(chan result, 1)
	go func() {
		listened, err := db.Listen(ctx, "store_test", func() { calls <- struct{}{} })
		done <- result{listened, err}
	}()
	wait := func(what string) {
		t.Helper()
		select {
		case <-calls:
		case <-time.After(10 * time.Second):
			t.Fatalf("no call back %s", what)
		}
	}
	wait("once listening")
	if _, err := pool.Exec(t.Context(), `SELECT pg_notify('store_test', '')`); err != nil {
		t.Fatal(err)
	}
	wait("on the notification")
	cancel()
	r := <-done
	if !r.listened || !errors.Is(r.err, context.Canceled) {
		t.Fatalf("after cancel: listened %v, err %v; want true, context.Canceled", r.listened, r.err)
	}
}

// QueryRows scans a batch statement's rows by position into a row type,
// QueryValues a one-column result, QueryRow one row by hand.
func TestBatchScans(t *testing.T) {
	t.Parallel()
	pool := storetest.NewPool(t)
	type pair struct {
		N    int32
		Name string
	}
	var pairs []pair
	var values []string
	var one int32
	b := &store.Batch{}
	b.BeginTx(store.ReadOnlySnapshot)
	store.QueryRows(b.Queue(`SELECT n, 'n' || n FROM generate_series(1, 3) n`), func(l []pair) error { pairs = l; return nil })
	store.QueryValues(b.Queue(`SELECT 'v' || n FROM generate_series(1, 2) n`), func(l []string) error { values = l; return nil })
	b.Queue(`SELECT 7`).QueryRow(func(r store.Row) error { return r.Scan(&one) })
	var missing error
	b.Queue(`SELECT 1 WHERE false`).QueryRow(func(r store.Row) error { missing = r.Scan(new(int32)); return nil })
	if err := store.InPipeTx(t.Context(), store.NewDB(pool), b, func(*store.PipeTx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if len(pairs) != 3 || pairs[2] != (pair{3, "n3"}) || len(values) != 2 || values[1] != "v2" || one != 7 {
		t.Fatalf("pairs %v, values %v, one %d", pairs, values, one)
	}
	if !errors.Is(missing, store.ErrNotFound) {
		t.Fatalf("no row scans as %v, want store.ErrNotFound", missing)
	}
}
