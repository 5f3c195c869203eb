-- +goose Up
-- The pbxd process that created an attempt: the key of the session
-- advisory lock (pg_advisory_lock(owner class, owner)) it holds while it
-- runs. Recovery settles at once the attempts whose owner's lock is free
-- (the process is gone); the others, a request still in flight, after a
-- minute. NULL: no owner recorded (the minute rule only).
ALTER TABLE payment_attempts ADD COLUMN owner integer;
-- A change order's payment not yet applied nor refunded: while an account
-- has one, no other change of it is confirmed (409 before any charge).
CREATE INDEX payment_attempts_change_in_flight ON payment_attempts (account_id)
    WHERE change_id IS NOT NULL AND invoice_id IS NULL AND refund_state IS NULL
      AND outcome IN ('unknown', 'approved', 'pending');

-- +goose Down
DROP INDEX payment_attempts_change_in_flight;
ALTER TABLE payment_attempts DROP COLUMN owner;
