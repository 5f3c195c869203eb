package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// tryAdvisoryLockSQL takes a two-key session advisory lock if it is free:
// driver-level, like the fences, so kept by hand.
const tryAdvisoryLockSQL = `SELECT pg_try_advisory_lock($1, $2)`

// TryAdvisoryLock takes the session advisory lock (class, key) on conn if
// no other session holds it. PostgreSQL holds it until the session ends,
// so a lock found free means its last holder is gone (billing's payment
// owners rely on it). conn is a session of its own, never the pool's.
func TryAdvisoryLock(ctx context.Context, conn *pgx.Conn, class, key int32) (bool, error) {
	var got bool
	if err := conn.QueryRow(ctx, tryAdvisoryLockSQL, class, key).Scan(&got); err != nil {
		return false, err
	}
	return got, nil
}
