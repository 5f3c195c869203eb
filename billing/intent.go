package billing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/auditdb"
	"github.com/pbxd/pbxd/internal/store/billdb"
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
func (s *Service) beginAttempt(ctx context.Context, tx *store.Tx, a *attempt, at time.Time) error {
	a.id, a.outcome = uuid.NewString(), "unknown"
	currency := string(a.amount.Currency)
	err := billdb.New(tx).InsertIntent(ctx, billdb.InsertIntentParams{ID: a.id, InvoiceID: nullable(a.invoiceID), PaymentMethodID: &a.method.ID,
		At: at, AmountMinor: a.amount.Minor, IdempotencyKey: &a.key, AccountID: &a.accountID, ChangeID: nullable(a.changeID),
		Currency: &currency, Owner: s.ownerKey()})
	if err != nil {
		return fmt.Errorf("record payment intent: %w", err)
	}
	return nil
}

// nullable is s, NULL when empty.
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// ownerKey is ownerOrNull for the generated queries: this process's owner
// lock key, nil for none.
func (s *Service) ownerKey() *int32 {
	if k := s.owner.Load(); k != 0 {
		return &k
	}
	return nil
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
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		done = done[:0]
		q := billdb.New(tx)
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
		updated, err := q.RecordOutcomes(ctx, billdb.RecordOutcomesParams{DecidedAt: &now, Ids: ids, Outcomes: outcomes, Refs: refs, Details: details})
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
				if err := q.HoldDunning(ctx, a.invoiceID); err != nil {
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
	b := &store.Batch{}
	b.Queue("BEGIN")
	b.Queue("SET LOCAL synchronous_commit = off")
	b.Queue(billdb.RecordChangeAnswerSQL, d.a.id, d.outcome, d.res.TransactionRef, d.res.Message, now, nil).Exec(func(rows int64) error {
		n = int(rows)
		return nil
	})
	b.Queue("COMMIT")
	if err := s.db.SendBatch(ctx, b); err != nil {
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
func (s *Service) settleMany(ctx context.Context, tx *store.Tx, accounts, invoiceIDs, refs []string, now time.Time, actor string) error {
	if len(invoiceIDs) == 0 {
		return nil
	}
	q := billdb.New(tx)
	if err := q.MarkInvoicesPaid(ctx, billdb.MarkInvoicesPaidParams{PaidAt: &now, Ids: invoiceIDs, Refs: refs}); err != nil {
		return fmt.Errorf("mark invoices paid: %w", err)
	}
	if err := q.EndDunningOfInvoices(ctx, invoiceIDs); err != nil {
		return fmt.Errorf("end dunning: %w", err)
	}
	if err := auditdb.New(tx).AuditInvoicesPaid(ctx, auditdb.AuditInvoicesPaidParams{At: now, Actor: actor, AccountIds: accounts, InvoiceIds: invoiceIDs, Refs: refs}); err != nil {
		return fmt.Errorf("audit invoices paid: %w", err)
	}
	suspended, err := q.SuspendedByInvoices(ctx, invoiceIDs)
	if err != nil {
		return fmt.Errorf("find suspended subscriptions: %w", err)
	}
	for _, p := range suspended {
		if err := s.setSubscriptions(ctx, tx, p.AccountID, p.InvoiceID, false, now, actor); err != nil {
			return err
		}
	}
	return nil
}

// afterFailure is the dunning step of a failed payment of an open invoice:
// the first failure starts dunning, later ones schedule the next retry, the
// last suspends the invoice's subscriptions.
func (s *Service) afterFailure(ctx context.Context, tx *store.Tx, accountID, invoiceID, reason string, now time.Time) error {
	cfg := s.cfg()
	q := billdb.New(tx)
	d, err := q.LockDunning(ctx, invoiceID)
	if errors.Is(err, store.ErrNotFound) {
		next, _ := cfg.Dunning.NextRetry(1, now)
		if err := q.StartDunning(ctx, billdb.StartDunningParams{InvoiceID: invoiceID, FirstFailure: now, NextRetryAt: &next}); err != nil {
			return fmt.Errorf("start dunning: %w", err)
		}
		return audit(ctx, tx, now, "billing", accountID, "dunning.started", invoiceID, map[string]any{"reason": reason, "next_retry_at": next})
	}
	if err != nil {
		return fmt.Errorf("read dunning: %w", err)
	}
	attempt := int(d.Failures) + 1
	next, done := cfg.Dunning.NextRetry(attempt, d.FirstFailure)
	if !done {
		if err := q.ScheduleDunningRetry(ctx, billdb.ScheduleDunningRetryParams{InvoiceID: invoiceID, Failures: int32(attempt), NextRetryAt: &next}); err != nil {
			return fmt.Errorf("schedule retry: %w", err)
		}
		return audit(ctx, tx, now, "billing", accountID, "dunning.retry_failed", invoiceID, map[string]any{"attempt": attempt, "reason": reason, "next_retry_at": next})
	}
	if err := q.ExhaustDunning(ctx, billdb.ExhaustDunningParams{InvoiceID: invoiceID, Failures: int32(attempt)}); err != nil {
		return fmt.Errorf("end dunning: %w", err)
	}
	if err := audit(ctx, tx, now, "billing", accountID, "dunning.exhausted", invoiceID, map[string]any{"attempt": attempt, "reason": reason}); err != nil {
		return err
	}
	return s.setSubscriptions(ctx, tx, accountID, invoiceID, true, now, "billing")
}

// loadAttempt reads an attempt with its payment method, in q (the pool
// or a transaction).
func (s *Service) loadAttempt(ctx context.Context, q store.DBTX, id string) (*attempt, error) {
	r, err := billdb.New(q).PaymentAttempt(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("read payment attempt %s: %w", id, err)
	}
	deref := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	a := &attempt{id: id, amount: Money{Minor: r.AmountMinor, Currency: Currency(deref(r.Currency))}, outcome: r.Outcome, reference: r.Reference,
		invoiceID: deref(r.InvoiceID), changeID: deref(r.ChangeID), key: deref(r.IdempotencyKey), accountID: deref(r.AccountID),
		method: &method{ID: deref(r.MethodID), Gateway: deref(r.Gateway), Token: deref(r.Token)}}
	return a, nil
}

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
func (s *Service) PrepareChangePayment(ctx context.Context, tx *store.Tx, acct Account, changeID string, dueGross int64, at time.Time) (*ChangePayment, error) {
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
		other, err := billdb.New(tx).ChangeInFlight(ctx, billdb.ChangeInFlightParams{ChangeID: &changeID, AccountID: &acct.ID})
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read change payments: %w", err)
		}
		return nil, changeInFlight(&other)
	}
	// A batch of one, so that the caller may add its COMMIT to it
	// (provisioning's PipeTx.CommitNextBatch).
	b := &store.Batch{}
	b.Queue(billdb.PrepareChangePaymentSQL, changeID, acct.ID, a.id, at, dueGross, string(acct.Currency), s.ownerOrNull()).QueryRow(func(row store.Row) error {
		return row.Scan(&refunded, &live, &liveAmount, &busy, &pmID, &pmGateway, &pmToken, &key)
	})
	if err := tx.SendBatch(ctx, b); err != nil {
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
		if a, err = s.loadAttempt(ctx, s.db, attemptID); err != nil {
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
		} else if a, err = s.loadAttempt(ctx, s.db, attemptID); err != nil { // Recover recorded another answer first
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
	detail, _ := s.q.AttemptDetail(ctx, attemptID)
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

// Queue records the answer in the transaction b is sent in.
func (c *ChangeAnswer) Queue(b *store.Batch) {
	b.Queue(billdb.RecordChangeAnswerSQL, c.d.a.id, c.d.outcome, c.d.res.TransactionRef, c.d.res.Message, c.at, c.tokenOf()).Exec(func(rows int64) error {
		c.queued = rows
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
		b := &store.Batch{}
		b.Queue("BEGIN")
		b.Queue("SET LOCAL synchronous_commit = off") // see recordOutcomes
		b.Queue(billdb.RecordChangeAnswerSQL, c.d.a.id, c.d.outcome, c.d.res.TransactionRef, c.d.res.Message, c.at, c.tokenOf())
		b.Queue("COMMIT")
		b.Queue(billdb.AnswerRecordedBySQL, c.d.a.id, c.token).QueryRow(func(row store.Row) error {
			return row.Scan(&mine)
		})
		if err = c.s.db.SendBatch(ctx, b); err != nil {
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
	id, err := s.q.RequestRefund(ctx, &changeID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("request refund: %w", err)
	}
	return s.finishRefund(ctx, id, reason)
}

func (s *Service) finishRefund(ctx context.Context, attemptID, reason string) error {
	a, err := s.loadAttempt(ctx, s.db, attemptID)
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
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		n, err = billdb.New(tx).MarkRefunded(ctx, billdb.MarkRefundedParams{ID: attemptID, RefundReference: ref})
		if err != nil {
			return fmt.Errorf("record refund: %w", err)
		}
		if n == 0 {
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

// RecoveryJob settles payments a crash left half-way.
const RecoveryJob = "billing.payment_recovery"

// RecoveryCron runs the recovery job every five minutes (and the daemon
// runs it at start).
const RecoveryCron = "*/5 * * * *"

// recoveryGrace is how old an unsettled attempt of a live owner (or of
// none recorded) must be before Recover touches it: a request still in
// flight settles its own.
const recoveryGrace = time.Minute

// Recover settles what a crash, a lost connection or a failed commit left
// half-way, for attempts older than a minute or left by a process that is
// gone (at start, those of the instance that died before it): it asks the
// gateway for the answer to each unknown attempt (by idempotency key) and
// records it (a charge the gateway never received is voided there); it
// applies paid changes not yet applied (or refunds them when they no
// longer apply); it completes refunds requested. Each settlement is
// audited. applier completes the paid changes (the wiring passes
// provisioning; nil: paid changes are left, with an error).
func (s *Service) Recover(ctx context.Context, now time.Time, applier ChangeApplier) error {
	// The attempts Recover may settle now: older than the grace, or owned
	// by another process (self: this one's owner, 0 if none) that is gone,
	// its owner lock free (probed for the statement only).
	q, before, self := s.q, now.Add(-recoveryGrace), s.owner.Load()
	ids := func(list func(context.Context, billdb.UnknownAttemptsParams) ([]string, error)) ([]string, error) {
		out, err := list(ctx, billdb.UnknownAttemptsParams{Before: before, Self: self, LockClass: int32(ownerLockClass)})
		if err != nil {
			return nil, fmt.Errorf("list unsettled payments: %w", err)
		}
		return out, nil
	}
	var errs []error
	unknown, err := ids(q.UnknownAttempts)
	if err != nil {
		return err
	}
	for _, id := range unknown {
		if err := s.recoverUnknown(ctx, id, now); err != nil {
			errs = append(errs, err)
		}
	}
	refunds, err := ids(func(ctx context.Context, p billdb.UnknownAttemptsParams) ([]string, error) {
		return q.RequestedRefunds(ctx, billdb.RequestedRefundsParams(p))
	})
	if err != nil {
		return err
	}
	for _, id := range refunds {
		if err := s.finishRefund(ctx, id, "recovered refund"); err != nil {
			errs = append(errs, err)
		}
	}
	paid, err := ids(func(ctx context.Context, p billdb.UnknownAttemptsParams) ([]string, error) {
		return q.PaidChangesToApply(ctx, billdb.PaidChangesToApplyParams(p))
	})
	if err != nil {
		return err
	}
	for _, change := range paid {
		if applier == nil {
			errs = append(errs, errors.New("billing: no change applier configured"))
			break
		}
		err := applier.ApplyPaidChange(ctx, change)
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
	a, err := s.loadAttempt(ctx, s.db, id)
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
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		return audit(ctx, tx, now, "billing", a.accountID, "payment.recovered", id, map[string]any{
			"key": a.key, "outcome": outcome, "found": found, "reference": res.TransactionRef, "invoice": a.invoiceID, "change": a.changeID})
	})
}
