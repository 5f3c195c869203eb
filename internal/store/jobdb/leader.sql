-- The scheduler's leader lock (store.TryLead): a session-level advisory
-- lock per job, held on one pooled connection for the run, and the job's
-- fence (migration 00031), which each new leader bumps.

-- name: TryLeaderLock :one
-- TryLeaderLock takes the lock of key unless another session holds it.
SELECT pg_try_advisory_lock(sqlc.arg(key)::bigint) AS locked;

-- name: LeaderUnlock :exec
-- LeaderUnlock releases the lock of key held by this session.
SELECT pg_advisory_unlock(sqlc.arg(key)::bigint);

-- name: BumpFence :one
-- BumpFence starts a new epoch of the job's leadership, fencing out the
-- previous leader's transactions.
INSERT INTO leader_fences (name, epoch) VALUES ($1, 1)
		ON CONFLICT (name) DO UPDATE SET epoch = leader_fences.epoch + 1 RETURNING epoch;
