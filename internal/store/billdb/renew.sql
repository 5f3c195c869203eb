-- Renewals (billing/renew.go). A subscription is due when active and its
-- period has ended, or in trial and the trial has ended ($1: now); inactive
-- ones (unpaid after dunning) do not renew until paid. The claim and the
-- writes are sent in pgx batches (a pipelined transaction, renew_batch.go):
-- their text is the generated queries' own.

-- name: DueAccounts :many
-- The due accounts, with how many of their subscriptions are due.
SELECT s.account_id::text AS account_id, count(*) AS subs FROM subscriptions s
WHERE ((s.status = 'active' AND s.period_end <= sqlc.arg(now)) OR (s.status = 'trial' AND s.trial_end <= sqlc.arg(now)))
GROUP BY s.account_id ORDER BY s.account_id;

-- name: RenewalDue :one
SELECT EXISTS (SELECT 1 FROM subscriptions s
    WHERE ((s.status = 'active' AND s.period_end <= sqlc.arg(now)) OR (s.status = 'trial' AND s.trial_end <= sqlc.arg(now)))
    AND s.account_id = sqlc.arg(account_id));

-- name: RenewalSettings :exec
-- Generic plans (an array of ids would otherwise be planned anew for each
-- batch) and an asynchronous commit (see billing/renew.go).
SELECT set_config('plan_cache_mode', 'force_generic_plan', true), set_config('synchronous_commit', 'off', true);

-- name: SynchronousCommit :exec
SELECT set_config('synchronous_commit', 'on', true);

-- name: ClaimRenewals :many
-- Locks the accounts among $2 that no other transaction holds, then their
-- due subscriptions, with their account and default payment method.
SELECT s.id, s.account_id, s.package_code, s.cycle, s.quantity, s.status, s.period_start, s.period_end, s.trial_end,
    a.name, a.currency, a.timezone, a.vat_bp, a.payment_mode, a.billing_address,
    EXISTS (SELECT 1 FROM pending_items i WHERE i.account_id = s.account_id AND i.invoice_id IS NULL) AS has_pending,
    pm.id AS pm_id, pm.gateway AS pm_gateway, pm.token AS pm_token
FROM subscriptions s
JOIN accounts a ON a.id = s.account_id
LEFT JOIN payment_methods pm ON pm.account_id = s.account_id AND pm.is_default AND pm.deleted_at IS NULL
WHERE s.account_id IN (SELECT id FROM accounts WHERE id = ANY($2::uuid[]) FOR NO KEY UPDATE SKIP LOCKED)
  AND ((s.status = 'active' AND s.period_end <= $1) OR (s.status = 'trial' AND s.trial_end <= $1))
ORDER BY s.account_id, s.id
FOR UPDATE OF s;

-- name: LockPending :many
-- The pending items of the accounts in their currencies, charges first.
SELECT p.id, p.account_id, p.package_code, p.description, p.quantity, p.unit_minor, p.amount_minor, p.currency,
    p.period_start, p.period_end, p.note, p.change_id, p.created_at
FROM pending_items p JOIN (SELECT unnest(sqlc.arg(account_ids)::uuid[]) AS id, unnest(sqlc.arg(currencies)::text[]) AS currency) AS a ON p.account_id = a.id AND p.currency = a.currency
WHERE p.invoice_id IS NULL
ORDER BY p.account_id, p.amount_minor DESC, p.created_at, p.id
FOR UPDATE OF p;

-- name: InsertRenewals :exec
-- The primary key (subscription, period start) is the last defence
-- against billing a period twice: a conflict aborts the transaction.
INSERT INTO renewals (subscription_id, period_start, invoice_id, created_at)
SELECT u.id, u.start, nullif(u.inv, '')::uuid, $4 FROM (SELECT unnest($1::uuid[]) AS id, unnest($2::timestamptz[]) AS start, unnest($3::text[]) AS inv) AS u;

-- name: AdvanceSubscriptions :exec
UPDATE subscriptions s SET status = 'active', period_start = u.start, period_end = u.end_, next_payment_at = u.end_,
    period_price_minor = u.unit, version = s.version + 1
FROM (SELECT unnest($1::uuid[]) AS id, unnest($2::timestamptz[]) AS start, unnest($3::timestamptz[]) AS end_, unnest($4::bigint[]) AS unit) AS u WHERE s.id = u.id;

-- name: ReducePendingItem :exec
UPDATE pending_items SET amount_minor = amount_minor - $2 WHERE id = $1;

-- name: InsertPendingPart :exec
-- The used part of a split credit, taken by invoice $14.
INSERT INTO pending_items (id, account_id, package_code, description, quantity, unit_minor, amount_minor, currency,
    period_start, period_end, note, created_at, change_id, invoice_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14);

-- name: TakePendingItems :exec
UPDATE pending_items p SET invoice_id = u.inv FROM (SELECT unnest($1::uuid[]) AS id, unnest($2::uuid[]) AS inv) AS u WHERE p.id = u.id;

-- name: InsertRenewalAttempts :exec
INSERT INTO payment_attempts (id, invoice_id, payment_method_id, at, amount_minor, outcome, reference, detail, idempotency_key, account_id, currency, owner)
SELECT u.id, u.inv, nullif(u.pm, '')::uuid, $1, u.amount, u.outcome, u.ref, u.detail, nullif(u.key, ''), u.account_id, i.currency, $11::integer
FROM (SELECT unnest($2::uuid[]) AS id, unnest($3::uuid[]) AS inv, unnest($4::text[]) AS pm, unnest($5::bigint[]) AS amount, unnest($6::text[]) AS outcome, unnest($7::text[]) AS ref, unnest($8::text[]) AS detail, unnest($9::text[]) AS key, unnest($10::uuid[]) AS account_id) AS u
JOIN accounts i ON i.id = u.account_id;

-- name: StartRenewalDunning :exec
INSERT INTO dunning (invoice_id, failures, first_failure, next_retry_at)
SELECT u.inv, 1, $1, u.next FROM (SELECT unnest($2::uuid[]) AS inv, unnest($3::timestamptz[]) AS next) AS u;
