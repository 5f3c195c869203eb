package store

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Conn is one connection of the pool, held for a transaction the caller
// drives by hand in pipelined batches (BEGIN and COMMIT queued as
// statements: billing's renewal pipeline). Generated queries run on it.
type Conn struct{ c *pgxpool.Conn }

// Acquire holds a connection of db's pool until Release.
func (db *DB) Acquire(ctx context.Context) (*Conn, error) {
	c, err := db.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &Conn{c: c}, nil
}

// Exec runs a statement (for generated queries).
func (c *Conn) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return c.c.Exec(ctx, sql, args...)
}

// Query runs a query returning rows (for generated queries).
func (c *Conn) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return c.c.Query(ctx, sql, args...)
}

// QueryRow runs a one-row query (for generated queries); no row scans as
// ErrNotFound.
func (c *Conn) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return row{c.c.QueryRow(ctx, sql, args...)}
}

// SendBatch sends b on the connection in one round trip and reads its
// results with their callbacks.
func (c *Conn) SendBatch(ctx context.Context, b *Batch) error {
	return c.c.SendBatch(ctx, &b.b).Close()
}

// Rollback rolls back the transaction left open on the connection, closing
// the connection when that fails (the pool drops a closed connection).
func (c *Conn) Rollback(ctx context.Context) {
	if _, err := c.c.Exec(ctx, "ROLLBACK"); err != nil {
		c.c.Conn().Close(ctx) //nolint:errcheck // the pool drops a closed connection
	}
}

// Release returns the connection to the pool (once; later calls do
// nothing).
func (c *Conn) Release() { c.c.Release() }

// SendBatch sends b on a connection of the pool in one round trip,
// outside any transaction unless b queues its own BEGIN and COMMIT.
func (db *DB) SendBatch(ctx context.Context, b *Batch) error {
	return db.pool.SendBatch(ctx, &b.b).Close()
}
