-- Hardware sold through the catalog: orders (paid by card at once) and
-- one unit per phone, awaiting its MAC until shipped.

-- LockHardwareItem reads and locks a catalog item being sold as hardware,
-- so concurrent orders count its stock one after the other.
-- name: LockHardwareItem :one
SELECT kind, price_minor, currency, stock, retired FROM packages WHERE code = $1 FOR UPDATE;

-- HardwareSold counts the units of an item ordered and not failed.
-- name: HardwareSold :one
SELECT coalesce(sum(quantity), 0)::int AS sold FROM hardware_orders WHERE item_code = $1 AND state <> 'failed';

-- name: InsertHardwareOrder :exec
INSERT INTO hardware_orders (id, account_id, item_code, quantity, unit_minor, currency, state, created_by, created_at)
VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8);

-- name: PendingHardwareOrder :one
SELECT o.account_id, o.item_code, p.name, o.quantity, o.unit_minor
FROM hardware_orders o JOIN packages p ON p.code = o.item_code WHERE o.id = $1 AND o.state = 'pending';

-- name: FailHardwareOrder :execrows
UPDATE hardware_orders SET state = 'failed', detail = @detail, settled_at = @settled_at WHERE id = @id AND state = 'pending';

-- name: PayHardwareOrder :execrows
UPDATE hardware_orders SET state = 'paid', invoice_id = @invoice_id, settled_at = @settled_at WHERE id = @id AND state = 'pending';

-- name: InsertHardwareUnit :exec
INSERT INTO hardware_units (id, order_id, account_id, item_code, state, created_at)
VALUES ($1, $2, $3, $4, 'awaiting_mac', $5);

-- StaleHardwareOrders are the orders still pending since before a time.
-- name: StaleHardwareOrders :many
SELECT id FROM hardware_orders WHERE state = 'pending' AND created_at < $1 ORDER BY created_at;

-- name: ListHardwareOrders :many
SELECT id, item_code, quantity, unit_minor, currency, state, invoice_id, detail, created_at, settled_at
FROM hardware_orders WHERE account_id = $1 ORDER BY created_at DESC, id;

-- name: ListHardwareUnits :many
SELECT id, order_id, item_code, state, mac, device_id, created_at, shipped_at
FROM hardware_units WHERE account_id = $1 ORDER BY created_at, id;

-- name: HardwareOrderAccount :one
SELECT account_id FROM hardware_orders WHERE id = $1;

-- HardwareUnitToShip is a unit with the vendor and model its item
-- provisions as.
-- name: HardwareUnitToShip :one
SELECT p.vendor, p.model, u.state FROM hardware_units u JOIN packages p ON p.code = u.item_code
WHERE u.id = @id AND u.account_id = @account_id;

-- name: ShipHardwareUnit :execrows
UPDATE hardware_units SET state = 'shipped', device_id = @device_id, mac = @mac, shipped_at = @shipped_at
WHERE id = @id AND account_id = @account_id AND state = 'awaiting_mac';
