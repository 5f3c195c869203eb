-- The number inventory (DIDs): imported by the operator, sold through
-- change orders, assigned to lines. A released number ages (quarantine)
-- before it is sold again: an aging number whose aging_until has passed
-- shows, and sells, as available.

-- ImportNumbers adds numbers as available, leaving those already there.
-- name: ImportNumbers :execrows
INSERT INTO numbers (e164, country, area, kind, addon_code, setup_fee_minor, state, imported_at, updated_at)
SELECT e, @country, @area, @kind, @addon_code, @setup_fee_minor, 'available', @now::timestamptz, @now::timestamptz
FROM unnest(@numbers::text[]) AS e
ON CONFLICT (e164) DO NOTHING;

-- HoldNumbers holds free numbers for an account's port-in.
-- name: HoldNumbers :exec
UPDATE numbers SET held_for = @held_for WHERE e164 = ANY(@numbers::text[]) AND account_id IS NULL AND held_for IS NULL;

-- ListNumbers and AccountNumber give each number's effective state (an
-- aging number past its quarantine is available).
-- ListNumbers lists the inventory in number order, or one account's
-- numbers (a null account: all), filtered by prefix, kind and effective
-- state ('' : any).
-- name: ListNumbers :many
SELECT n.e164, n.country, n.area, n.kind, n.addon_code, n.setup_fee_minor,
	(CASE WHEN n.state = 'aging' AND n.aging_until <= @now::timestamptz THEN 'available' ELSE n.state END)::text AS state,
	n.account_id, n.line_id, l.extension, n.caller_id,
	n.aging_until, n.held_for
FROM numbers n LEFT JOIN lines l ON l.id = n.line_id
WHERE (sqlc.narg(account_id)::uuid IS NULL OR n.account_id = sqlc.narg(account_id)::uuid)
	AND n.e164 LIKE @prefix::text || '%'
	AND (@kind::text = '' OR n.kind = @kind::text)
	AND (@state::text = '' OR CASE WHEN n.state = 'aging' AND n.aging_until <= @now::timestamptz THEN 'available' ELSE n.state END = @state::text)
ORDER BY n.e164 LIMIT @lim;

-- name: AccountNumber :one
SELECT n.e164, n.country, n.area, n.kind, n.addon_code, n.setup_fee_minor,
	(CASE WHEN n.state = 'aging' AND n.aging_until <= @now::timestamptz THEN 'available' ELSE n.state END)::text AS state,
	n.account_id, n.line_id, l.extension, n.caller_id,
	n.aging_until, n.held_for
FROM numbers n LEFT JOIN lines l ON l.id = n.line_id
WHERE n.e164 = @e164 AND n.account_id = @account_id;

-- name: LockAccountNumberState :one
SELECT state FROM numbers WHERE e164 = @e164 AND account_id = @account_id FOR UPDATE;

-- MainLine is the account's live line with the lowest extension.
-- name: MainLine :one
SELECT id FROM lines WHERE account_id = $1 AND state <> 'deleted' ORDER BY extension LIMIT 1;

-- name: LiveLineID :one
SELECT id FROM lines WHERE id = @id AND account_id = @account_id AND state <> 'deleted';

-- name: AssignNumber :exec
UPDATE numbers SET state = 'assigned', line_id = @line_id, caller_id = @caller_id, updated_at = @updated_at WHERE e164 = @e164;

-- ClearOtherCallerIDs keeps one caller id per line.
-- name: ClearOtherCallerIDs :exec
UPDATE numbers SET caller_id = false, updated_at = @updated_at WHERE line_id = @line_id AND e164 <> @e164 AND caller_id;

-- name: UnassignNumber :execrows
UPDATE numbers SET state = CASE WHEN state = 'assigned' THEN 'reserved' ELSE state END,
	line_id = NULL, caller_id = false, updated_at = @updated_at WHERE e164 = @e164 AND account_id = @account_id;

-- name: CountNumbers :many
SELECT n.kind, (CASE WHEN n.state = 'aging' AND n.aging_until <= @now::timestamptz THEN 'available' ELSE n.state END)::text AS state, count(*) AS n
FROM numbers n GROUP BY 1, 2;
