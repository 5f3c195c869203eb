package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound is what a query expecting one row returns when there is none
// (pgx.ErrNoRows never leaves the data-access layer): domain packages map it
// onto their own not-found errors.
var ErrNotFound = errors.New("store: no such row")

// DBTX is where generated queries run: a *DB, a *Tx, a *Conn (inside
// store, a pooled connection too). It is sqlc's DBTX.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// DB is the database domain services hold: queries run on it outside any
// transaction, and InTx runs a unit of work.
type DB struct{ pool *pgxpool.Pool }

// NewDB wraps the daemon's pool.
func NewDB(pool *pgxpool.Pool) *DB { return &DB{pool: pool} }

// Tx is one unit of work: every owner's queries take it, so changes to
// several owners' tables commit or roll back together.
type Tx struct{ tx pgx.Tx }

// InTx runs fn in a transaction, committing when fn returns nil and rolling
// back otherwise.
func (db *DB) InTx(ctx context.Context, fn func(*Tx) error) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error { return fn(&Tx{tx: tx}) })
}

// Exec runs a statement (for generated queries).
func (db *DB) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return db.pool.Exec(ctx, sql, args...)
}

// Query runs a query returning rows (for generated queries).
func (db *DB) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return db.pool.Query(ctx, sql, args...)
}

// QueryRow runs a query returning one row (for generated queries); no row
// scans as ErrNotFound.
func (db *DB) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return row{db.pool.QueryRow(ctx, sql, args...)}
}

// Exec runs a statement in the transaction (for generated queries).
func (t *Tx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return t.tx.Exec(ctx, sql, args...)
}

// Query runs a query in the transaction (for generated queries).
func (t *Tx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return t.tx.Query(ctx, sql, args...)
}

// QueryRow runs a one-row query in the transaction (for generated
// queries); no row scans as ErrNotFound.
func (t *Tx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return row{t.tx.QueryRow(ctx, sql, args...)}
}

// row maps pgx.ErrNoRows onto ErrNotFound.
type row struct{ pgx.Row }

func (r row) Scan(dest ...any) error {
	err := r.Row.Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// InSnapshot runs fn in a read-only repeatable-read transaction: every
// query sees the same snapshot (an overview read in several statements).
func (db *DB) InSnapshot(ctx context.Context, fn func(*Tx) error) error {
	return pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error { return fn(&Tx{tx: tx}) })
}
