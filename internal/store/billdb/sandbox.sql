-- The sandbox gateway's ledger (sandbox_charges): what a remote gateway
-- keeps on its side, written outside any billing transaction.

-- name: SandboxCharge :one
SELECT token, amount_minor, currency, outcome, reference, refunded
FROM sandbox_charges WHERE idempotency_key = $1;

-- name: MarkSandboxRefunded :exec
UPDATE sandbox_charges SET refunded = true WHERE idempotency_key = $1 AND outcome = 'approved';
