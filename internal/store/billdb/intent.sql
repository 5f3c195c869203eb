-- Payment intents (billing/intent.go): an attempt committed with outcome
-- 'unknown' before the gateway is called, its answer recorded after, the
-- dunning step of a failure, refunds, and what Recover settles. A change's
-- intent and its answer go in pipelined batches (IntentSQL constants).

-- InsertIntent inserts an attempt with outcome 'unknown', owned by this
-- process (owner: its advisory lock key, NULL for none).
-- name: InsertIntent :exec
INSERT INTO payment_attempts (id, invoice_id, payment_method_id, at, amount_minor, outcome, idempotency_key, account_id, change_id, currency, owner)
VALUES (@id, @invoice_id, @payment_method_id, @at, @amount_minor, 'unknown', @idempotency_key, @account_id, @change_id, @currency, @owner);

-- RecordOutcomes records answers of attempts still unknown (Recover or a
-- concurrent request may have settled one), returning those it recorded.
-- name: RecordOutcomes :many
UPDATE payment_attempts p SET outcome = u.outcome, reference = u.ref, detail = u.detail, decided_at = @decided_at
FROM (SELECT unnest(@ids::uuid[]) AS id, unnest(@outcomes::text[]) AS outcome, unnest(@refs::text[]) AS ref, unnest(@details::text[]) AS detail) AS u
WHERE p.id = u.id AND p.outcome = 'unknown' RETURNING p.id::text;

-- HoldDunning stops the retries of an invoice switched to bank transfer
-- (the operator marks it paid).
-- name: HoldDunning :exec
UPDATE dunning SET next_retry_at = NULL WHERE invoice_id = $1;

-- RecordChangeAnswer records a change payment's answer if the attempt is
-- still unknown, with the recording request's token ($1 id, $2 outcome,
-- $3 reference, $4 detail, $5 decided at, $6 recorded by).
-- name: RecordChangeAnswer :execrows
UPDATE payment_attempts SET outcome = $2, reference = $3, detail = $4, decided_at = $5, recorded_by = $6
WHERE id = $1 AND outcome = 'unknown';

-- AnswerRecordedBy tells whether the attempt's answer is the one the
-- token's request wrote ($1 id, $2 token).
-- name: AnswerRecordedBy :one
SELECT coalesce(recorded_by = $2, false)::boolean AS mine FROM payment_attempts WHERE id = $1;

-- MarkInvoicesPaid marks open invoices paid, each with its reference.
-- name: MarkInvoicesPaid :exec
UPDATE invoices i SET status = 'paid', payment_ref = u.ref, paid_at = @paid_at
FROM (SELECT unnest(@ids::uuid[]) AS id, unnest(@refs::text[]) AS ref) AS u WHERE i.id = u.id AND i.status = 'open';

-- name: EndDunningOfInvoices :exec
UPDATE dunning SET next_retry_at = NULL WHERE invoice_id = ANY(@invoice_ids::uuid[]) AND next_retry_at IS NOT NULL;

-- SuspendedByInvoices lists the invoices (with their account) whose
-- renewed subscriptions were suspended: paying them reactivates those.
-- name: SuspendedByInvoices :many
SELECT DISTINCT r.invoice_id::text AS invoice_id, i.account_id::text AS account_id FROM renewals r
	JOIN subscriptions s ON s.id = r.subscription_id JOIN invoices i ON i.id = r.invoice_id
WHERE r.invoice_id = ANY(@invoice_ids::uuid[]) AND s.status = 'inactive';

-- name: LockDunning :one
SELECT failures, first_failure FROM dunning WHERE invoice_id = $1 FOR UPDATE;

-- name: StartDunning :exec
INSERT INTO dunning (invoice_id, failures, first_failure, next_retry_at) VALUES (@invoice_id, 1, @first_failure, @next_retry_at);

-- name: ScheduleDunningRetry :exec
UPDATE dunning SET failures = @failures, next_retry_at = @next_retry_at WHERE invoice_id = @invoice_id;

-- name: ExhaustDunning :exec
UPDATE dunning SET failures = @failures, next_retry_at = NULL, exhausted = true WHERE invoice_id = @invoice_id;

-- PaymentAttempt reads an attempt with its payment method.
-- name: PaymentAttempt :one
SELECT p.invoice_id, p.change_id, p.idempotency_key, p.account_id,
	p.currency, p.amount_minor, p.outcome, p.reference, m.id AS method_id, m.gateway, m.token
FROM payment_attempts p LEFT JOIN payment_methods m ON m.id = p.payment_method_id WHERE p.id = $1;

