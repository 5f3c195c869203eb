-- Lines: extensions with their SIP credentials. Every change the PBX must
-- follow bumps revision (the reconciler's outbox) in the same transaction.

-- name: InsertLine :exec
INSERT INTO lines (id, account_id, package_code, extension, sip_username, password_enc,
	ha1_md5, ha1_sha256, caller_id, state, changed_at, created_at)
VALUES (@id, @account_id, @package_code, @extension, @sip_username, @password_enc, @ha1_md5, @ha1_sha256, @caller_id,
	'active', @created_at, @created_at);

-- UsedExtensions lists, in order, the numbers an account's live lines use
-- as extension or (when numeric) SIP username.
-- name: UsedExtensions :many
SELECT l.extension FROM lines l WHERE l.account_id = @account_id::uuid AND l.state <> 'deleted'
UNION SELECT u.sip_username::int FROM lines u WHERE u.account_id = @account_id::uuid AND u.state <> 'deleted' AND u.sip_username ~ '^[0-9]{1,9}$'
ORDER BY 1;

-- AccountLines lists an account's live lines by extension, or (with an
-- id) that one line, as the API shows them.
-- name: AccountLines :many
SELECT l.id, l.account_id, l.extension, l.package_code, a.sip_domain, l.sip_username, l.caller_id, l.state,
	l.reg_contacts, (l.revision = l.applied_revision)::boolean AS pbx_synced, l.apply_error, l.applied_at, l.created_at, l.reg_updated_at,
	d.mac AS device_mac,
	coalesce((SELECT array_agg(n.e164 ORDER BY n.e164) FROM numbers n WHERE n.line_id = l.id), '{}')::text[] AS numbers,
	coalesce((SELECT n.e164 FROM numbers n WHERE n.line_id = l.id AND n.caller_id LIMIT 1), '')::text AS caller_id_number
FROM lines l JOIN accounts a ON a.id = l.account_id
	LEFT JOIN device_lines dl ON dl.line_id = l.id LEFT JOIN devices d ON d.id = dl.device_id -- a line is on one phone at most
WHERE l.account_id = @account_id AND (sqlc.narg(id)::uuid IS NULL OR l.id = sqlc.narg(id)::uuid) AND l.state <> 'deleted'
ORDER BY l.extension;

-- name: LinePassword :one
SELECT password_enc FROM lines WHERE id = @id AND account_id = @account_id AND state <> 'deleted';

-- LockLineCredentials locks a live line to give it a new password.
-- name: LockLineCredentials :one
SELECT l.sip_username, a.sip_domain FROM lines l JOIN accounts a ON a.id = l.account_id
	LEFT JOIN device_lines dl ON dl.line_id = l.id LEFT JOIN devices d ON d.id = dl.device_id
WHERE l.id = @id AND l.account_id = @account_id AND l.state <> 'deleted' FOR UPDATE OF l;

-- name: SetLinePassword :exec
UPDATE lines SET password_enc = @password_enc, ha1_md5 = @ha1_md5, ha1_sha256 = @ha1_sha256, revision = revision + 1, changed_at = @changed_at
WHERE id = @id;

-- name: SetLineExtension :execrows
UPDATE lines SET extension = @extension, revision = revision + 1, changed_at = @changed_at
WHERE id = @id AND account_id = @account_id AND state <> 'deleted';

-- name: SubscriptionAccount :one
SELECT account_id FROM subscriptions WHERE id = $1;

-- SwitchSubscriptionLines moves the lines of one subscription from one
-- state to another (billing's dunning suspends and resumes them).
-- name: SwitchSubscriptionLines :execrows
UPDATE lines l SET state = @to_state, revision = revision + 1, changed_at = @changed_at
FROM subscriptions s WHERE s.id = @subscription_id AND l.account_id = s.account_id AND l.package_code = s.package_code AND l.state = @from_state;

-- CountLines counts the lines not deleted, by state (the pbxd_lines gauge).
-- name: CountLines :many
SELECT state, count(*) AS n FROM lines WHERE state <> 'deleted' GROUP BY state;
