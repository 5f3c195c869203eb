-- The audit log: who did what, written in the transaction of the change.

-- name: InsertAudit :exec
INSERT INTO audit_log (at, actor, account_id, action, object, details) VALUES ($1, $2, $3, $4, $5, $6);
