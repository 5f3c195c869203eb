-- What the customer pages show.

-- AccountSubscriptions lists an account's subscriptions with the lines
-- each uses, in catalog order.
-- name: AccountSubscriptions :many
SELECT s.id, s.package_code, s.quantity,
	(SELECT count(*) FROM lines l WHERE l.account_id = s.account_id AND l.package_code = s.package_code AND l.state <> 'deleted')::int AS used,
	s.cycle, s.status, s.period_price_minor, p.currency, s.period_start, s.period_end, s.next_payment_at, s.registered_from, s.trial_end
FROM subscriptions s JOIN packages p ON p.code = s.package_code
WHERE s.account_id = $1 ORDER BY p.position, s.package_code;
