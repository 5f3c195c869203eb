-- An account's state as a change order is planned from: provisioning reads
-- it in one pipelined batch (StateSQL constants), rows scanned by position
-- into these row types.

-- StateSubscriptions are the account's subscriptions (billing writes
-- them; provisioning reads them to plan).
-- name: StateSubscriptions :many
SELECT id, package_code, cycle, quantity, status, period_price_minor, period_start, period_end, version
FROM subscriptions WHERE account_id = $1;

-- StateLines are the account's lines not deleted, with whether a phone is
-- bound and how many contacts are registered.
-- name: StateLines :many
SELECT id, package_code, extension, created_at, EXISTS (SELECT 1 FROM device_lines d WHERE d.line_id = l.id) AS device,
	jsonb_array_length(reg_contacts)::int AS contacts
FROM lines l WHERE account_id = $1 AND state <> 'deleted';

-- NumberAddons lists the add-ons that numbers are sold under (their
-- quantity follows the numbers held).
-- name: NumberAddons :many
SELECT p.code FROM packages p WHERE EXISTS (SELECT 1 FROM numbers n WHERE n.addon_code = p.code);
