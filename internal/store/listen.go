package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// Listen runs LISTEN channel on a connection of db's pool held for it
// alone (driver-level) and calls fn once it listens (changes announced
// before were missed) and again on every notification, until the
// connection fails or ctx ends; it returns that error. listened says
// whether it got as far as LISTEN.
func (db *DB) Listen(ctx context.Context, channel string, fn func()) (listened bool, err error) {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Release()
	name := pgx.Identifier{channel}.Sanitize()
	if _, err := conn.Exec(ctx, "LISTEN "+name); err != nil {
		return false, err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "UNLISTEN "+name) //nolint:errcheck // best effort
	fn()
	for {
		if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
			return true, err
		}
		fn()
	}
}
