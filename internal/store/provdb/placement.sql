-- Placement of accounts on PBX nodes (provisioning/placement.go).

-- NodeLoads counts the accounts not closed and their live lines per node.
-- name: NodeLoads :many
SELECT a.pbx_node, count(DISTINCT a.id) AS accounts, count(l.id) AS lines
FROM accounts a LEFT JOIN lines l ON l.account_id = a.id AND l.state <> 'deleted'
WHERE a.status <> 'closed' GROUP BY a.pbx_node;
