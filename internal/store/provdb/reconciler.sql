-- The reconciler's reads of the desired lines and its records of what the
-- PBX holds (provisioning/reconciler.go). A node's reconciler (node <> '')
-- reads only the lines of accounts on its node; the default node also
-- takes the accounts with no node. Its writes pass its node and lease
-- epoch: they fail (PX002) unless the lease is still held; CASE keeps the
-- fence unevaluated without a node, and the sub-select evaluates it once
-- per statement.

-- PendingLines are the lines with a revision not applied, oldest change
-- first.
-- name: PendingLines :many
SELECT l.id, a.pbx_node, a.sip_domain, l.sip_username, l.extension, p.dial_context, l.caller_id,
	l.password_enc, l.ha1_md5, l.ha1_sha256, l.state, a.status, l.revision, l.applied_revision, l.changed_at
FROM lines l JOIN accounts a ON a.id = l.account_id JOIN packages p ON p.code = l.package_code
WHERE l.revision > l.applied_revision
	AND (@node::text = '' OR a.pbx_node = @node OR (@is_default::boolean AND a.pbx_node = ''))
ORDER BY l.changed_at LIMIT @n;

-- NewLinesToPrepare are the live lines the PBX never held, oldest change
-- first.
-- name: NewLinesToPrepare :many
SELECT l.id, a.pbx_node, a.sip_domain, l.sip_username, l.extension, p.dial_context, l.caller_id,
	l.password_enc, l.ha1_md5, l.ha1_sha256, l.state, a.status, l.revision, l.applied_revision, l.changed_at
FROM lines l JOIN accounts a ON a.id = l.account_id JOIN packages p ON p.code = l.package_code
WHERE l.applied_revision = 0 AND l.revision > 0 AND l.state <> 'deleted'
	AND (@node::text = '' OR a.pbx_node = @node OR (@is_default::boolean AND a.pbx_node = ''))
ORDER BY l.changed_at LIMIT @n;

-- DesiredLines are what a full resync compares the PBX with: the live
-- lines and the removals not applied.
-- name: DesiredLines :many
SELECT l.id, a.pbx_node, a.sip_domain, l.sip_username, l.extension, p.dial_context, l.caller_id,
	l.password_enc, l.ha1_md5, l.ha1_sha256, l.state, a.status, l.revision, l.applied_revision, l.changed_at
FROM lines l JOIN accounts a ON a.id = l.account_id JOIN packages p ON p.code = l.package_code
WHERE (l.state <> 'deleted' OR l.revision > l.applied_revision)
	AND (@node::text = '' OR a.pbx_node = @node OR (@is_default::boolean AND a.pbx_node = ''));

-- RecordApplied records the revisions applied; a newer revision committed
-- meanwhile stays pending.
-- name: RecordApplied :exec
UPDATE lines l SET applied_revision = greatest(l.applied_revision, v.rev), apply_error = '', applied_at = @applied_at
FROM (SELECT unnest(@ids::uuid[]) AS id, unnest(@revisions::bigint[]) AS rev) AS v WHERE l.id = v.id
	AND CASE WHEN @fence_node::text = '' THEN true ELSE (SELECT pbxd_node_fence(@fence_node, @fence_epoch::bigint)) END;

-- name: SetApplyError :exec
UPDATE lines SET apply_error = @apply_error WHERE id = @id
	AND CASE WHEN @fence_node::text = '' THEN true ELSE (SELECT pbxd_node_fence(@fence_node, @fence_epoch::bigint)) END;

-- SetRegistration stores a line's registration state; the id comes from
-- the PBX, compared as text.
-- name: SetRegistration :exec
UPDATE lines SET reg_contacts = @reg_contacts, reg_updated_at = @reg_updated_at WHERE id::text = @line_id::text
	AND CASE WHEN @fence_node::text = '' THEN true ELSE (SELECT pbxd_node_fence(@fence_node, @fence_epoch::bigint)) END;
