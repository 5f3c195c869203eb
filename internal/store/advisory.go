package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// tryAdvisoryLockSQL takes a two-key session advisory lock if it is free:
// driver-level, like the fences, so kept by hand.
const tryAdvisoryLockSQL = `SELECT pg_try_advisory_lock($1, $2)`

// Session is a database session of its own, taken out of the pool for
// good (the pool never lends it out again): it holds session advisory
// locks for as long as it lives, as billing's payment owner does.
type Session struct{ conn *pgx.Conn }

// OpenSession takes a connection of db's pool out of it as a Session.
func (db *DB) OpenSession(ctx context.Context) (*Session, error) {
	pc, err := db.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &Session{conn: pc.Hijack()}, nil
}

// TryAdvisoryLock takes the session advisory lock (class, key) if no
// other session holds it. PostgreSQL holds it until the session ends, so
// a lock found free means its last holder is gone (billing's payment
// owners rely on it).
func (s *Session) TryAdvisoryLock(ctx context.Context, class, key int32) (bool, error) {
	var got bool
	if err := s.conn.QueryRow(ctx, tryAdvisoryLockSQL, class, key).Scan(&got); err != nil {
		return false, err
	}
	return got, nil
}

// Ping checks the session: an error means it, and its locks, may be gone.
func (s *Session) Ping(ctx context.Context) error { return s.conn.Ping(ctx) }

// Close ends the session, and its locks with it.
func (s *Session) Close(ctx context.Context) error { return s.conn.Close(ctx) }
