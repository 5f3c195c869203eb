-- Payment methods, dunning retries and settling invoices (billing/pay.go).

-- name: LockAccountID :one
-- The account row lock serialises default changes of one account.
SELECT id FROM accounts WHERE id = $1 FOR NO KEY UPDATE;

-- name: HasDefaultMethod :one
SELECT EXISTS (SELECT 1 FROM payment_methods WHERE account_id = $1 AND is_default AND deleted_at IS NULL);

-- name: UnsetDefaultMethod :exec
UPDATE payment_methods SET is_default = false WHERE account_id = $1 AND is_default;

-- name: InsertPaymentMethod :exec
INSERT INTO payment_methods (id, account_id, gateway, token, label, is_default, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: ReopenDunning :exec
-- A new default method is the customer's answer to dunning: the account's
-- open invoices are retried at the next pass, even after the last retry.
UPDATE dunning d SET next_retry_at = sqlc.arg(now)::timestamptz, exhausted = false
FROM invoices i WHERE i.id = d.invoice_id AND i.account_id = sqlc.arg(account_id) AND i.status = 'open';

-- name: OverdueInvoices :many
SELECT i.id::text FROM invoices i JOIN accounts a ON a.id = i.account_id
WHERE i.account_id = $1 AND a.payment_mode = 'card' AND i.status = 'open' AND i.kind = 'invoice' AND i.gross_minor > 0
ORDER BY i.issued_at, i.number;

-- name: InvoiceStatus :one
SELECT status FROM invoices WHERE id = $1;

-- name: PaymentMethods :many
SELECT id, gateway, label, is_default, created_at FROM payment_methods
WHERE account_id = $1 AND deleted_at IS NULL ORDER BY is_default DESC, created_at, id;

-- name: DeletePaymentMethod :execrows
UPDATE payment_methods SET deleted_at = sqlc.arg(deleted_at)::timestamptz, is_default = false
WHERE id = sqlc.arg(id) AND account_id = sqlc.arg(account_id) AND deleted_at IS NULL;

-- name: DuePayments :many
-- Open card invoices never attempted (a renewal interrupted between issue
-- and charge) and dunning retries whose time has come.
SELECT i.id::text AS invoice_id FROM invoices i JOIN accounts a ON a.id = i.account_id
WHERE i.status = 'open' AND i.kind = 'invoice' AND a.payment_mode = 'card' AND i.gross_minor > 0
  AND NOT EXISTS (SELECT 1 FROM payment_attempts p WHERE p.invoice_id = i.id)
  AND NOT EXISTS (SELECT 1 FROM dunning d WHERE d.invoice_id = i.id)
UNION
SELECT dn.invoice_id::text FROM dunning dn WHERE NOT dn.exhausted AND dn.next_retry_at <= sqlc.arg(now)::timestamptz;

-- name: LockInvoiceForRetry :one
-- Skips an invoice another transaction holds (being handled elsewhere);
-- in_flight: a charge whose answer is not recorded yet.
SELECT i.account_id, i.status, i.currency, i.gross_minor, d.exhausted,
    EXISTS (SELECT 1 FROM payment_attempts p WHERE p.invoice_id = i.id AND p.outcome = 'unknown') AS in_flight
FROM invoices i LEFT JOIN dunning d ON d.invoice_id = i.id WHERE i.id = $1 FOR UPDATE OF i SKIP LOCKED;

-- name: EndDunning :exec
UPDATE dunning SET next_retry_at = NULL WHERE invoice_id = $1;

-- name: CountAttempts :one
SELECT count(*) FROM payment_attempts WHERE invoice_id = sqlc.arg(invoice_id)::uuid;

-- name: SetRenewedSubscriptionsStatus :many
-- Suspends (inactive) or reactivates the subscriptions an invoice renewed.
UPDATE subscriptions s SET status = sqlc.arg(to_status), version = version + 1
FROM renewals r WHERE r.invoice_id = sqlc.arg(invoice_id)::uuid AND s.id = r.subscription_id AND s.status = sqlc.arg(from_status)
RETURNING s.id;

-- name: MarkInvoicePaid :execrows
UPDATE invoices SET status = 'paid', payment_ref = sqlc.arg(payment_ref), paid_at = sqlc.arg(paid_at)::timestamptz
WHERE id = sqlc.arg(id) AND status = 'open';

-- name: LockInvoice :one
SELECT account_id, status, gross_minor FROM invoices WHERE id = $1 FOR UPDATE;

-- name: PaymentInFlight :one
-- A card charge whose answer is not recorded yet.
SELECT EXISTS (SELECT 1 FROM payment_attempts WHERE invoice_id = sqlc.arg(invoice_id)::uuid AND outcome = 'unknown');
