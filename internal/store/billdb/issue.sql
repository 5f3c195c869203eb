-- Invoices issued and read back (billing/issue.go). Invoices are inserted
-- through InsertInvoicesSQL, in the batches that end their transactions.

-- InsertInvoices allocates the next $3 numbers of the issuer's ($1)
-- series for the year ($2) and inserts $3 invoices numbered in array order,
-- in one statement. The counter row stays locked until the transaction
-- ends, so concurrent issuers queue and a rolled-back transaction gives
-- its numbers back: numbers are gapless. Callers run it last in their
-- transaction to hold the lock briefly. $4-$16: the invoices' id, account,
-- kind, status, currency, issued at, due at, net, tax, gross, document,
-- payment reference, paid at (NULL unless paid at issue).
-- name: InsertInvoices :many
WITH n AS (
	INSERT INTO invoice_counters (issuer, year, last) VALUES ($1, $2, $3)
	ON CONFLICT (issuer, year) DO UPDATE SET last = invoice_counters.last + $3
	RETURNING last - $3 AS base
)
INSERT INTO invoices (id, account_id, number, issuer, kind, status, currency, issued_at, due_at,
                      net_minor, tax_minor, gross_minor, document, payment_ref, paid_at)
SELECT u.id, u.account_id, num.number, $1, u.kind, u.status, u.currency, u.issued_at, u.due_at, u.net, u.tax, u.gross,
       jsonb_set(u.doc::jsonb, '{Number}', to_jsonb(num.number)), u.ref, u.paid_at
FROM n, (SELECT unnest($4::uuid[]) AS id, unnest($5::uuid[]) AS account_id, unnest($6::text[]) AS kind, unnest($7::text[]) AS status,
               unnest($8::text[]) AS currency, unnest($9::timestamptz[]) AS issued_at, unnest($10::timestamptz[]) AS due_at,
               unnest($11::bigint[]) AS net, unnest($12::bigint[]) AS tax, unnest($13::bigint[]) AS gross, unnest($14::text[]) AS doc,
               unnest($15::text[]) AS ref, unnest($16::timestamptz[]) AS paid_at,
               generate_series(1, cardinality($4::uuid[])) AS ord) AS u,
     LATERAL (SELECT n.base + u.ord AS seq) q,
     LATERAL (SELECT lpad($2::text, 4, '0') || '-' || CASE WHEN q.seq < 1000000 THEN lpad(q.seq::text, 6, '0') ELSE q.seq::text END AS number) num
RETURNING id::text, number;

-- name: InvoiceByID :one
SELECT id, account_id, number, status, payment_ref, paid_at, document FROM invoices WHERE id = $1;

-- InvoicePayment is how a paid invoice was paid: its approved (or
-- manually recorded) attempt, with the method's label.
-- name: InvoicePayment :one
SELECT coalesce(a.decided_at, a.at)::timestamptz AS at, a.outcome, coalesce(m.label, '')::text AS method, a.reference, a.amount_minor
FROM payment_attempts a LEFT JOIN payment_methods m ON m.id = a.payment_method_id
WHERE a.invoice_id = $1 AND a.outcome IN ('approved', 'manual') ORDER BY a.at DESC LIMIT 1;

-- AccountInvoices lists an account's invoices, oldest first.
-- name: AccountInvoices :many
SELECT id, number, kind, status, issued_at, due_at, currency, net_minor, tax_minor, gross_minor, payment_ref
FROM invoices WHERE account_id = $1 ORDER BY issued_at, number;

-- name: AccountTimezone :one
SELECT timezone FROM accounts WHERE id = $1;

-- name: AccountExists :one
SELECT EXISTS (SELECT 1 FROM accounts WHERE id = $1);