-- PrepareChangePayment reads and writes a change's intent in one
-- statement: the change's own attempts (mine), another change of the
-- account paid or being paid but not applied yet (busy, as
-- ChangeInFlight), the default method (pm), and the new intent (ins),
-- inserted only when the change has no live attempt, none refunded, the
-- account no other change in flight, and a default method. $1 change,
-- $2 account, $3 new attempt id, $4 at, $5 amount, $6 currency, $7 owner.
-- It goes in the confirm's batch (PrepareChangePaymentSQL), its row
-- scanned into pointers: every column but refunded may be NULL.
-- name: PrepareChangePayment :one
WITH mine AS (
	SELECT count(*) AS n, coalesce(bool_or(a.refund_state IS NOT NULL), false) AS refunded,
		max(a.id::text) FILTER (WHERE a.outcome IN ('unknown', 'approved', 'pending')) AS live,
		max(a.amount_minor) FILTER (WHERE a.outcome IN ('unknown', 'approved', 'pending')) AS live_amount
	FROM payment_attempts a WHERE a.change_id = $1
), busy AS (
	SELECT o.change_id::text AS other FROM payment_attempts o
	WHERE o.account_id = $2 AND o.change_id <> $1 AND o.invoice_id IS NULL AND o.refund_state IS NULL
	  AND o.outcome IN ('unknown', 'approved', 'pending')
	LIMIT 1
), pm AS (
	SELECT id, gateway, token FROM payment_methods WHERE account_id = $2 AND is_default AND deleted_at IS NULL
), ins AS (
	INSERT INTO payment_attempts (id, payment_method_id, at, amount_minor, outcome, idempotency_key, account_id, change_id, currency, owner)
	SELECT $3, pm.id, $4, $5, 'unknown', 'change:' || $1::text || ':' || (mine.n + 1), $2, $1, $6, $7
	FROM mine, pm WHERE mine.live IS NULL AND NOT mine.refunded AND NOT EXISTS (SELECT 1 FROM busy)
	RETURNING idempotency_key
)
SELECT mine.refunded, mine.live, mine.live_amount, (SELECT b.other FROM busy b) AS busy,
	(SELECT id::text FROM pm) AS method_id, (SELECT gateway FROM pm) AS gateway, (SELECT token FROM pm) AS token,
	(SELECT idempotency_key FROM ins) AS idempotency_key
FROM mine;

-- ChangeInFlight finds another change ($1: not this one) of account $2
-- paid or being paid and not applied yet: its payment is neither linked
-- to an invoice nor refunded.
-- name: ChangeInFlight :one
SELECT change_id::text AS change_id FROM payment_attempts
WHERE account_id = $2 AND change_id <> $1 AND invoice_id IS NULL AND refund_state IS NULL
  AND outcome IN ('unknown', 'approved', 'pending')
LIMIT 1;

-- name: AttemptDetail :one
SELECT detail FROM payment_attempts WHERE id = $1;

-- RequestRefund marks the live payment of a change to be refunded
-- (committed before the gateway call).
-- name: RequestRefund :one
UPDATE payment_attempts SET refund_state = 'requested'
WHERE change_id = $1 AND invoice_id IS NULL AND outcome IN ('approved', 'pending') AND (refund_state IS NULL OR refund_state = 'requested')
RETURNING id::text;

-- name: MarkRefunded :execrows
UPDATE payment_attempts SET refund_state = 'refunded', refund_reference = @refund_reference WHERE id = @id AND refund_state = 'requested';

-- The attempts Recover may settle now: older than the grace (@before), or
-- owned by another process (@self: this one's owner, 0 if none) that is
-- gone, its lock (class @lock_class) free. The probe takes that lock for
-- the statement only.

-- name: UnknownAttempts :many
SELECT id::text FROM payment_attempts WHERE outcome = 'unknown'
	AND (at <= @before OR (owner IS NOT NULL AND owner <> @self::int AND pg_try_advisory_xact_lock(@lock_class::int, owner)))
ORDER BY at;

-- name: RequestedRefunds :many
SELECT id::text FROM payment_attempts WHERE refund_state = 'requested'
	AND (at <= @before OR (owner IS NOT NULL AND owner <> @self::int AND pg_try_advisory_xact_lock(@lock_class::int, owner)))
ORDER BY at;

-- PaidChangesToApply lists the changes paid (or being paid by transfer)
-- and not applied yet.
-- name: PaidChangesToApply :many
SELECT change_id::text FROM payment_attempts WHERE change_id IS NOT NULL AND invoice_id IS NULL
	AND outcome IN ('approved', 'pending') AND refund_state IS NULL
	AND (at <= @before OR (owner IS NOT NULL AND owner <> @self::int AND pg_try_advisory_xact_lock(@lock_class::int, owner)))
ORDER BY at;
