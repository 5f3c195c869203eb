-- Numbers in change orders: planning reads what is free, confirming claims
-- it. A number is free to sell when it is available, or aging with its
-- quarantine over, and not held for a port-in (except for the account the
-- port-in holds it for).

-- ChosenNumber is a number a customer picked, and whether it is free for
-- the account.
-- name: ChosenNumber :one
SELECT n.kind, n.addon_code, n.setup_fee_minor,
	((n.state = 'available' OR (n.state = 'aging' AND n.aging_until <= @now::timestamptz)) AND (n.held_for IS NULL OR n.held_for = @account_id::uuid))::boolean AS free
FROM numbers n WHERE n.e164 = @e164;

-- FirstFreeNumbers reads the first free local numbers of a prefix through
-- the index, never counting them in full (an inventory may hold millions).
-- name: FirstFreeNumbers :many
SELECT n.addon_code, n.setup_fee_minor FROM numbers n
WHERE n.e164 LIKE @prefix::text || '%' AND n.kind = 'local'
	AND (n.state = 'available' OR (n.state = 'aging' AND n.aging_until <= @now::timestamptz)) AND n.held_for IS NULL
	AND (@addon::text = '' OR n.addon_code = @addon::text)
ORDER BY n.e164 LIMIT @lim;

-- name: AccountNumberAddon :one
SELECT addon_code FROM numbers WHERE e164 = @e164 AND account_id = @account_id;

-- UnassignNumbersOfLines gives the numbers on removed lines back to the
-- account, unassigned.
-- name: UnassignNumbersOfLines :exec
UPDATE numbers SET state = CASE WHEN state = 'assigned' THEN 'reserved' ELSE state END,
	line_id = NULL, caller_id = false, updated_at = @updated_at WHERE line_id = ANY(@line_ids::uuid[]);

-- name: MarkNumberForRemoval :exec
UPDATE numbers SET state = 'removal_requested', updated_at = @updated_at WHERE e164 = @e164;

-- ReleaseNumber sends a number into quarantine.
-- name: ReleaseNumber :exec
UPDATE numbers SET state = 'aging', account_id = NULL, line_id = NULL, caller_id = false,
	change_id = @change_id, aging_until = @aging_until, updated_at = @updated_at WHERE e164 = @e164;

-- LockChosenNumber locks a chosen number if it is still free for the account.
-- name: LockChosenNumber :many
SELECT n.e164 FROM numbers n WHERE n.e164 = @e164
	AND (n.state = 'available' OR (n.state = 'aging' AND n.aging_until <= @now::timestamptz)) AND (n.held_for IS NULL OR n.held_for = @account_id::uuid)
FOR UPDATE;

-- ClaimFreeNumbers claims free numbers of a prefix; SKIP LOCKED: concurrent
-- orders never get the same number and never wait for each other.
-- name: ClaimFreeNumbers :many
SELECT n.e164 FROM numbers n WHERE n.e164 LIKE @prefix::text || '%' AND n.kind = 'local'
	AND n.addon_code = @addon_code
	AND (n.state = 'available' OR (n.state = 'aging' AND n.aging_until <= @now::timestamptz)) AND n.held_for IS NULL
ORDER BY n.e164 LIMIT @lim FOR UPDATE SKIP LOCKED;

-- name: ReserveNumbers :exec
UPDATE numbers SET state = 'reserved', account_id = @account_id, change_id = @change_id, aging_until = NULL, held_for = NULL, updated_at = @updated_at
WHERE e164 = ANY(@numbers::text[]);
