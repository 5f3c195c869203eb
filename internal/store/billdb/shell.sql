-- The billing shell's gauges and the catalog renewals price with
-- (billing/shell.go).

-- name: SubscriptionCounts :many
SELECT status, count(*) FROM subscriptions WHERE quantity > 0 GROUP BY status;

-- name: RecurringRevenue :many
-- Integer sums per currency and cycle: no float rounding before the gauge.
SELECT p.currency, s.cycle, sum(s.quantity::numeric * s.period_price_minor)::bigint AS total_minor
FROM subscriptions s JOIN packages p ON p.code = s.package_code
WHERE s.status = 'active' AND s.quantity > 0 GROUP BY 1, 2;

-- name: Catalog :many
SELECT code, name, price_minor, currency, cycles, trial_days, fixed_month_days, exclude_order_day, retired FROM packages;
