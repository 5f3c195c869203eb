-- Credit notes (billing/credit.go).

-- name: LockInvoiceForCredit :one
SELECT i.status, a.timezone FROM invoices i JOIN accounts a ON a.id = i.account_id
WHERE i.id = $1 FOR UPDATE OF i;

-- name: InvoiceCredited :one
SELECT EXISTS (SELECT 1 FROM invoices WHERE corrects = sqlc.arg(id)::uuid);

-- name: VoidInvoice :exec
UPDATE invoices SET status = 'void' WHERE id = $1;

-- name: InsertCreditItem :exec
-- A paid invoice's credit waits for the account's next bill.
INSERT INTO pending_items (id, account_id, package_code, description, quantity, unit_minor,
    amount_minor, currency, period_start, period_end, note, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12);

-- name: SetCorrects :exec
UPDATE invoices SET corrects = sqlc.arg(corrects)::uuid WHERE id = sqlc.arg(id);
