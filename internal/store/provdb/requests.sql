-- Service requests (what the operator handles by hand) and the number
-- holds they take.

-- MarkNumbersForRemoval marks an account's numbers removal_requested while
-- a request to remove or port them out is open.
-- name: MarkNumbersForRemoval :execrows
UPDATE numbers SET state = 'removal_requested', updated_at = @updated_at
WHERE e164 = ANY(@numbers::text[]) AND account_id = @account_id AND state IN ('reserved', 'assigned');

-- UnmarkNumbersForRemoval gives numbers back their state when the request
-- is rejected.
-- name: UnmarkNumbersForRemoval :exec
UPDATE numbers SET state = CASE WHEN line_id IS NULL THEN 'reserved' ELSE 'assigned' END, updated_at = @updated_at
WHERE e164 = ANY(@numbers::text[]) AND account_id = @account_id AND state = 'removal_requested';

-- name: InsertRequest :exec
INSERT INTO service_requests (id, account_id, kind, state, details, created_by, created_at, updated_at)
VALUES (@id, @account_id, @kind, 'open', @details, @created_by, @created_at, @created_at);

-- name: GetRequest :one
SELECT id, account_id, kind, state, details, comments, change_id, created_by, created_at, updated_at
FROM service_requests WHERE id = $1;

-- name: LockRequest :one
SELECT id, account_id, kind, state, details, comments, change_id, created_by, created_at, updated_at
FROM service_requests WHERE id = $1 FOR UPDATE;

-- ListRequests lists requests newest first: one account's or (a null
-- account) all, in one state or (an empty state) any.
-- name: ListRequests :many
SELECT id, account_id, kind, state, details, comments, change_id, created_by, created_at, updated_at
FROM service_requests
WHERE (sqlc.narg(account_id)::uuid IS NULL OR account_id = sqlc.narg(account_id)::uuid)
	AND (@state::text = '' OR state = @state::text)
ORDER BY created_at DESC, id LIMIT 500;

-- MoveRequest sets a request's state and appends comments to it.
-- name: MoveRequest :exec
UPDATE service_requests SET state = @state, comments = comments || @comments::jsonb, updated_at = @updated_at WHERE id = @id;

-- SetRequestChange stores the change order an approval confirms, once.
-- name: SetRequestChange :execrows
UPDATE service_requests SET change_id = @change_id WHERE id = @id AND state = 'open' AND change_id IS NULL;

-- name: ClearRequestChange :exec
UPDATE service_requests SET change_id = NULL WHERE id = $1 AND state = 'open';

-- name: AccountNumbersOfAddon :many
SELECT e164 FROM numbers WHERE account_id = @account_id AND addon_code = @addon_code ORDER BY e164;

-- DropPortInNumbers removes the numbers a cancelled port-in imported that
-- nobody holds.
-- name: DropPortInNumbers :exec
DELETE FROM numbers WHERE e164 = ANY(@numbers::text[]) AND held_for = @held_for AND account_id IS NULL AND area = @area AND state = 'available';

-- name: FreeHeldNumbers :exec
UPDATE numbers SET held_for = NULL WHERE e164 = ANY(@numbers::text[]) AND held_for = @held_for;

-- name: AccountHoldsNumber :one
SELECT EXISTS (SELECT 1 FROM numbers WHERE e164 = @e164 AND account_id = @account_id);

-- name: CountRequests :many
SELECT kind, state, count(*) AS n FROM service_requests GROUP BY 1, 2;
