-- What a pbxd instance with a backend of its own (the built-in registrar)
-- applies of the lines changed recently (provisioning/follow.go).

-- ChangedLines lists the lines changed after (changed_at, id), in that
-- order.
-- name: ChangedLines :many
SELECT l.id, l.revision, l.changed_at FROM lines l
WHERE (l.changed_at, l.id) > (@changed_at::timestamptz, @after::uuid) ORDER BY l.changed_at, l.id LIMIT @n;

-- DesiredLinesByID reads the lines of ids as the PBX gets them.
-- name: DesiredLinesByID :many
SELECT l.id, a.pbx_node, a.sip_domain, l.sip_username, l.extension, p.dial_context, l.caller_id,
	l.password_enc, l.ha1_md5, l.ha1_sha256, l.state, a.status, l.revision, l.applied_revision, l.changed_at
FROM lines l JOIN accounts a ON a.id = l.account_id JOIN packages p ON p.code = l.package_code
WHERE l.id = ANY(@ids::uuid[]);
