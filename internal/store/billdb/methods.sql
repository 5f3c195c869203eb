-- Choosing the default payment method (billing/default_method.go).

-- name: LockAccount :exec
-- The account row lock serialises default changes, as in AddPaymentMethod.
SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE;

-- name: PaymentMethodExists :one
SELECT EXISTS (SELECT 1 FROM payment_methods WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL);

-- name: SetDefaultMethod :exec
UPDATE payment_methods SET is_default = (id = sqlc.arg(id)::uuid)
WHERE account_id = sqlc.arg(account_id) AND deleted_at IS NULL AND (is_default OR id = sqlc.arg(id)::uuid);
