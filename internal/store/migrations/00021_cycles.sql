-- +goose Up
-- Quarterly and semiannual cycles besides monthly and annual.
ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_cycle_check;
ALTER TABLE subscriptions ADD CONSTRAINT subscriptions_cycle_check CHECK (cycle IN ('monthly', 'quarterly', 'semiannual', 'annual'));

-- +goose Down
ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_cycle_check;
ALTER TABLE subscriptions ADD CONSTRAINT subscriptions_cycle_check CHECK (cycle IN ('monthly', 'annual'));
