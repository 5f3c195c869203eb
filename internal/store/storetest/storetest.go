// Package storetest gives each test its own freshly migrated PostgreSQL
// database, cloned from a template so that it takes milliseconds.
//
// The server is PBXD_TEST_DATABASE_URL when set; otherwise the harness starts
// a private cluster (package pgcluster) for the test process. A missing
// database fails the test: it never skips.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pbxd/pbxd/internal/pgcluster"
	"github.com/pbxd/pbxd/internal/store"
)

var (
	once      sync.Once
	serverURL string
	template  string
	setupErr  error
)

// NewPool returns a pool on a new database holding the whole schema. The
// database is dropped when the test ends.
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	dbURL := NewDatabase(t)
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatalf("storetest: connect: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// NewDatabase creates a migrated database and returns its URL; it is dropped
// when the test ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return create(t, true)
}

// NewEmptyDatabase creates a database with no schema (to test migrations
// themselves) and returns its URL; it is dropped when the test ends.
func NewEmptyDatabase(t testing.TB) string {
	t.Helper()
	return create(t, false)
}

func create(t testing.TB, migrated bool) string {
	t.Helper()
	once.Do(setup)
	if setupErr != nil {
		t.Fatalf("storetest: %v", setupErr)
	}
	ctx := context.Background()
	name := "pbxd_test_" + randomHex(6)
	admin, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		t.Fatalf("storetest: connect admin: %v", err)
	}
	defer func() { _ = admin.Close(ctx) }() // a short-lived admin connection
	sql := "CREATE DATABASE " + name
	if migrated {
		sql += " TEMPLATE " + template
	}
	if _, err := createWithRetry(ctx, admin, sql); err != nil {
		t.Fatalf("storetest: create database: %v", err)
	}
	t.Cleanup(func() { dropDatabase(name) })
	return withDB(serverURL, name)
}

func dropDatabase(name string) {
	c, err := pgx.Connect(context.Background(), serverURL)
	if err != nil {
		return
	}
	defer func() { _ = c.Close(context.Background()) }() // a short-lived admin connection
	_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
}

// ServerURL returns the admin URL of the test server (for tests that create
// databases themselves, e.g. to migrate an empty one).
func ServerURL(t testing.TB) string {
	t.Helper()
	once.Do(setup)
	if setupErr != nil {
		t.Fatalf("storetest: %v", setupErr)
	}
	return serverURL
}

// createWithRetry retries CREATE DATABASE while another session is briefly
// connected to the template (PostgreSQL refuses to copy it then).
func createWithRetry(ctx context.Context, c *pgx.Conn, sql string) (int, error) {
	var err error
	for i := 0; i < 50; i++ {
		if _, err = c.Exec(ctx, sql); err == nil {
			return i, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return 0, err
}

func setup() {
	ctx := context.Background()
	serverURL = os.Getenv("PBXD_TEST_DATABASE_URL")
	if serverURL == "" {
		dir := filepath.Join(os.TempDir(), "pbxd-test-pg-"+randomHex(4))
		c, err := pgcluster.Start(ctx, dir)
		if err != nil {
			setupErr = fmt.Errorf("no PBXD_TEST_DATABASE_URL and no private cluster: %w", err)
			return
		}
		serverURL = c.URL("postgres")
		if err := c.StopWhenExits(os.Getpid()); err != nil {
			setupErr = err
			return
		}
	}
	template = "pbxd_tmpl_" + store.MigrationsHash()
	setupErr = ensureTemplate(ctx)
}

// ensureTemplate creates and migrates the template database once per schema,
// under an advisory lock because test binaries of several packages run at
// the same time.
func ensureTemplate(ctx context.Context) error {
	admin, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return fmt.Errorf("connect %s: %w", redactURL(serverURL), err)
	}
	defer func() { _ = admin.Close(ctx) }() // a short-lived admin connection (its close frees the lock)
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock(727274)"); err != nil {
		return err
	}
	defer admin.Exec(ctx, "SELECT pg_advisory_unlock(727274)") //nolint:errcheck
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", template).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	building := template + "_build"
	_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+building+" WITH (FORCE)")
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+building); err != nil {
		return fmt.Errorf("create template: %w", err)
	}
	pool, err := pgxpool.New(ctx, withDB(serverURL, building))
	if err != nil {
		return err
	}
	err = store.Migrate(ctx, pool)
	pool.Close()
	if err != nil {
		return err
	}
	// Renamed only once complete, so a crash never leaves a half template.
	_, err = admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", building, template))
	return err
}

func withDB(server, db string) string {
	u, err := url.Parse(server)
	if err != nil {
		return server
	}
	u.Path = "/" + db
	return u.String()
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable url)"
	}
	return u.Redacted()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
