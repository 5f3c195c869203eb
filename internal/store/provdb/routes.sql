-- Inbound number routes (Asterisk): what pbxd last set per number.

-- RouteRows reads the numbers on a line or routed, with where they should
-- ring: routed only while the line and its account are active.
-- name: RouteRows :many
SELECT n.e164, n.routed_node, n.routed_to, coalesce(a.pbx_node, '')::text AS node, coalesce(a.sip_domain, '')::text AS sip_domain,
	coalesce(l.sip_username, '')::text AS sip_username, coalesce(l.state = 'active' AND a.status = 'active', false)::boolean AS active
FROM numbers n LEFT JOIN lines l ON l.id = n.line_id LEFT JOIN accounts a ON a.id = l.account_id
WHERE n.line_id IS NOT NULL OR n.routed_to <> '' ORDER BY n.e164;

-- name: SetNumberRoute :exec
UPDATE numbers SET routed_node = @routed_node, routed_to = @routed_to WHERE e164 = @e164;
