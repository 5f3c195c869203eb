-- Accounts (tenants) and their API tokens.

-- name: InsertAccount :exec
INSERT INTO accounts (id, name, sip_domain, currency, timezone, vat_bp, payment_mode,
			seat_preference, ext_first, ext_last, billing_address, pbx_node, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13);

-- name: GetAccount :one
SELECT id, name, sip_domain, currency, timezone, vat_bp, payment_mode, seat_preference,
	ext_first, ext_last, billing_address, status, pbx_node, created_at FROM accounts WHERE id = $1;

-- LockAccount reads and locks the account row: every change of an
-- account's seats and lines happens under it.
-- name: LockAccount :one
SELECT id, name, sip_domain, currency, timezone, vat_bp, payment_mode, seat_preference,
	ext_first, ext_last, billing_address, status, pbx_node, created_at FROM accounts WHERE id = $1 FOR UPDATE;

-- name: ListAccounts :many
SELECT id, name, sip_domain, currency, timezone, vat_bp, payment_mode, seat_preference,
	ext_first, ext_last, billing_address, status, pbx_node, created_at FROM accounts ORDER BY created_at, id;

-- name: InsertAccountToken :exec
INSERT INTO account_tokens (token_sha256, account_id, created_at) VALUES ($1, $2, $3);

-- name: AccountForToken :one
SELECT account_id FROM account_tokens WHERE token_sha256 = $1;
