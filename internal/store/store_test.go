package store_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/storetest"
)

// migrateConcurrently migrates the database at url from n pools at once.
func migrateConcurrently(t *testing.T, url string, n int) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := pgxpool.New(ctx, url)
			if err != nil {
				errs <- err
				return
			}
			defer p.Close()
			errs <- store.Migrate(ctx, p)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent migration: %v", err)
		}
	}
}

// Applying the migrations again, and from several instances at once, must be
// a no-op that fails nowhere.
func TestMigrateTwiceAndConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := storetest.NewPool(t)
	if err := store.Migrate(ctx, pool); err != nil {
		t.Fatalf("second migration: %v", err)
	}
	migrateConcurrently(t, pool.Config().ConnString(), 4)
	n, err := store.Pending(ctx, pool)
	if err != nil || n != 0 {
		t.Fatalf("pending = %d, %v; want 0", n, err)
	}
}

// An empty database migrated by several instances at once ends up complete.
func TestMigrateEmptyDatabaseConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := storetest.NewEmptyDatabase(t)
	migrateConcurrently(t, url, 3)
	p, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if n, err := store.Pending(ctx, p); err != nil || n != 0 {
		t.Fatalf("pending = %d, %v", n, err)
	}
	var tables int
	if err := p.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_name IN ('accounts','lines','subscriptions')`).Scan(&tables); err != nil || tables != 3 {
		t.Fatalf("tables = %d, %v", tables, err)
	}
}

// The errors of an unreachable or closing database are told apart from
// bugs, on real failures.
func TestIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := storetest.NewDatabase(t)

	// Nothing listens there: a connect error.
	refused, err := pgxpool.New(ctx, "postgres://nobody@127.0.0.1:1/none?connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer refused.Close()
	_, err = refused.Exec(ctx, "SELECT 1")
	if !store.IsUnavailable(err) {
		t.Errorf("connect refused: %v (%T) not unavailable", err, err)
	}

	// A closed pool.
	closed, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	if _, err := closed.Exec(ctx, "SELECT 1"); !store.IsUnavailable(err) {
		t.Errorf("closed pool: %v (%T) not unavailable", err, err)
	}

	// The session terminated by the server (admin shutdown) mid-query.
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	var pid int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT 1"); !store.IsUnavailable(err) {
		t.Errorf("terminated session: %v (%T) not unavailable", err, err)
	}

	// Bugs and bad SQL are not.
	for _, q := range []string{"SELECT * FROM no_such_table", "SELECT 1/0"} {
		if _, err := pool.Exec(ctx, q); err == nil || store.IsUnavailable(err) {
			t.Errorf("%s: %v counted as unavailable", q, err)
		}
	}
	if store.IsUnavailable(nil) || store.IsUnavailable(context.Canceled) {
		t.Error("nil or a cancelled context counted as unavailable")
	}
}
