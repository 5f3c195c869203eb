-- +goose Up
-- Payments are durable intents: an attempt row (amount, what it pays, its
-- idempotency key) is committed with outcome 'unknown' before the gateway
-- is called; the gateway's answer is recorded afterwards. An attempt left
-- 'unknown' by a crash is settled by the recovery job, which asks the
-- gateway by idempotency key. A change order's charge is paid before its
-- invoice exists, hence invoice_id may be NULL until the change is applied.
ALTER TABLE payment_attempts ALTER COLUMN invoice_id DROP NOT NULL;
ALTER TABLE payment_attempts DROP CONSTRAINT payment_attempts_outcome_check;
ALTER TABLE payment_attempts ADD CONSTRAINT payment_attempts_outcome_check
    CHECK (outcome IN ('unknown', 'approved', 'declined', 'error', 'pending', 'manual'));
ALTER TABLE payment_attempts
    ADD COLUMN idempotency_key  text,
    ADD COLUMN account_id       uuid REFERENCES accounts(id),
    ADD COLUMN change_id        uuid REFERENCES change_orders(id),
    ADD COLUMN currency         char(3),
    ADD COLUMN decided_at       timestamptz,
    -- A paid change that could not be applied is refunded: 'requested' is
    -- committed before the gateway's refund call, 'refunded' after.
    ADD COLUMN refund_state     text CHECK (refund_state IN ('requested', 'refunded')),
    ADD COLUMN refund_reference text NOT NULL DEFAULT '';
CREATE UNIQUE INDEX payment_attempts_key ON payment_attempts (idempotency_key);
-- At most one live payment per change order.
CREATE UNIQUE INDEX payment_attempts_change ON payment_attempts (change_id)
    WHERE change_id IS NOT NULL AND outcome IN ('unknown', 'approved', 'pending');
-- The recovery job's work: outcomes unknown, paid changes not yet applied
-- nor refunded.
CREATE INDEX payment_attempts_unsettled ON payment_attempts (at)
    WHERE outcome = 'unknown' OR refund_state = 'requested'
       OR (change_id IS NOT NULL AND invoice_id IS NULL AND outcome IN ('approved', 'pending'));

-- The sandbox gateway's own ledger: what a real gateway keeps on its side
-- (charges by idempotency key, refunds), so that the sandbox answers
-- look-ups after pbxd crashed, like a real one.
CREATE TABLE sandbox_charges (
    idempotency_key text PRIMARY KEY,
    token           text NOT NULL,
    amount_minor    bigint NOT NULL,
    currency        char(3) NOT NULL,
    outcome         text NOT NULL CHECK (outcome IN ('approved', 'declined', 'voided')),
    reference       text NOT NULL,
    refunded        boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE sandbox_charges;
DROP INDEX payment_attempts_unsettled, payment_attempts_change, payment_attempts_key;
ALTER TABLE payment_attempts DROP COLUMN refund_reference, DROP COLUMN refund_state, DROP COLUMN decided_at,
    DROP COLUMN currency, DROP COLUMN change_id, DROP COLUMN account_id, DROP COLUMN idempotency_key;
DELETE FROM payment_attempts WHERE outcome = 'unknown' OR invoice_id IS NULL;
ALTER TABLE payment_attempts DROP CONSTRAINT payment_attempts_outcome_check;
ALTER TABLE payment_attempts ADD CONSTRAINT payment_attempts_outcome_check
    CHECK (outcome IN ('approved', 'declined', 'error', 'pending', 'manual'));
ALTER TABLE payment_attempts ALTER COLUMN invoice_id SET NOT NULL;
