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
