package store

import (
	"context"
	"fmt"
	"hash/fnv"

	"github.com/pbxd/pbxd/internal/store/jobdb"
)

// Leadership is a scheduled job's leader lock, held: a PostgreSQL
// session-level advisory lock on one pooled connection (dies with the
// session, so another instance can take over), and the fence the job's
// transactions check (see Fence).
type Leadership struct {
	conn  *Conn
	key   int64
	Fence Fence
}

// TryLead takes the leader lock of job on a connection of its own. ok is
// false, with nothing held, when another session holds it. On success it
// bumps the job's fence epoch (Leadership.Fence), which fails the previous
// leader's transactions from then on; Release gives the lock back.
func (db *DB) TryLead(ctx context.Context, job string) (l *Leadership, ok bool, err error) {
	conn, err := db.Acquire(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("acquire connection for leader lock: %w", err)
	}
	key := leaderKey(job)
	q := jobdb.New(conn)
	locked, err := q.TryLeaderLock(ctx, key)
	if err != nil || !locked {
		conn.Release()
		if err != nil {
			return nil, false, fmt.Errorf("leader lock: %w", err)
		}
		return nil, false, nil
	}
	l = &Leadership{conn: conn, key: key}
	epoch, err := q.BumpFence(ctx, job)
	if err != nil {
		l.Release(ctx)
		return nil, false, fmt.Errorf("leader fence: %w", err)
	}
	l.Fence = Fence{Job: job, Epoch: epoch}
	return l, true, nil
}

// Session is the lock's own session, for what must be written only while
// the lock is held (a run recorded as done): on a lost session it fails,
// so another instance runs the job again rather than skipping it.
func (l *Leadership) Session() DBTX { return l.conn }

// Alive pings the lock's session: an error means the session, and the
// lock with it, may be gone.
func (l *Leadership) Alive(ctx context.Context) error { return l.conn.c.Ping(ctx) }

// Release gives the lock back (even when ctx is done) and returns the
// connection to the pool.
func (l *Leadership) Release(ctx context.Context) {
	_ = jobdb.New(l.conn).LeaderUnlock(context.WithoutCancel(ctx), l.key)
	l.conn.Release()
}

// leaderKey is the advisory lock key of job's leader lock.
func leaderKey(job string) int64 {
	h := fnv.New64a()
	h.Write([]byte("pbxd-job:" + job))
	return int64(h.Sum64())
}
