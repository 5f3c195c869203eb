-- Account moves between PBX nodes (provisioning/move.go).

-- ActiveMoveTarget is the node the account's move not done goes to.
-- name: ActiveMoveTarget :one
SELECT to_node FROM account_moves WHERE account_id = @account_id AND state <> 'done';

-- name: SetAccountNode :exec
UPDATE accounts SET pbx_node = @pbx_node WHERE id = @id;

-- MoveLines gives every live line of the account a new revision, never
-- applied: the new node never held them.
-- name: MoveLines :execrows
UPDATE lines SET revision = revision + 1, applied_revision = 0, changed_at = @changed_at
WHERE account_id = @account_id AND state <> 'deleted';

-- name: InsertMove :exec
INSERT INTO account_moves (id, account_id, from_node, to_node, state, lines_total, created_at, updated_at)
VALUES (@id, @account_id, @from_node, @to_node, @state, @lines_total, @created_at, @created_at);

-- NodeRoom counts the live lines on a node (those of accounts with no
-- node on the default node) and the account's own.
-- name: NodeRoom :one
SELECT count(*) FILTER (WHERE a.pbx_node = @node::text OR (@node = @default_node::text AND a.pbx_node = '')) AS on_node,
	count(*) FILTER (WHERE a.id = @account_id::uuid) AS mine
FROM lines l JOIN accounts a ON a.id = l.account_id WHERE l.state <> 'deleted';

-- CurrentMove is the account's move not done, or else its last one.
-- name: CurrentMove :one
SELECT * FROM account_moves WHERE account_id = @account_id
ORDER BY state = 'done', created_at DESC LIMIT 1;

-- name: GetMove :one
SELECT * FROM account_moves WHERE id = @id AND account_id = @account_id;

-- CopyProgress counts the account's live lines and those whose latest
-- revision is applied.
-- name: CopyProgress :one
SELECT count(*) AS total, count(*) FILTER (WHERE applied_revision >= revision) AS done
FROM lines WHERE account_id = @account_id AND state <> 'deleted';

-- PhoneNode is the node the account's phones use: the one its move
-- copying comes from, else its own.
-- name: PhoneNode :one
SELECT coalesce((SELECT m.from_node FROM account_moves m WHERE m.account_id = a.id AND m.state = 'copying'), a.pbx_node)::text AS node
FROM accounts a WHERE a.id = @id;

-- name: ActiveMoves :many
SELECT * FROM account_moves WHERE state <> 'done' ORDER BY created_at;

-- name: RecordMoveProgress :execrows
UPDATE account_moves SET lines_total = @lines_total, lines_done = @lines_done, state = @state, updated_at = @updated_at
WHERE id = @id AND state = 'copying';

-- RoutesOnNode counts the account's numbers still routed on node (those
-- routed with no node on the default node).
-- name: RoutesOnNode :one
SELECT count(*) FROM numbers n JOIN lines l ON l.id = n.line_id
WHERE l.account_id = @account_id AND n.routed_to <> ''
	AND (n.routed_node = @node::text OR (@node = @default_node::text AND n.routed_node = ''));

-- LinesToRemove are the next lines, in id order after upto, a move
-- removes from the old node: live ones, those deleted since the move
-- started and those with a removal not applied.
-- name: LinesToRemove :many
SELECT id::text FROM lines WHERE account_id = @account_id AND id > @upto::uuid
	AND (state <> 'deleted' OR deleted_at >= @since OR revision > applied_revision)
ORDER BY id LIMIT @n;

-- name: EndMove :execrows
UPDATE account_moves SET state = 'done', updated_at = @finished_at, finished_at = @finished_at
WHERE id = @id AND state = 'removing';

-- RecordMoveRemoval moves the removal cursor, only forward.
-- name: RecordMoveRemoval :exec
UPDATE account_moves SET removed_upto = @removed_upto::uuid, lines_removed = lines_removed + sqlc.arg(removed)::int, updated_at = @updated_at
WHERE id = @id AND state = 'removing' AND (removed_upto IS NULL OR removed_upto < @removed_upto::uuid);

-- MovingLines are the lines of accounts whose move is not done, with the
-- node the move comes from.
-- name: MovingLines :many
SELECT l.id::text AS line_id, m.from_node FROM account_moves m JOIN lines l ON l.account_id = m.account_id
WHERE m.state <> 'done';
