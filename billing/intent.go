package billing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
)

// Payments are durable intents. An attempt (what it pays, the amount, the
// gateway's idempotency key) is committed with outcome 'unknown' before the
// gateway is called; the gateway is called outside any transaction; its
// answer is recorded in a transaction of its own, with its effect on the
// invoice it pays (paid, or a dunning step). A change's approval is
// recorded instead in the transaction that applies the change (or on its
// own first, when that one fails: ChangeAnswer). A crash anywhere leaves an
// attempt that Recover settles by asking the gateway under the same key.

// attempt is a payment intent as the shell drives it.
type attempt struct {
	id, key, accountID string
	invoiceID          string // "" for a change order's payment before its invoice
	changeID           string
	method             *method
	amount             Money
	outcome            string
	reference          string
}

// beginAttempt commits nothing itself: it inserts a in tx with outcome
// 'unknown', owned by this process.
func (s *Service) beginAttempt(ctx context.Context, tx pgx.Tx, a *attempt, at time.Time) error {
	a.id, a.outcome = uuid.NewString(), "unknown"
	_, err := tx.Exec(ctx, `INSERT INTO payment_attempts (id, invoice_id, payment_method_id, at, amount_minor, outcome, idempotency_key, account_id, change_id, currency, owner)
		VALUES ($1, $2, $3, $4, $5, 'unknown', $6, $7, $8, $9, $10)`,
		a.id, nullable(a.invoiceID), a.method.ID, at, a.amount.Minor, a.key, a.accountID, nullable(a.changeID), string(a.amount.Currency), s.ownerOrNull())
	if err != nil {
		return fmt.Errorf("record payment intent: %w", err)
	}
	return nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// ErrAbandoned is what an AfterCharge hook returns to make the shell drop
// a gateway answer unrecorded, as a crash at that point would.
var ErrAbandoned = errors.New("billing: payment outcome abandoned")

// callGateway charges a, outside any transaction. The outcome is the
// payment_attempts value: approved, declined, pending, or error (err is then
// the gateway's failure); "" when ctx ended, which leaves the attempt
// unknown for Recover.
func (s *Service) callGateway(ctx context.Context, a *attempt) (ChargeResult, string, error) {
	gw, ok := s.gateways[a.method.Gateway]
	if !ok {
		return ChargeResult{Message: "gateway " + a.method.Gateway + " not configured"}, "error", fmt.Errorf("%w: %q", ErrUnknownGateway, a.method.Gateway)
	}
	res, err := gw.Charge(ctx, a.method.Token, a.amount, a.key)
	if s.afterCharge != nil {
		if herr := s.afterCharge(a.key); herr != nil {
			return res, "", herr
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return res, "", ctx.Err()
		}
		if res.Message == "" {
			res.Message = err.Error()
		}
		if errors.Is(err, ErrInvalidCharge) || errors.Is(err, ErrInvalidToken) {
			return res, "error", err // refused before any charge
		}
		// No answer is not "not charged": the charge may have gone through
		// and its answer been lost. Ask under the same key; only a charge
		// the gateway confirms it does not have (its key now voided) is an
		// error. Anything else stays unknown, for Recover.
		got, found, lerr := gw.Lookup(ctx, a.key)
		switch {
		case lerr != nil:
			return res, "", err
		case found:
			return got, string(got.Outcome), nil
		}
		if ref, verr := gw.Refund(ctx, a.key); verr != nil || ref != "" {
			return res, "", err
		}
		return res, "error", err
	}
	return res, string(res.Outcome), nil
}

// decided is a gateway answer to record.
type decided struct {
	a       *attempt
	res     ChargeResult
	outcome string
}

// recordOutcomes records answers in one transaction, each only if its
// attempt is still unknown (Recover or a concurrent request may have
// settled it), with its effect on the invoice it pays: approved or
// pending settles or holds the invoice, declined or error is a dunning
// step. It returns the attempts it recorded; the metric counts them after
// commit, so it always equals the database.
func (s *Service) recordOutcomes(ctx context.Context, ds []decided, now time.Time) ([]decided, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	if len(ds) == 1 && ds[0].a.invoiceID == "" && (ds[0].outcome == "approved" || ds[0].outcome == "pending") {
		return s.recordChangePaid(ctx, ds[0], now)
	}
	var done []decided
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		done = done[:0]
		// Asynchronous commit: an answer lost in a crash leaves the attempt
		// unknown, and Recover asks the gateway again; nothing depends on it
		// being on disk before the change is applied, whose own commit is
		// synchronous and flushes this one with it.
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
			return err
		}
		ids, outcomes, refs, details := make([]string, len(ds)), make([]string, len(ds)), make([]string, len(ds)), make([]string, len(ds))
		for i, d := range ds {
			ids[i], outcomes[i], refs[i], details[i] = d.a.id, d.outcome, d.res.TransactionRef, d.res.Message
		}
		rows, err := tx.Query(ctx, `UPDATE payment_attempts p SET outcome = u.outcome, reference = u.ref, detail = u.detail, decided_at = $1
			FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[]) AS u(id, outcome, ref, detail)
			WHERE p.id = u.id AND p.outcome = 'unknown' RETURNING p.id::text`, now, ids, outcomes, refs, details)
		if err != nil {
			return fmt.Errorf("record payment outcomes: %w", err)
		}
		updated, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("record payment outcomes: %w", err)
		}
		ok := make(map[string]bool, len(updated))
		for _, id := range updated {
			ok[id] = true
		}
		var paidIDs, paidRefs, paidAccounts []string
		for _, d := range ds {
			if !ok[d.a.id] {
				continue
			}
			done = append(done, d)
			a := d.a
			if a.invoiceID == "" {
				if d.outcome == "declined" || d.outcome == "error" {
					if err := audit(ctx, tx, now, "billing", a.accountID, "payment."+d.outcome, a.changeID, map[string]any{
						"amount_minor": a.amount.Minor, "currency": a.amount.Currency, "gateway": a.method.Gateway, "detail": d.res.Message}); err != nil {
						return err
					}
				}
				continue
			}
			switch d.outcome {
			case "approved":
				paidIDs, paidRefs, paidAccounts = append(paidIDs, a.invoiceID), append(paidRefs, d.res.TransactionRef), append(paidAccounts, a.accountID)
			case "pending":
				// Switched to bank transfer: stop retrying, the operator marks it paid.
				if _, err := tx.Exec(ctx, `UPDATE dunning SET next_retry_at = NULL WHERE invoice_id = $1`, a.invoiceID); err != nil {
					return fmt.Errorf("end dunning: %w", err)
				}
			default:
				if err := s.afterFailure(ctx, tx, a.accountID, a.invoiceID, d.res.Message, now); err != nil {
					return err
				}
			}
		}
		return s.settleMany(ctx, tx, paidAccounts, paidIDs, paidRefs, now, "billing")
	})
	if err != nil {
		return nil, err
	}
	for _, d := range done {
		s.m.attempts.WithLabelValues(d.outcome).Inc()
	}
	return done, nil
}

