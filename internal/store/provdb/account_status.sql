-- An account's status and seat preference, set by the operator or its owner.

-- name: SetAccountStatus :exec
UPDATE accounts SET status = @status WHERE id = @id;

-- SuspendAccountLines takes every active line of the account off the PBX.
-- name: SuspendAccountLines :execrows
UPDATE lines SET state = 'suspended', revision = revision + 1, changed_at = @changed_at
WHERE account_id = @account_id AND state = 'active';

-- ResumeAccountLines brings back the suspended lines of subscriptions that
-- are not inactive (dunning's own suspensions stay).
-- name: ResumeAccountLines :execrows
UPDATE lines l SET state = 'active', revision = revision + 1, changed_at = @changed_at
WHERE l.account_id = @account_id AND l.state = 'suspended' AND NOT EXISTS (SELECT 1 FROM subscriptions s
	WHERE s.account_id = l.account_id AND s.package_code = l.package_code AND s.status = 'inactive');

-- name: SetSeatPreference :exec
UPDATE accounts SET seat_preference = @seat_preference WHERE id = @id;
