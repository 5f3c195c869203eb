-- A confirmed change's money side (billing/quote.go). ChangePackages and
-- LinkChangePayment are sent in one pgx batch (RecordChangeBatch*SQL).

-- name: ChangePackages :many
-- The packages' names and unit prices (the subscription's, else the
-- catalog's).
SELECT p.code, (p.name || CASE WHEN s.cycle = 'annual' THEN ' (annual)' ELSE '' END)::text AS name,
    coalesce(s.period_price_minor, p.price_minor)::bigint AS unit_minor
FROM packages p LEFT JOIN subscriptions s ON s.package_code = p.code AND s.account_id = $1
WHERE p.code = ANY($2::text[]);

-- name: LinkChangePayment :one
-- The change's payment, linked to its invoice as it is read (the link is
-- deferred to commit).
UPDATE payment_attempts SET invoice_id = $2::uuid
WHERE change_id = $1::uuid AND invoice_id IS NULL AND outcome IN ('approved', 'pending') AND refund_state IS NULL
RETURNING outcome, reference, amount_minor;

-- name: InsertChangeItem :exec
INSERT INTO pending_items (id, account_id, package_code, description, quantity, unit_minor, amount_minor, currency,
    period_start, period_end, note, created_at, change_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13);

-- name: DefaultMethod :one
SELECT id, gateway, token FROM payment_methods WHERE account_id = $1 AND is_default AND deleted_at IS NULL;

-- name: InsertAttempt :exec
INSERT INTO payment_attempts (id, invoice_id, payment_method_id, at, amount_minor, outcome, reference, detail)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8);
