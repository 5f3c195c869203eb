-- Inbound number routes (Asterisk): what pbxd last set per number.

-- RouteRows reads the numbers on a line or routed, with where they should
-- ring: routed only while the line and its account are active. A node's
-- reconciler (node <> '') reads only the numbers on a line of its accounts
-- or last routed on it; the default node also takes those with no node.
-- name: RouteRows :many
SELECT n.e164, n.routed_node, n.routed_to, coalesce(a.pbx_node, '')::text AS node, coalesce(a.sip_domain, '')::text AS sip_domain,
	coalesce(l.sip_username, '')::text AS sip_username, coalesce(l.state = 'active' AND a.status = 'active', false)::boolean AS active
FROM numbers n LEFT JOIN lines l ON l.id = n.line_id LEFT JOIN accounts a ON a.id = l.account_id
WHERE (n.line_id IS NOT NULL OR n.routed_to <> '')
	AND (@node::text = ''
		OR (l.id IS NOT NULL AND (a.pbx_node = @node OR (@is_default::boolean AND a.pbx_node = '')))
		OR (n.routed_to <> '' AND (n.routed_node = @node OR (@is_default AND n.routed_node = ''))))
ORDER BY n.e164;

-- SetNumberRoute records what was set. A node's reconciler passes its
-- node and lease epoch: the write fails (PX002) unless the lease is still
-- held. CASE keeps the fence unevaluated without a node.
-- name: SetNumberRoute :exec
UPDATE numbers SET routed_node = @routed_node, routed_to = @routed_to
WHERE e164 = @e164
	AND CASE WHEN @fence_node::text = '' THEN true ELSE (SELECT pbxd_node_fence(@fence_node, @fence_epoch::bigint)) END;
