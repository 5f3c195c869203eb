-- Change orders: a preview stored with the fingerprint of everything it
-- was computed from, then confirmed with what it applied. The preview's
-- insert, the confirm's status read and its final update go in
-- provisioning's pipelined batches (ChangeOrderSQL constants).

-- InsertChangeOrder stores a preview ($1 id, $2 account, $3 request,
-- $4 preview, $5 basis, $6 created at).
-- name: InsertChangeOrder :exec
INSERT INTO change_orders (id, account_id, status, request, preview, basis, created_at)
VALUES ($1, $2, 'previewed', $3, $4, $5, $6);

-- name: ChangeOrderPreview :one
SELECT preview, status FROM change_orders WHERE id = $1;

-- ChangeOrderToConfirm is what confirm reads once of an order: the fields
-- that never change after the preview.
-- name: ChangeOrderToConfirm :one
SELECT account_id, basis, request FROM change_orders WHERE id = $1;

-- ChangeOrderStatus is read under the account lock: a concurrent confirm
-- of the same order may have finished.
-- name: ChangeOrderStatus :one
SELECT status, result FROM change_orders WHERE id = $1;

-- ConfirmChangeOrder ($1 id, $2 result, $3 confirmed at).
-- name: ConfirmChangeOrder :exec
UPDATE change_orders SET status = 'confirmed', result = $2, confirmed_at = $3 WHERE id = $1;

-- SwapLine moves a line to another package, keeping its number and
-- password.
-- name: SwapLine :exec
UPDATE lines SET package_code = @package_code, revision = revision + 1, changed_at = @changed_at WHERE id = @id;
