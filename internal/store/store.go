// Package store is pbxd's PostgreSQL plumbing: the pgx pool, the embedded
// schema migrations and the error mapping every domain package shares.
package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jackc/puddle/v2"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/pbxd/pbxd/internal/store/auditdb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations returns the embedded migration files.
func Migrations() fs.FS {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	return sub
}

// MigrationsHash identifies the schema the binary was built with; the test
// harness keys its template database on it.
func MigrationsHash() string {
	h := sha256.New()
	_ = fs.WalkDir(Migrations(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(Migrations(), path)
		h.Write([]byte(path))
		h.Write(b)
		return err
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// Open connects a pool to url, retrying with capped exponential backoff until
// the database answers or wait runs out: pbxd often starts before its
// database under systemd.
func Open(ctx context.Context, url string, maxConns int32, wait time.Duration, logger *slog.Logger) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", redact(err))
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	deadline := time.Now().Add(wait)
	backoff := 200 * time.Millisecond
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = pool.Ping(pctx)
		cancel()
		if err == nil {
			return pool, nil
		}
		if ctx.Err() != nil || time.Now().Add(backoff).After(deadline) {
			pool.Close()
			return nil, fmt.Errorf("database unreachable at %s:%d after %s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, wait, err)
		}
		logger.Warn("database not reachable yet, retrying", "in", backoff, "err", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// redact drops the DSN from pgx parse errors, which may quote a password.
func redact(err error) error {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return errors.New("invalid connection string")
	}
	return err
}

// Migrate applies the embedded migrations. It is safe to call twice and from
// several instances at once: goose takes a PostgreSQL session lock first.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	db := stdlib.OpenDBFromPool(pool)
	return errors.Join(migrateDB(ctx, db), db.Close())
}

func migrateDB(ctx context.Context, db *sql.DB) error {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("migration locker: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, Migrations(), goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}

// schemaVersion reads goose's own table, which is not part of the schema
// sqlc sees: migration plumbing, kept by hand.
const schemaVersion = `SELECT coalesce(max(version_id), 0) FROM goose_db_version WHERE is_applied`

// Pending reports how many embedded migrations are not applied yet (/readyz).
func Pending(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var current int64
	err := pool.QueryRow(ctx, schemaVersion).Scan(&current)
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	files, err := fs.Glob(Migrations(), "*.sql")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, f := range files {
		var v int64
		if _, err := fmt.Sscanf(f, "%d_", &v); err == nil && v > current {
			n++
		}
	}
	return n, nil
}

// IsUniqueViolation reports whether err is PostgreSQL's unique_violation
// (23505), optionally on the named constraint.
func IsUniqueViolation(err error, constraint string) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23505" {
		return false
	}
	return constraint == "" || pe.ConstraintName == constraint
}

// IsUnavailable reports whether err means the database cannot be used
// right now rather than a bug: a failed connect, a closed pool, a
// connection closed under the query, a server shutting down or
// terminating the session (57P01 admin_shutdown and friends), a network
// error. The API answers 503 with Retry-After for these.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &ce), errors.As(err, &ne),
		errors.Is(err, puddle.ErrClosedPool), errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return true
	case errors.As(err, &pe):
		// Class 08: connection exception; 57P01-57P03: shutdown,
		// terminated, cannot connect now; 53300: too many connections.
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03" || pe.Code == "53300"
	}
	return false
}

// Audit records who did what in the caller's transaction, so the record
// commits or rolls back with the change itself. An empty accountID is stored
// as NULL (operator-wide actions); nil details as {}.
func Audit(ctx context.Context, tx DBTX, at time.Time, actor, accountID, action, object string, details any) error {
	acct, details := auditValues(accountID, details)
	js, err := json.Marshal(details)
	if err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	err = auditdb.New(tx).InsertAudit(ctx, auditdb.InsertAuditParams{At: at, Actor: actor, AccountID: acct, Action: action, Object: object, Details: js})
	if err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

// QueueAudit adds Audit's record to a batch the caller sends in its
// transaction (the confirm path's one round trip, a driver-level batch).
func QueueAudit(b *Batch, at time.Time, actor, accountID, action, object string, details any) {
	acct, details := auditValues(accountID, details)
	b.Queue(auditdb.InsertAuditSQL, at, actor, acct, action, object, details)
}

// auditValues stores an empty accountID as NULL and nil details as {}.
func auditValues(accountID string, details any) (*string, any) {
	var acct *string
	if accountID != "" {
		acct = &accountID
	}
	if m, ok := details.(map[string]any); details == nil || (ok && m == nil) {
		details = map[string]any{}
	}
	return acct, details
}
