-- Scheduled changes: decreases waiting for their subscription's period end.
-- The queries returning whole rows return the generated ScheduledChange.

-- name: InsertScheduled :exec
INSERT INTO scheduled_changes (id, account_id, subscription_id, package_code, from_quantity, to_quantity,
	remove_lines, release_numbers, effective_at, state, change_id, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11);

-- PendingScheduled lists an account's pending scheduled changes (also
-- inside provisioning's pipelined state read, through PendingScheduledSQL).
-- name: PendingScheduled :many
SELECT * FROM scheduled_changes WHERE account_id = $1 AND state = 'pending'
ORDER BY effective_at, package_code;

-- RecentScheduled lists an account's scheduled changes, pending first,
-- then the last applied or cancelled.
-- name: RecentScheduled :many
SELECT * FROM scheduled_changes WHERE account_id = $1
ORDER BY state <> 'pending', effective_at DESC, created_at DESC LIMIT 100;

-- name: CancelScheduled :one
UPDATE scheduled_changes SET state = 'cancelled', done_at = @done_at
WHERE id = @id AND account_id = @account_id AND state = 'pending'
RETURNING *;

-- name: ScheduledState :one
SELECT state FROM scheduled_changes WHERE id = @id AND account_id = @account_id;

-- DueScheduled lists the pending changes due at a time: one account's or
-- (an empty account) all.
-- name: DueScheduled :many
SELECT id FROM scheduled_changes WHERE state = 'pending' AND effective_at <= @now
	AND (@account_id::text = '' OR account_id::text = @account_id::text) ORDER BY effective_at, id;

-- ClaimScheduled locks a pending change to apply it; one being applied
-- elsewhere is skipped.
-- name: ClaimScheduled :one
SELECT account_id, subscription_id, package_code, from_quantity, to_quantity, remove_lines, release_numbers
FROM scheduled_changes WHERE id = $1 AND state = 'pending' FOR UPDATE SKIP LOCKED;

-- name: LockSubscriptionQuantity :one
SELECT quantity FROM subscriptions WHERE id = $1 FOR UPDATE;

-- DeleteLine marks a line deleted and bumps its revision for the reconciler.
-- name: DeleteLine :exec
UPDATE lines SET state = 'deleted', deleted_at = @now, revision = revision + 1, changed_at = @now WHERE id = @id;

-- name: UnbindLine :exec
DELETE FROM device_lines WHERE line_id = $1;

-- name: MarkScheduledApplied :exec
UPDATE scheduled_changes SET state = 'applied', done_at = @done_at, result = @result WHERE id = @id;