// recordChangePaid records a change payment's approval: one statement, no
// effect on any invoice yet, in a transaction sent in one round trip with
// an asynchronous commit (see recordOutcomes).
func (s *Service) recordChangePaid(ctx context.Context, d decided, now time.Time) ([]decided, error) {
	var n int
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SET LOCAL synchronous_commit = off")
	b.Queue(recordChangeAnswerSQL, d.a.id, d.outcome, d.res.TransactionRef, d.res.Message, now, nil).Exec(func(tag pgconn.CommandTag) error {
		n = int(tag.RowsAffected())
		return nil
	})
	b.Queue("COMMIT")
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("record payment outcome: %w", err)
	}
	if n == 0 {
		return nil, nil
	}
	s.m.attempts.WithLabelValues(d.outcome).Inc()
	return []decided{d}, nil
}

// settleMany marks open invoices paid in one statement per table; the
// rare reactivations (an invoice paid after its subscriptions were
// suspended) go one by one.
func (s *Service) settleMany(ctx context.Context, tx pgx.Tx, accounts, invoiceIDs, refs []string, now time.Time, actor string) error {
	if len(invoiceIDs) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `UPDATE invoices i SET status = 'paid', payment_ref = u.ref, paid_at = $1
		FROM unnest($2::uuid[], $3::text[]) AS u(id, ref) WHERE i.id = u.id AND i.status = 'open'`, now, invoiceIDs, refs); err != nil {
		return fmt.Errorf("mark invoices paid: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE dunning SET next_retry_at = NULL WHERE invoice_id = ANY($1::uuid[]) AND next_retry_at IS NOT NULL`, invoiceIDs); err != nil {
		return fmt.Errorf("end dunning: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO audit_log (at, actor, account_id, action, object, details)
		SELECT $1, $2, u.account_id, 'invoice.paid', u.id::text, jsonb_build_object('reference', u.ref)
		FROM unnest($3::uuid[], $4::uuid[], $5::text[]) AS u(account_id, id, ref)`, now, actor, accounts, invoiceIDs, refs); err != nil {
		return fmt.Errorf("audit invoices paid: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT DISTINCT r.invoice_id::text, i.account_id::text FROM renewals r
		JOIN subscriptions s ON s.id = r.subscription_id JOIN invoices i ON i.id = r.invoice_id
		WHERE r.invoice_id = ANY($1::uuid[]) AND s.status = 'inactive'`, invoiceIDs)
	if err != nil {
		return fmt.Errorf("find suspended subscriptions: %w", err)
	}
	type pair struct{ inv, acct string }
	var suspended []pair
	for rows.Next() {
		var p pair
		if err := rows.Scan(&p.inv, &p.acct); err != nil {
			rows.Close()
			return err
		}
		suspended = append(suspended, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, p := range suspended {
		if err := s.setSubscriptions(ctx, store.Wrap(tx), p.acct, p.inv, false, now, actor); err != nil {
			return err
		}
	}
	return nil
}

// afterFailure is the dunning step of a failed payment of an open invoice:
// the first failure starts dunning, later ones schedule the next retry, the
// last suspends the invoice's subscriptions.
func (s *Service) afterFailure(ctx context.Context, tx pgx.Tx, accountID, invoiceID, reason string, now time.Time) error {
	cfg := s.cfg()
	var failures int
	var first time.Time
	err := tx.QueryRow(ctx, `SELECT failures, first_failure FROM dunning WHERE invoice_id = $1 FOR UPDATE`, invoiceID).Scan(&failures, &first)
	if errors.Is(err, pgx.ErrNoRows) {
		next, _ := cfg.Dunning.NextRetry(1, now)
		if _, err := tx.Exec(ctx, `INSERT INTO dunning (invoice_id, failures, first_failure, next_retry_at) VALUES ($1, 1, $2, $3)`, invoiceID, now, next); err != nil {
			return fmt.Errorf("start dunning: %w", err)
		}
		return audit(ctx, tx, now, "billing", accountID, "dunning.started", invoiceID, map[string]any{"reason": reason, "next_retry_at": next})
	}
	if err != nil {
		return fmt.Errorf("read dunning: %w", err)
	}
	attempt := failures + 1
	next, done := cfg.Dunning.NextRetry(attempt, first)
	if !done {
		if _, err := tx.Exec(ctx, `UPDATE dunning SET failures = $2, next_retry_at = $3 WHERE invoice_id = $1`, invoiceID, attempt, next); err != nil {
			return fmt.Errorf("schedule retry: %w", err)
		}
		return audit(ctx, tx, now, "billing", accountID, "dunning.retry_failed", invoiceID, map[string]any{"attempt": attempt, "reason": reason, "next_retry_at": next})
	}
	if _, err := tx.Exec(ctx, `UPDATE dunning SET failures = $2, next_retry_at = NULL, exhausted = true WHERE invoice_id = $1`, invoiceID, attempt); err != nil {
		return fmt.Errorf("end dunning: %w", err)
	}
	if err := audit(ctx, tx, now, "billing", accountID, "dunning.exhausted", invoiceID, map[string]any{"attempt": attempt, "reason": reason}); err != nil {
		return err
	}
	return s.setSubscriptions(ctx, store.Wrap(tx), accountID, invoiceID, true, now, "billing")
}

// loadAttempt reads an attempt with its payment method.
func (s *Service) loadAttempt(ctx context.Context, q querier, id string) (*attempt, error) {
	a := &attempt{id: id, method: &method{}}
	var inv, change, key, acct, cur *string
	var pmID, pmGateway, pmToken *string
	err := q.QueryRow(ctx, `SELECT p.invoice_id::text, p.change_id::text, p.idempotency_key, p.account_id::text, p.currency, p.amount_minor, p.outcome, p.reference,
			m.id::text, m.gateway, m.token
		FROM payment_attempts p LEFT JOIN payment_methods m ON m.id = p.payment_method_id WHERE p.id = $1`, id).
		Scan(&inv, &change, &key, &acct, &cur, &a.amount.Minor, &a.outcome, &a.reference, &pmID, &pmGateway, &pmToken)
	if err != nil {
		return nil, fmt.Errorf("read payment attempt %s: %w", id, err)
	}
	deref := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	a.invoiceID, a.changeID, a.key, a.accountID, a.amount.Currency = deref(inv), deref(change), deref(key), deref(acct), Currency(deref(cur))
	a.method.ID, a.method.Gateway, a.method.Token = deref(pmID), deref(pmGateway), deref(pmToken)
	return a, nil
}

// prepareChangePaymentSQL is what PrepareChangePayment reads and writes,
// in one statement: the change's own attempts (mine), another change of
// the account paid or being paid but not applied yet (busy), the default
// method (pm), and the new intent (ins), inserted only when the change
// has no live attempt, none refunded, the account no other change in
// flight, and a default method.
var prepareChangePaymentSQL = `WITH mine AS (
	SELECT count(*) AS n, coalesce(bool_or(refund_state IS NOT NULL), false) AS refunded,
		max(id::text) FILTER (WHERE outcome IN ('unknown', 'approved', 'pending')) AS live,
		max(amount_minor) FILTER (WHERE outcome IN ('unknown', 'approved', 'pending')) AS live_amount
	FROM payment_attempts WHERE change_id = $1
), busy AS (` + changeInFlightSQL + `), pm AS (
	SELECT id, gateway, token FROM payment_methods WHERE account_id = $2 AND is_default AND deleted_at IS NULL
), ins AS (
	INSERT INTO payment_attempts (id, payment_method_id, at, amount_minor, outcome, idempotency_key, account_id, change_id, currency, owner)
	SELECT $3, pm.id, $4, $5, 'unknown', 'change:' || $1 || ':' || (mine.n + 1), $2, $1, $6, $7
	FROM mine, pm WHERE mine.live IS NULL AND NOT mine.refunded AND NOT EXISTS (SELECT 1 FROM busy)
	RETURNING idempotency_key
)
SELECT mine.refunded, mine.live, mine.live_amount, (SELECT change_id FROM busy),
	(SELECT id::text FROM pm), (SELECT gateway FROM pm), (SELECT token FROM pm), (SELECT idempotency_key FROM ins)
FROM mine`

// PrepareChangePayment commits nothing itself: in the confirm's first
// transaction (the account locked), it inserts the intent of a card
// account's charge for a change, or returns the live one a previous
// confirm left (same idempotency key: the gateway never charges twice). It
// returns "" when nothing is charged at confirm. A change whose payment was
// refunded cannot be confirmed any more, nor a change of an account whose
// other change is paid or being paid and not applied yet: both confirms
// were previewed against the same state, only one may be charged (409,
// before any gateway call). PayChange charges what it returns (nil:
// nothing to pay).
func (s *Service) PrepareChangePayment(ctx context.Context, tx pgx.Tx, acct Account, changeID string, dueGross int64, at time.Time) (*ChangePayment, error) {
	if acct.PaymentMode != ModeCard {
		return nil, nil
	}
	a := &attempt{id: uuid.NewString(), outcome: "unknown", accountID: acct.ID, changeID: changeID, method: &method{},
		amount: Money{Minor: dueGross, Currency: acct.Currency}}
	var refunded bool
	var live, busy, pmID, pmGateway, pmToken, key *string
	var liveAmount *int64
	if dueGross <= 0 {
		// Nothing to pay: only the other change in flight matters.
		err := tx.QueryRow(ctx, changeInFlightSQL, changeID, acct.ID).Scan(&busy)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("read change payments: %w", err)
		}
		return nil, changeInFlight(busy)
	}
	// A batch of one, so that the caller may add its COMMIT to it.
	b := &pgx.Batch{}
	b.Queue(prepareChangePaymentSQL, changeID, acct.ID, a.id, at, dueGross, string(acct.Currency), s.ownerOrNull()).QueryRow(func(row pgx.Row) error {
		return row.Scan(&refunded, &live, &liveAmount, &busy, &pmID, &pmGateway, &pmToken, &key)
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("record payment intent: %w", err)
	}
	switch {
	case refunded:
		return nil, fault.New(fault.Conflict, "", "this change's payment was refunded because the account changed; preview again")
	case live != nil && *liveAmount != dueGross:
		return nil, fault.New(fault.Conflict, "", "the amount due changed since the payment; preview again")
	case live != nil:
		return &ChangePayment{id: *live}, nil
	case busy != nil:
		return nil, changeInFlight(busy)
	case pmID == nil:
		return nil, fault.New(fault.Conflict, "payment_method", "a card account needs a default payment method to confirm a change; add one with POST /v1/accounts/%s/payment-methods", acct.ID)
	case key == nil:
		return nil, fmt.Errorf("record payment intent of change %s: not inserted", changeID)
	}
	a.key, a.method.ID, a.method.Gateway, a.method.Token = *key, *pmID, *pmGateway, *pmToken
	return &ChangePayment{id: a.id, a: a}, nil
}

// changeInFlightSQL finds another change ($1: not this one) of account $2
// paid or being paid and not applied yet: its payment is neither linked to
// an invoice nor refunded.
const changeInFlightSQL = `SELECT change_id::text AS change_id FROM payment_attempts
	WHERE account_id = $2 AND change_id <> $1 AND invoice_id IS NULL AND refund_state IS NULL
	  AND outcome IN ('unknown', 'approved', 'pending')
	LIMIT 1`

func changeInFlight(busy *string) error {
	if busy == nil {
		return nil
	}
	return fault.New(fault.Conflict, "", "another change of this account (%s) is being paid and applied; preview again once it is done", *busy)
}

// ChangePayment is a change's payment intent, as PrepareChangePayment
// inserted it (or found it, left by a previous confirm).
type ChangePayment struct {
	id string
	a  *attempt // nil: read it back
}

// PayChange charges a change's payment intent, outside any transaction,
// and records the answer. A refusal is a fault.PaymentRequired; an answer
// lost (ctx ended) leaves the intent for Recover.
func (s *Service) PayChange(ctx context.Context, p *ChangePayment) error {
	ans, err := s.ChargeChange(ctx, p)
	if err != nil || ans == nil {
		return err
	}
	return ans.Record(ctx)
}

// ChargeChange is PayChange, except that an approval (or a pending
// transfer) it takes from the gateway is returned unrecorded: the caller
// records it in the transaction that applies the change (Queue, then
// Committed), saving a transaction, or on its own (Record) when that
// transaction fails, before anything else (a refund needs it). Until then
// the attempt stays unknown, which is what a crash at that point leaves:
// Recover asks the gateway. nil: nothing left to record.
func (s *Service) ChargeChange(ctx context.Context, p *ChangePayment) (*ChangeAnswer, error) {
	attemptID, a := p.id, p.a
	if a == nil {
		var err error
		if a, err = s.loadAttempt(ctx, s.pool, attemptID); err != nil {
			return nil, err
		}
	}
	if a.outcome == "unknown" {
		res, outcome, err := s.callGateway(ctx, a)
		if outcome == "" {
			return nil, fmt.Errorf("charge change %s: %w", a.changeID, err)
		}
		d := decided{a: a, res: res, outcome: outcome}
		if a.invoiceID == "" && (outcome == "approved" || outcome == "pending") {
			return &ChangeAnswer{s: s, d: d, at: s.clock.Now()}, nil
		}
		done, err := s.recordOutcomes(ctx, []decided{d}, s.clock.Now())
		if err != nil {
			return nil, err
		}
		if len(done) == 1 {
			a.outcome = outcome
		} else if a, err = s.loadAttempt(ctx, s.pool, attemptID); err != nil { // Recover recorded another answer first
			return nil, err
		}
		if a.outcome == "declined" || a.outcome == "error" {
			s.log.Info("payment refused", "account", a.accountID, "change", a.changeID, "outcome", a.outcome)
		}
	}
	switch a.outcome {
	case "approved", "pending":
		return nil, nil
	case "error":
		return nil, fault.New(fault.PaymentRequired, "payment_method", "the payment gateway did not answer; nothing was charged, try again")
	}
	var detail string
	_ = s.pool.QueryRow(ctx, `SELECT detail FROM payment_attempts WHERE id = $1`, attemptID).Scan(&detail)
	return nil, fault.New(fault.PaymentRequired, "payment_method", "the payment was declined: %s", detail)
}

// ChangeAnswer is a change payment's approval that ChargeChange took from
// the gateway and has not recorded.
type ChangeAnswer struct {
	s        *Service
	d        decided
	at       time.Time
	token    string // recorded_by: tells this request's write from another's
	queued   int64  // rows the queued UPDATE changed
	recorded bool
}

// recordChangeAnswerSQL records a change payment's answer if the attempt
// is still unknown (Recover or a concurrent confirm of the same order may
// have recorded it first), with the recording request's token.
const recordChangeAnswerSQL = `UPDATE payment_attempts SET outcome = $2, reference = $3, detail = $4, decided_at = $5, recorded_by = $6
	WHERE id = $1 AND outcome = 'unknown'`

// Queue records the answer in the transaction b is sent in.
func (c *ChangeAnswer) Queue(b *pgx.Batch) {
	b.Queue(recordChangeAnswerSQL, c.d.a.id, c.d.outcome, c.d.res.TransactionRef, c.d.res.Message, c.at, c.tokenOf()).Exec(func(tag pgconn.CommandTag) error {
		c.queued = tag.RowsAffected()
		return nil
	})
}

func (c *ChangeAnswer) tokenOf() string {
	if c.token == "" {
		c.token = uuid.NewString()
	}
	return c.token
}

// Committed tells that the transaction the answer was queued in
// committed: the metric counts it now, so it equals the database.
func (c *ChangeAnswer) Committed() {
	if !c.recorded && c.queued == 1 {
		c.s.m.attempts.WithLabelValues(c.d.outcome).Inc()
	}
	c.recorded = true
}

// Record records the answer on its own when the transaction it was
// queued in failed (nothing when it committed). That transaction may have
// committed with its answer lost (a connection cut around the COMMIT):
// the attempt then holds this request's token, and the answer is counted
// here. A write of its own that fails is tried twice more, on fresh
// connections; after that the attempt is left to Recover.
func (c *ChangeAnswer) Record(ctx context.Context) error {
	if c.recorded {
		return nil
	}
	var err error
	for range 3 {
		var mine bool
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue("SET LOCAL synchronous_commit = off") // see recordOutcomes
		b.Queue(recordChangeAnswerSQL, c.d.a.id, c.d.outcome, c.d.res.TransactionRef, c.d.res.Message, c.at, c.tokenOf())
		b.Queue("COMMIT")
		b.Queue(`SELECT coalesce(recorded_by = $2, false) FROM payment_attempts WHERE id = $1`, c.d.a.id, c.token).QueryRow(func(row pgx.Row) error {
			return row.Scan(&mine)
		})
		if err = c.s.pool.SendBatch(ctx, b).Close(); err != nil {
			continue
		}
		if mine {
			c.s.m.attempts.WithLabelValues(c.d.outcome).Inc()
		}
		c.recorded = true
		return nil
	}
	return fmt.Errorf("record payment outcome: %w", err)
}

// RefundChange gives back the payment of a change that could not be
// applied (the account changed between payment and apply): the refund is
// requested (committed) before the gateway call and marked done after, with
// an audit record. A change without a live payment is left alone.
func (s *Service) RefundChange(ctx context.Context, changeID, reason string) error {
	var id string
	err := s.pool.QueryRow(ctx, `UPDATE payment_attempts SET refund_state = 'requested'
		WHERE change_id = $1 AND invoice_id IS NULL AND outcome IN ('approved', 'pending') AND (refund_state IS NULL OR refund_state = 'requested')
		RETURNING id::text`, changeID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("request refund: %w", err)
	}
	return s.finishRefund(ctx, id, reason)
}

func (s *Service) finishRefund(ctx context.Context, attemptID, reason string) error {
	a, err := s.loadAttempt(ctx, s.pool, attemptID)
	if err != nil {
		return err
	}
	ref := ""
	if a.outcome == "approved" {
		gw, ok := s.gateways[a.method.Gateway]
		if !ok {
			return fmt.Errorf("refund %s: %w: %q", a.key, ErrUnknownGateway, a.method.Gateway)
		}
		if ref, err = gw.Refund(ctx, a.key); err != nil {
			return fmt.Errorf("refund %s: %w", a.key, err)
		}
	}
	now := s.clock.Now()
	var n int64
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE payment_attempts SET refund_state = 'refunded', refund_reference = $2 WHERE id = $1 AND refund_state = 'requested'`, attemptID, ref)
		if err != nil {
			return fmt.Errorf("record refund: %w", err)
		}
		if n = tag.RowsAffected(); n == 0 {
			return nil
		}
		return audit(ctx, tx, now, "billing", a.accountID, "payment.refunded", a.changeID, map[string]any{
			"attempt": attemptID, "amount_minor": a.amount.Minor, "currency": a.amount.Currency, "reference": ref, "reason": reason})
	})
	if err == nil && n > 0 && a.outcome == "approved" {
		s.m.refunds.Inc()
	}
	return err
}

// ChangeApplier applies a paid change order: the wiring satisfies it with
// provisioning (billing does not import it). A change that can no longer
// be applied is refunded by the applier itself.
type ChangeApplier interface {
	ApplyPaidChange(ctx context.Context, changeID string) error
}

type changeApplierBox struct{ ChangeApplier }

// SetChangeApplier connects Recover to the change orders it completes.
func (s *Service) SetChangeApplier(c ChangeApplier) { s.changes.Store(&changeApplierBox{c}) }

// RecoveryJob settles payments a crash left half-way.
const RecoveryJob = "billing.payment_recovery"

// RecoveryCron runs the recovery job every five minutes (and the daemon
// runs it at start).
const RecoveryCron = "*/5 * * * *"

// recoveryGrace is how old an unsettled attempt of a live owner (or of
// none recorded) must be before Recover touches it: a request still in
// flight settles its own.
const recoveryGrace = time.Minute

// settleableSQL selects the attempts Recover may settle now: older than
// the grace ($1), or owned by another process ($2: this one's owner, 0 if
// none) that is gone, its lock (class $3) free. The probe takes that
// lock for the statement only.
const settleableSQL = `(at <= $1 OR (owner IS NOT NULL AND owner <> $2 AND pg_try_advisory_xact_lock($3, owner)))`

// Recover settles what a crash, a lost connection or a failed commit left
// half-way, for attempts older than a minute or left by a process that is
// gone (at start, those of the instance that died before it): it asks the
// gateway for the answer to each unknown attempt (by idempotency key) and
// records it (a charge the gateway never received is voided there); it
// applies paid changes not yet applied (or refunds them when they no
// longer apply); it completes refunds requested. Each settlement is
// audited.
func (s *Service) Recover(ctx context.Context, now time.Time) error {
	before, self := now.Add(-recoveryGrace), s.owner.Load()
	ids := func(q string) ([]string, error) {
		rows, err := s.pool.Query(ctx, q, before, self, int32(ownerLockClass))
		if err != nil {
			return nil, fmt.Errorf("list unsettled payments: %w", err)
		}
		return pgx.CollectRows(rows, pgx.RowTo[string])
	}
	var errs []error
	unknown, err := ids(`SELECT id::text FROM payment_attempts WHERE outcome = 'unknown' AND ` + settleableSQL + ` ORDER BY at`)
	if err != nil {
		return err
	}
	for _, id := range unknown {
		if err := s.recoverUnknown(ctx, id, now); err != nil {
			errs = append(errs, err)
		}
	}
	refunds, err := ids(`SELECT id::text FROM payment_attempts WHERE refund_state = 'requested' AND ` + settleableSQL + ` ORDER BY at`)
	if err != nil {
		return err
	}
	for _, id := range refunds {
		if err := s.finishRefund(ctx, id, "recovered refund"); err != nil {
			errs = append(errs, err)
		}
	}
	paid, err := ids(`SELECT change_id::text FROM payment_attempts WHERE change_id IS NOT NULL AND invoice_id IS NULL
		AND outcome IN ('approved', 'pending') AND refund_state IS NULL AND ` + settleableSQL + ` ORDER BY at`)
	if err != nil {
		return err
	}
	box := s.changes.Load()
	for _, change := range paid {
		if box == nil {
			errs = append(errs, errors.New("billing: no change applier configured"))
			break
		}
		err := box.ApplyPaidChange(ctx, change)
		if fe, ok := fault.As(err); ok && fe.Kind != fault.PaymentRequired {
			// Refused for good: no payment without its change. The applier
			// refunds a conflict itself; this covers any other refusal.
			s.log.Warn("paid change not applied; refunding", "change", change, "err", err)
			err = s.RefundChange(ctx, change, err.Error())
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("apply paid change %s: %w", change, err))
			continue
		}
		s.log.Info("paid change applied by recovery", "change", change)
	}
	return errors.Join(errs...)
}

func (s *Service) recoverUnknown(ctx context.Context, id string, now time.Time) error {
	a, err := s.loadAttempt(ctx, s.pool, id)
	if err != nil {
		return err
	}
	gw, ok := s.gateways[a.method.Gateway]
	if !ok {
		return fmt.Errorf("recover %s: %w: %q", a.key, ErrUnknownGateway, a.method.Gateway)
	}
	res, found, err := gw.Lookup(ctx, a.key)
	if err != nil {
		return fmt.Errorf("look up %s: %w", a.key, err)
	}
	outcome := string(res.Outcome)
	if !found {
		// Never received: void the key so that a late charge is refused.
		ref, err := gw.Refund(ctx, a.key)
		if err != nil {
			return fmt.Errorf("void %s: %w", a.key, err)
		}
		outcome, res = "error", ChargeResult{Message: "lost before the gateway answered; voided by recovery"}
		if ref != "" { // it arrived meanwhile and was refunded
			outcome, res = "declined", ChargeResult{Message: "refunded by recovery: " + ref}
		}
	}
	done, err := s.recordOutcomes(ctx, []decided{{a: a, res: res, outcome: outcome}}, now)
	if err != nil || len(done) == 0 {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return audit(ctx, tx, now, "billing", a.accountID, "payment.recovered", id, map[string]any{
			"key": a.key, "outcome": outcome, "found": found, "reference": res.TransactionRef, "invoice": a.invoiceID, "change": a.changeID})
	})
}
