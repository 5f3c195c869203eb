-- One-time purchases (billing/oneoff.go).

-- name: InvoiceExists :one
SELECT EXISTS (SELECT 1 FROM invoices WHERE id = $1);

-- name: LinkAttemptInvoice :exec
UPDATE payment_attempts SET invoice_id = sqlc.arg(invoice_id)::uuid WHERE id = sqlc.arg(id);

-- name: AttemptByKey :one
SELECT id::text FROM payment_attempts WHERE idempotency_key = sqlc.arg(idempotency_key)::text;
