-- +goose Up
-- Every attempt of a change order, whatever its outcome: the confirm's
-- payment intent counts them (to number the next idempotency key) and
-- looks for a refund among them. Only live attempts were indexed, so each
-- confirm scanned the whole table (issue 13, confirm throughput).
CREATE INDEX payment_attempts_by_change ON payment_attempts (change_id) WHERE change_id IS NOT NULL;

-- +goose Down
DROP INDEX payment_attempts_by_change;
