-- Inbound number routes (Asterisk): what pbxd last set per number.

-- RouteRows reads the numbers on a line or routed, with where they should
-- ring: routed only while the line and its account are active, on the
-- account's node, or on the node it moves from while its move copies the
-- lines (provisioning/move.go). A node's
-- reconciler (node <> '') reads only the numbers on a line of its accounts
-- or last routed on it; the default node also takes those with no node.
-- name: RouteRows :many
WITH r AS (
	SELECT n.e164, n.routed_node, n.routed_to,
		coalesce((SELECT m.from_node FROM account_moves m WHERE m.account_id = a.id AND m.state = 'copying'), a.pbx_node, '')::text AS node,
		coalesce(a.sip_domain, '')::text AS sip_domain, coalesce(l.sip_username, '')::text AS sip_username,
		coalesce(l.state = 'active' AND a.status = 'active', false)::boolean AS active, l.id IS NOT NULL AS on_line
	FROM numbers n LEFT JOIN lines l ON l.id = n.line_id LEFT JOIN accounts a ON a.id = l.account_id
	WHERE n.line_id IS NOT NULL OR n.routed_to <> ''
)
SELECT r.e164, r.routed_node, r.routed_to, r.node, r.sip_domain, r.sip_username, r.active FROM r
WHERE @node::text = ''
	OR (r.on_line AND (r.node = @node OR (@is_default::boolean AND r.node = '')))
	OR (r.routed_to <> '' AND (r.routed_node = @node OR (@is_default AND r.routed_node = '')))
ORDER BY r.e164;

-- SetNumberRoute records what was set. A node's reconciler passes its
-- node and lease epoch: the write fails (PX002) unless the lease is still
-- held. CASE keeps the fence unevaluated without a node.
-- name: SetNumberRoute :exec
UPDATE numbers SET routed_node = @routed_node, routed_to = @routed_to
WHERE e164 = @e164
	AND CASE WHEN @fence_node::text = '' THEN true ELSE (SELECT pbxd_node_fence(@fence_node, @fence_epoch::bigint)) END;
