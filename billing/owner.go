package billing

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/pbxd/pbxd/internal/store"
)

// An attempt records its owner: the key of a session advisory lock that
// the process which created it holds, on a connection of its own, for as
// long as it runs. PostgreSQL drops the lock with the session, so a free
// lock means the owner is gone (kill -9, crash, host lost): Recover then
// settles its attempts at once instead of waiting for the minute that
// protects a request still in flight.

// ownerLockClass is the first key of the owners' two-key advisory locks,
// apart from the scheduler's one-key job locks.
const ownerLockClass = 0x7062 // "pb"

// ownerPing is how often the owner's session is checked; a lost session
// is reopened and the same key taken again.
const ownerPing = 5 * time.Second

// TakeOwnership takes an owner key before the service creates attempts,
// so that the first ones carry it; HoldOwnership then keeps it.
func (s *Service) TakeOwnership(ctx context.Context) error {
	var key int32
	conn, err := s.takeOwnerLock(ctx, &key)
	if err != nil {
		return err
	}
	s.ownerConn.Store(conn)
	s.owner.Store(key)
	return nil
}

// ReleaseOwnership ends the session TakeOwnership opened if HoldOwnership
// never took it over (the daemon stopped before running).
func (s *Service) ReleaseOwnership() error {
	if conn := s.ownerConn.Swap(nil); conn != nil {
		s.owner.Store(0)
		return conn.Close(context.Background())
	}
	return nil
}

// HoldOwnership holds the owner lock until ctx ends (taking one first if
// TakeOwnership did not); the attempts this service creates meanwhile
// carry it. While the lock is being taken again after a lost session, new
// attempts carry no owner: only the minute rule applies to them.
func (s *Service) HoldOwnership(ctx context.Context) error {
	key := s.owner.Load()
	conn := s.ownerConn.Swap(nil)
	for ctx.Err() == nil {
		var err error
		if conn == nil {
			if conn, err = s.takeOwnerLock(ctx, &key); err != nil {
				if ctx.Err() == nil {
					s.log.Warn("payment owner lock not held; retrying", "err", err)
				}
				select {
				case <-ctx.Done():
				case <-time.After(ownerPing):
				}
				continue
			}
		}
		s.owner.Store(key)
		for err == nil {
			select {
			case <-ctx.Done():
				err = ctx.Err()
			case <-time.After(ownerPing):
				err = conn.Ping(ctx)
			}
		}
		s.owner.Store(0)
		conn.Close(context.WithoutCancel(ctx)) //nolint:errcheck // its session, and the lock, end either way
		conn = nil
		if ctx.Err() == nil {
			s.log.Warn("payment owner session lost; taking the lock again", "err", err)
		}
	}
	return nil
}

// takeOwnerLock opens a session of its own and takes the lock of *key (a
// new random key when 0 or taken by another session).
func (s *Service) takeOwnerLock(ctx context.Context, key *int32) (*store.Session, error) {
	conn, err := s.db.OpenSession(ctx) // its own session: the pool never lends it out
	if err != nil {
		return nil, fmt.Errorf("acquire owner session: %w", err)
	}
	for range 10 {
		if *key == 0 {
			var b [4]byte
			_, _ = rand.Read(b[:])
			*key = int32(binary.BigEndian.Uint32(b[:])&0x7fffffff) | 1
		}
		got, err := conn.TryAdvisoryLock(ctx, ownerLockClass, *key)
		if err != nil {
			conn.Close(context.WithoutCancel(ctx)) //nolint:errcheck
			return nil, fmt.Errorf("take owner lock: %w", err)
		}
		if got {
			return conn, nil
		}
		*key = 0 // another session holds it: pick another
	}
	conn.Close(context.WithoutCancel(ctx)) //nolint:errcheck
	return nil, fmt.Errorf("take owner lock: no free key")
}

// ownerOrNull is the owner to record on a new attempt (nil: NULL).
func (s *Service) ownerOrNull() *int32 {
	if k := s.owner.Load(); k != 0 {
		return &k
	}
	return nil
}
