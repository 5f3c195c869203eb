-- Subscriptions as a confirmed change order leaves them: billing owns the
-- table (provisioning reads it to plan and writes it through its Biller).

-- name: ChangeSubscriptionQuantity :exec
UPDATE subscriptions SET quantity = @quantity, version = version + 1 WHERE id = @id;

-- RestartSubscription brings a subscription back from zero: a new period.
-- name: RestartSubscription :exec
UPDATE subscriptions SET quantity = @quantity, cycle = @cycle, period_start = @period_start, period_end = @period_end,
	next_payment_at = @period_end, period_price_minor = @period_price_minor, status = 'active', version = version + 1
WHERE id = @id;

-- name: InsertSubscription :exec
INSERT INTO subscriptions (id, account_id, package_code, cycle, quantity, status, period_price_minor,
	period_start, period_end, next_payment_at, registered_from, trial_end)
VALUES (@id, @account_id, @package_code, @cycle, @quantity, @status, @period_price_minor,
	@period_start, @period_end, @next_payment_at, @registered_from, @trial_end);

-- SwitchSubscriptionCycle moves a subscription to a new period of another
-- cycle at its price, with the new quantity; a trial keeps its first
-- payment date (the trial's end).
-- name: SwitchSubscriptionCycle :exec
UPDATE subscriptions SET quantity = @quantity, cycle = @cycle, period_start = @period_start, period_end = @period_end,
	next_payment_at = CASE WHEN @keep_next_payment::boolean THEN next_payment_at ELSE @period_end END,
	period_price_minor = @period_price_minor, version = version + 1
WHERE id = @id;
