-- The sandbox gateway's ledger (sandbox_charges): what a remote gateway
-- keeps on its side, written outside any billing transaction.

-- name: SandboxCharge :one
SELECT token, amount_minor, currency, outcome, reference, refunded
FROM sandbox_charges WHERE idempotency_key = $1;

-- name: MarkSandboxRefunded :exec
UPDATE sandbox_charges SET refunded = true WHERE idempotency_key = $1 AND outcome = 'approved';

-- name: PutSandboxCharge :one
-- Insert, or read what the key already holds, in one statement (sent in
-- a one-round-trip batch as PutSandboxChargeSQL).
WITH ins AS (
    INSERT INTO sandbox_charges (idempotency_key, token, amount_minor, currency, outcome, reference)
    VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING token, amount_minor, currency, outcome, reference, refunded)
SELECT ins.token, ins.amount_minor, ins.currency, ins.outcome, ins.reference, ins.refunded FROM ins UNION ALL
SELECT c.token, c.amount_minor, c.currency, c.outcome, c.reference, c.refunded FROM sandbox_charges c
WHERE c.idempotency_key = $1 AND NOT EXISTS (SELECT 1 FROM ins);
