-- An account's billing overview (billing/summary.go), read in one
-- repeatable-read transaction.

-- name: SummaryAccount :one
SELECT id, name, currency, timezone, vat_bp, payment_mode, billing_address FROM accounts WHERE id = $1;

-- name: SummarySubscriptions :many
SELECT s.id, s.package_code, s.cycle, s.quantity, s.status, s.period_price_minor, s.period_start, s.period_end,
    s.next_payment_at, s.trial_end,
    (SELECT count(*) FROM lines l WHERE l.account_id = s.account_id AND l.package_code = s.package_code AND l.state <> 'deleted') AS used
FROM subscriptions s JOIN packages p ON p.code = s.package_code
WHERE s.account_id = $1 ORDER BY p.position, s.package_code;

-- name: PendingBalance :one
SELECT coalesce(sum(amount_minor) FILTER (WHERE amount_minor < 0), 0)::bigint AS credits,
    coalesce(sum(amount_minor) FILTER (WHERE amount_minor > 0), 0)::bigint AS charges
FROM pending_items WHERE account_id = $1 AND invoice_id IS NULL;

-- name: OpenInvoiceTotals :one
SELECT count(*) AS n, coalesce(sum(gross_minor), 0)::bigint AS gross_minor FROM invoices WHERE account_id = $1 AND status = 'open';

-- name: PaymentMethodView :one
SELECT id, gateway, label, is_default, created_at FROM payment_methods WHERE id = $1;
