-- +goose Up
-- The billing shell writes an invoice's dependent rows (renewal, pending
-- items taken, payment attempt, dunning) before the invoice itself, so that
-- the invoice counter row is locked for as short a time as possible: the
-- number is allocated by the transaction's last statement. The foreign keys
-- are therefore checked at commit.
ALTER TABLE renewals ALTER CONSTRAINT renewals_invoice_id_fkey DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE pending_items ALTER CONSTRAINT pending_items_invoice_id_fkey DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE payment_attempts ALTER CONSTRAINT payment_attempts_invoice_id_fkey DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE dunning ALTER CONSTRAINT dunning_invoice_id_fkey DEFERRABLE INITIALLY DEFERRED;

-- A pending item's unit price, shown on the invoice that takes it.
ALTER TABLE pending_items ADD COLUMN unit_minor bigint NOT NULL DEFAULT 0;

-- Renewal work: subscriptions whose period (or trial) has ended.
CREATE INDEX subscriptions_renewal_due ON subscriptions (period_end) WHERE status = 'active';
CREATE INDEX subscriptions_trial_due ON subscriptions (trial_end) WHERE status = 'trial';
-- Which subscriptions an invoice renewed (dunning suspends and reactivates them).
CREATE INDEX renewals_invoice ON renewals (invoice_id) WHERE invoice_id IS NOT NULL;
-- Open invoices, for the payment sweep.
CREATE INDEX invoices_open ON invoices (issued_at) WHERE status = 'open';
CREATE INDEX payment_methods_account ON payment_methods (account_id) WHERE deleted_at IS NULL;

-- +goose Down
DROP INDEX payment_methods_account, invoices_open, renewals_invoice, subscriptions_trial_due, subscriptions_renewal_due;
ALTER TABLE pending_items DROP COLUMN unit_minor;
ALTER TABLE dunning ALTER CONSTRAINT dunning_invoice_id_fkey NOT DEFERRABLE;
ALTER TABLE payment_attempts ALTER CONSTRAINT payment_attempts_invoice_id_fkey NOT DEFERRABLE;
ALTER TABLE pending_items ALTER CONSTRAINT pending_items_invoice_id_fkey NOT DEFERRABLE;
ALTER TABLE renewals ALTER CONSTRAINT renewals_invoice_id_fkey NOT DEFERRABLE;
