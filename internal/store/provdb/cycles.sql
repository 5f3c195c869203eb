-- Billing cycle switches.

-- SwitchSubscriptionCycle moves a subscription to a new period of another
-- cycle at its price, with the new quantity; a trial keeps its first
-- payment date (the trial's end).
-- name: SwitchSubscriptionCycle :exec
UPDATE subscriptions SET quantity = @quantity, cycle = @cycle, period_start = @period_start, period_end = @period_end,
	next_payment_at = CASE WHEN @keep_next_payment::boolean THEN next_payment_at ELSE @period_end END,
	period_price_minor = @period_price_minor, version = version + 1
WHERE id = @id;
