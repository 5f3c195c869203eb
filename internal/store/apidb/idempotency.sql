-- Idempotency keys: the first answer to a request, replayed to its retries.

-- ClaimKey returns 0 rows affected when the key is already claimed.
-- name: ClaimKey :execrows
INSERT INTO idempotency_keys (scope, key, request_hash, status, body, created_at)
			VALUES ($1, $2, $3, 0, '', $4) ON CONFLICT DO NOTHING;

-- name: GetKey :one
SELECT request_hash, status, body FROM idempotency_keys WHERE scope = $1 AND key = $2;

-- ReleaseKey gives an unanswered claim back (the request failed).
-- name: ReleaseKey :exec
DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND status = 0;

-- name: StoreAnswer :exec
UPDATE idempotency_keys SET status = $3, body = $4 WHERE scope = $1 AND key = $2;
