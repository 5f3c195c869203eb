package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Pool is the pgx pool the daemon opens (Open). Domain constructors not yet
// ported to DB still take it (issue 16); naming it here keeps pgx out of
// the packages that only pass it on.
type Pool = pgxpool.Pool

// databaseExists asks the server's catalog, on an administration
// connection: driver-level, kept by hand like CREATE DATABASE.
const databaseExists = `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`

// EnsureDatabase creates the database name on the server at adminURL
// unless it exists (the daemon's private cluster).
func EnsureDatabase(ctx context.Context, adminURL, name string) (err error) {
	c, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect private PostgreSQL: %w", err)
	}
	defer func() { err = errors.Join(err, c.Close(ctx)) }()
	var exists bool
	if err := c.QueryRow(ctx, databaseExists, name).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			return fmt.Errorf("create database %s: %w", name, err)
		}
	}
	return nil
}

// Scratch creates the database name on the server at adminURL, migrates
// it and returns a pool on it (a load harness's throwaway database); drop
// closes the pool and drops the database.
func Scratch(ctx context.Context, adminURL, name string) (pool *Pool, drop func(), err error) {
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return nil, nil, fmt.Errorf("connect %s: %w", adminURL, err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		_ = admin.Close(ctx)
		return nil, nil, fmt.Errorf("create database: %w", err)
	}
	dropDB := func() {
		_, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		_ = admin.Close(context.Background())
	}
	cfg, err := pgxpool.ParseConfig(adminURL)
	if err == nil {
		cfg.ConnConfig.Database = name
		pool, err = pgxpool.NewWithConfig(ctx, cfg)
	}
	if err == nil {
		err = Migrate(ctx, pool)
	}
	if err != nil {
		if pool != nil {
			pool.Close()
		}
		dropDB()
		return nil, nil, fmt.Errorf("scratch database: %w", err)
	}
	return pool, func() { pool.Close(); dropDB() }, nil
}
