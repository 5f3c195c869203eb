-- The audit log: who did what, written in the transaction of the change.

-- name: InsertAudit :exec
INSERT INTO audit_log (at, actor, account_id, action, object, details) VALUES ($1, $2, $3, $4, $5, $6);

-- AuditInvoicesPaid records invoices paid, one audit record each, in one
-- statement.
-- name: AuditInvoicesPaid :exec
INSERT INTO audit_log (at, actor, account_id, action, object, details)
SELECT @at, @actor, u.account_id, 'invoice.paid', u.id::text, jsonb_build_object('reference', u.ref)
FROM (SELECT unnest(@account_ids::uuid[]) AS account_id, unnest(@invoice_ids::uuid[]) AS id, unnest(@refs::text[]) AS ref) AS u;

-- InsertRenewalAudits records a renewal batch's audit records in one
-- statement (sent in billing's renewal pipeline: InsertRenewalAuditsSQL).
-- name: InsertRenewalAudits :exec
INSERT INTO audit_log (at, actor, account_id, action, object, details)
SELECT $1, 'billing', u.account_id, u.action, u.object, u.details::jsonb
FROM (SELECT unnest($2::uuid[]) AS account_id, unnest($3::text[]) AS action, unnest($4::text[]) AS object, unnest($5::text[]) AS details) AS u;
