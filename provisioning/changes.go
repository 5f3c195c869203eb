package provisioning

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/provdb"
)

// Biller prices change orders and writes their money side. Provisioning
// declares it; the daemon satisfies it with package billing, so neither
// package imports the other.
type Biller interface {
	// NewPeriod is the billing period a new subscription starts in.
	NewPeriod(acct Account, cycle string, at time.Time) (start, end time.Time)
	// PeriodPrice is the unit price per period of pkg on cycle, discounted.
	PeriodPrice(pkg Package, cycle string) int64
	// Quote prices the changes as of at, without writing.
	Quote(ctx context.Context, acct Account, changes []PriceChange, at time.Time) (Quote, error)
	// PreparePayment inserts in tx the payment intent of what a card
	// account pays at confirm (or returns the one a previous confirm of the
	// change left); nil when nothing is charged now. It refuses
	// (fault.Conflict) while another change of the account is paid and not
	// yet applied.
	PreparePayment(ctx context.Context, tx *store.Tx, acct Account, changeID string, q Quote, at time.Time) (Payment, error)
	// Pay charges the intent outside any transaction; a refusal is a
	// fault.PaymentRequired, recorded. An approval comes back unrecorded
	// (nil: nothing to record): the caller records it in the transaction
	// that applies the change, or on its own if that one fails.
	Pay(ctx context.Context, p Payment) (PaymentAnswer, error)
	// Refund gives back the payment of a change that can no longer be
	// applied (none: nothing to do).
	Refund(ctx context.Context, changeID, reason string) error
	// QueueRenewalDue queues into b the check RenewDue makes first: due
	// reports, once b has been sent, whether RenewDue has anything to do.
	QueueRenewalDue(b *store.Batch, accountID string, at time.Time, due *bool)
	// RenewDue renews the account's subscriptions whose period has begun
	// but is not invoiced yet, so that a change is priced against the
	// period in force.
	RenewDue(ctx context.Context, accountID string, at time.Time) error
	// SaveSubscription writes a subscription as a confirmed change leaves
	// it, in the change's transaction (billing owns subscriptions).
	SubscriptionWriter
	// Record writes the quote's pending items in tx and queues its invoice
	// (with the payment Pay took) into last, which the caller sends at the
	// end of tx, with its COMMIT: the invoice's number locks the issuer's
	// counter until then.
	Record(ctx context.Context, tx *store.Tx, last *store.Batch, acct Account, changeID string, q Quote, at time.Time) (invoiceID string, err error)
}

// SubscriptionWriter writes subscriptions: billing owns them, provisioning
// reads them to plan a change and hands over what the change leaves.
type SubscriptionWriter interface {
	SaveSubscription(ctx context.Context, tx *store.Tx, w SubscriptionWrite) error
}

// SubscriptionWrite is a subscription as a confirmed change leaves it.
type SubscriptionWrite struct {
	ID        string // the subscription; "" for a new one
	AccountID string
	Package   string
	Cycle     string
	Quantity  int
	// Restart starts a new period (a new subscription, or one brought back
	// from zero): PeriodStart, PeriodEnd and PeriodPriceMinor are its own.
	// A new one in trial has TrialEnd, when it is next billed.
	Restart          bool
	PeriodStart      time.Time
	PeriodEnd        time.Time
	PeriodPriceMinor int64
	TrialEnd         *time.Time
	At               time.Time // a new subscription's registration
	// SwitchCycle moves the subscription to a new period of Cycle
	// (PeriodStart, PeriodEnd, PeriodPriceMinor) with Quantity; a trial
	// keeps its first payment date (KeepNextPayment).
	SwitchCycle     bool
	KeepNextPayment bool
}

// Payment is a payment intent as the Biller's PreparePayment returns it,
// opaque to provisioning.
type Payment any

// PaymentAnswer is a gateway's approval of a change's payment that Pay
// has not recorded yet.
type PaymentAnswer interface {
	// Queue records it in the transaction the batch is sent in.
	Queue(b *store.Batch)
	// Committed tells that this transaction committed.
	Committed()
	// Record records it on its own (the transaction did not commit).
	Record(ctx context.Context) error
}

// PriceChange is one package's seat change, for pricing.
type PriceChange struct {
	Package          Package
	Cycle            string
	From, To         int
	PeriodStart      time.Time // the subscription's current period
	PeriodEnd        time.Time
	PeriodPriceMinor int64 // unit price per period in force for it
	Trial            bool  // in trial: nothing is charged before it ends
	// OneTimeMinor, when not zero, makes this a one-time charge instead of
	// a seat change: the whole net amount for To-From units (the setup fees
	// of numbers ordered), charged once at order, neither prorated nor
	// renewed.
	OneTimeMinor int64
}

// Quote is the money side of a change order.
type Quote struct {
	Items           []QuoteItem `json:"items"`
	DueNow          Amounts     `json:"due_now"`
	CreditNextBill  int64       `json:"credit_next_bill_minor"`
	ChargeNextBill  int64       `json:"charge_next_bill_minor"`
	Currency        string      `json:"currency"`
	PaymentMethod   string      `json:"payment_method"`
	PaymentMethodID string      `json:"payment_method_id,omitempty"`
}

// QuoteItem is the prorated amount of one package's change (negative: a
// credit).
type QuoteItem struct {
	Package       string    `json:"package"`
	Quantity      int       `json:"quantity"`
	ProratedMinor int64     `json:"prorated_minor"`
	PeriodStart   time.Time `json:"period_start"`
	PeriodEnd     time.Time `json:"period_end"`
	Note          string    `json:"note"`
	// OneTime marks a one-time charge (a setup fee), with its own
	// description and unit price.
	OneTime     bool   `json:"one_time,omitempty"`
	Description string `json:"description,omitempty"`
	UnitMinor   int64  `json:"unit_minor,omitempty"`
}

// OneTimeCharge is a one-time line of a preview (the setup fees of the
// numbers ordered): net, before tax; DueNow (card) or ChargeNextBill
// (invoice) include it with its tax.
type OneTimeCharge struct {
	Package     string `json:"package"`
	Description string `json:"description"`
	Quantity    int    `json:"quantity"`
	UnitMinor   int64  `json:"unit_minor"`
	AmountMinor int64  `json:"amount_minor"`
}

// Amounts are totals before and after tax, in minor units.
type Amounts struct {
	NetMinor   int64  `json:"net_minor"`
	TaxMinor   int64  `json:"tax_minor"`
	GrossMinor int64  `json:"gross_minor"`
	Currency   string `json:"currency"`
}

// ChangeRequest is an "Add/Modify plans" order: target quantities per
// package, optionally which lines go, and per-line package swaps.
type ChangeRequest struct {
	Items []ChangeItem `json:"items"`
	Swaps []Swap       `json:"swaps,omitempty"`
	// Numbers orders local numbers; ReleaseNumbers gives numbers back (they
	// go into quarantine). Both move the numbers' add-on quantity.
	Numbers        []NumberOrder `json:"numbers,omitempty"`
	ReleaseNumbers []string      `json:"release_numbers,omitempty"`
	// ReleaseEffective is when released numbers go: "now" or "period_end"
	// ("": the add-on's default).
	ReleaseEffective string `json:"release_effective,omitempty"`
	// ByOperator is set by the API for the operator's orders, who may pick
	// either effective time whatever the catalog lets customers choose.
	ByOperator bool `json:"by_operator,omitempty"`
}

// ChangeItem sets the target quantity of one package.
type ChangeItem struct {
	Package     string   `json:"package"`
	Quantity    int      `json:"quantity"`
	Cycle       string   `json:"cycle,omitempty"`
	RemoveLines []string `json:"remove_lines,omitempty"`
	// Effective is when a decrease takes effect: "now" (prorated credit) or
	// "period_end" (no credit; the lines stay until then). "": the
	// package's default.
	Effective string `json:"effective,omitempty"`
}

// Swap moves a line to another package, keeping its number and password.
type Swap struct {
	Line    string `json:"line"`
	Package string `json:"package"`
}

// Preview is what the customer confirms.
type Preview struct {
	ID             string        `json:"id"`
	AccountID      string        `json:"account_id"`
	Items          []PreviewItem `json:"items"`
	Swaps          []Swap        `json:"swaps,omitempty"`
	DueNow         Amounts       `json:"due_now"`
	CreditNextBill int64         `json:"credit_next_bill_minor"`
	ChargeNextBill int64         `json:"charge_next_bill_minor"`
	PaymentMode    string        `json:"payment_mode"`
	PaymentMethod  string        `json:"payment_method"`
	Priced         bool          `json:"priced"`
	CreatedAt      time.Time     `json:"created_at"`

	// Numbers are the numbers ordered and released; Scheduled the
	// account's changes waiting for a period end.
	Numbers   []NumberLine      `json:"numbers,omitempty"`
	Scheduled []ScheduledChange `json:"scheduled_changes"`
	// OneTime are the one-time charges of the order (setup fees).
	OneTime []OneTimeCharge `json:"one_time_charges,omitempty"`
}

// PreviewItem is one package before → after.
type PreviewItem struct {
	Package       string    `json:"package"`
	Name          string    `json:"name"`
	Cycle         string    `json:"cycle"`
	From          int       `json:"from"`
	To            int       `json:"to"`
	Direction     string    `json:"direction"` // up, down, same
	LinesCreated  int       `json:"lines_created"`
	LinesRemoved  []LineRef `json:"lines_removed"`
	UnitMinor     int64     `json:"unit_price_minor"`
	ProratedMinor int64     `json:"prorated_minor"`
	Note          string    `json:"note,omitempty"`
	// Effective is "now", or "period_end" for a decrease that waits for
	// EffectiveAt; LinesRemovedAtPeriodEnd are the lines it would remove
	// if it took effect now.
	Effective string `json:"effective"`
	// PerMonthMinor is the unit price per month, for display; CycleFrom is
	// the cycle billed so far when the order switches cycle (ProratedMinor
	// then nets the old period's credit and the new period's charge).
	PerMonthMinor           int64      `json:"per_month_minor"`
	CycleFrom               string     `json:"cycle_from,omitempty"`
	EffectiveAt             *time.Time `json:"effective_at,omitempty"`
	LinesRemovedAtPeriodEnd []LineRef  `json:"lines_removed_at_period_end,omitempty"`
}

// LineRef names a line in a preview or result.
type LineRef struct {
	ID        string `json:"id"`
	Extension int    `json:"extension"`
	Package   string `json:"package"`
}

// ConfirmResult is what confirm applied.
type ConfirmResult struct {
	ChangeID     string    `json:"change_id"`
	LinesCreated []LineRef `json:"lines_created"`
	LinesRemoved []LineRef `json:"lines_removed"`
	LinesSwapped []LineRef `json:"lines_swapped"`
	InvoiceID    *string   `json:"invoice_id"`
	// NumbersReserved are the numbers the order bought, NumbersReleased
	// those it gave back.
	NumbersReserved []string `json:"numbers_reserved"`
	NumbersReleased []string `json:"numbers_released"`
	// Scheduled are the ids of the decreases waiting for their period end.
	Scheduled []string `json:"scheduled_changes"`
}

// MaxQuantity bounds one package's seats (an absurd quantity is an error).
const MaxQuantity = 10_000

type subscription struct {
	ID          string
	Package     string
	Cycle       string
	Quantity    int
	Status      string
	PeriodPrice int64
	PeriodStart time.Time
	PeriodEnd   time.Time
	Version     int64
}

type lineRow struct {
	ID        string
	Package   string
	Extension int
	CreatedAt time.Time
	Device    bool
	Contacts  int
}

// plan is a change order worked out against the current state; preview and
// confirm both build it, and confirm applies it only if it is unchanged.
type plan struct {
	acct    Account
	items   []*planItem
	swaps   []swapPlan
	changes []PriceChange
	numbers []NumberLine  // numbers ordered and released
	oneTime []PriceChange // setup fees of the numbers ordered
	quote   Quote         // the biller's quote, set by render

	scheduled    []ScheduledChange // the account's pending scheduled changes
	numberAddons map[string]bool   // the add-ons numbers are sold under
}

type planItem struct {
	pkg    Package
	cycle  string
	sub    *subscription
	from   int
	to     int
	create int
	remove []lineRow

	switchFrom  string    // the cycle billed so far, when the order switches cycle
	effective   string    // requested: "", now or period_end
	scheduled   bool      // a decrease waiting for the period end
	atEnd       []lineRow // the lines it would remove now
	namedAtEnd  []string  // the lines the order named for removal
	effectiveAt time.Time
}

type swapPlan struct {
	line lineRow
	to   string
}

// PreviewChange works out and stores a change order without applying it.
func (s *Service) PreviewChange(ctx context.Context, accountID string, req ChangeRequest) (Preview, error) {
	var pv Preview
	// Two round trips: the state read with the BEGIN of a read-only
	// snapshot, then its COMMIT with the order's insert (which runs after
	// it, in a transaction of its own). The read also tells whether a scheduled change or a
	// renewal is due; they are applied first, as the jobs would, and the
	// state read again.
	renewed := false
	for {
		b := &store.Batch{}
		b.BeginTx(store.ReadOnlySnapshot)
		st := s.queueState(b, accountID, false, nil)
		var renewalDue bool
		checkDue := s.biller != nil && uuid.Validate(accountID) == nil && !renewed
		if checkDue {
			s.biller.QueueRenewalDue(b, accountID, s.clock.Now(), &renewalDue)
		}
		err := store.InPipeTx(ctx, s.db, b, func(tx *store.PipeTx) error {
			if checkDue && (renewalDue || st.scheduledDue(s.clock.Now())) {
				return errRenewFirst
			}
			p, err := s.makePlan(ctx, tx.Unit(), st, req)
			if err != nil {
				return err
			}
			if pv, err = s.render(ctx, p, uuid.NewString()); err != nil {
				return err
			}
			reqJSON, _ := json.Marshal(req)
			pvJSON, _ := json.Marshal(pv)
			// The order is stored with an asynchronous commit: a preview
			// lost in a crash is previewed again, and a confirm's own
			// (synchronous) commit flushes it first. Every confirm's COMMIT
			// waits for the WAL, the card ones holding the invoice counter:
			// fewer flushes to wait behind.
			end := &store.Batch{}
			end.QueueCommit(nil)
			end.Queue("begin")
			end.Queue("set local synchronous_commit = off")
			end.Queue(provdb.InsertChangeOrderSQL, pv.ID, accountID, reqJSON, pvJSON, pv.basisOf(), pv.CreatedAt)
			end.Queue("commit")
			if err := tx.Finish(ctx, end); err != nil {
				return fmt.Errorf("store preview: %w", err)
			}
			return nil
		})
		if errors.Is(err, errRenewFirst) {
			if err := s.renewDue(ctx, accountID); err != nil {
				return Preview{}, err
			}
			renewed = true
			continue
		}
		if err != nil {
			if fe, ok := fault.As(err); ok && fe.Kind != fault.NotFound {
				s.changeOrders.WithLabelValues("refused").Inc()
			}
			return Preview{}, err
		}
		s.changeOrders.WithLabelValues("previewed").Inc()
		return pv, nil
	}
}

// errRenewFirst stops a preview whose account has a scheduled change or a
// renewal due: renewDue applies them, then the preview reads again.
var errRenewFirst = errors.New("provisioning: scheduled changes or renewals due first")

// basisOf fingerprints everything the preview promised; confirm recomputes
// the preview and refuses if this differs.
func (pv Preview) basisOf() string {
	c := pv
	c.ID, c.CreatedAt = "", time.Time{}
	b, _ := json.Marshal(c)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// ChangeOrder returns a stored change order's preview (account-scoped by the
// caller).
func (s *Service) ChangeOrder(ctx context.Context, id string) (Preview, string, error) {
	if uuid.Validate(id) != nil {
		return Preview{}, "", fault.New(fault.NotFound, "", "change order not found")
	}
	o, err := s.q.ChangeOrderPreview(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Preview{}, "", fault.New(fault.NotFound, "", "change order not found")
	}
	if err != nil {
		return Preview{}, "", err
	}
	var pv Preview
	err = json.Unmarshal(o.Preview, &pv)
	return pv, o.Status, err
}

// ConfirmChange applies exactly what was previewed. A card account's
// charge is a durable intent: a first transaction checks the order and
// commits the payment intent, the gateway is called outside any
// transaction, then a second transaction records its answer and applies
// seats, lines (with their PBX revisions), the invoice, the audit trail
// (if it fails, the answer is recorded on its own). A confirm that
// charges nothing now applies in the first transaction.
// It refuses with fault.Conflict if anything the preview was computed from
// has changed, refunding a payment already taken. Confirming twice returns
// the first result.
func (s *Service) ConfirmChange(ctx context.Context, actor, changeID string, accountScope string) (ConfirmResult, error) {
	res, err := s.confirm(ctx, actor, changeID, accountScope)
	switch fe, _ := fault.As(err); {
	case err == nil:
		s.changeOrders.WithLabelValues("confirmed").Inc()
	case fe != nil && fe.Kind == fault.Conflict:
		s.changeOrders.WithLabelValues("conflict").Inc()
	case fe != nil && fe.Kind != fault.NotFound:
		s.changeOrders.WithLabelValues("refused").Inc()
	}
	return res, err
}

// ApplyPaidChange completes a change order whose payment was taken but
// not applied (a crash or a lost connection in between): billing's
// recovery job calls it. A change that no longer applies is refunded.
func (s *Service) ApplyPaidChange(ctx context.Context, changeID string) error {
	_, err := s.ConfirmChange(ctx, "billing", changeID, "")
	return err
}

func (s *Service) confirm(ctx context.Context, actor, changeID string, accountScope string) (ConfirmResult, error) {
	if uuid.Validate(changeID) != nil {
		return ConfirmResult{}, fault.New(fault.NotFound, "", "change order not found")
	}
	o, err := s.loadChangeOrder(ctx, changeID, accountScope)
	if err != nil {
		return ConfirmResult{}, err
	}
	var payment Payment
	var applied ConfirmResult
	appliedNow := false
	res, done, err := s.confirmStep(ctx, o, nil, func(tx *store.PipeTx, p *plan, pv Preview) error {
		if s.biller != nil && pv.Priced {
			// The intent is the transaction's only write: its COMMIT goes
			// in the same round trip.
			tx.CommitNextBatch(true)
			var err error
			payment, err = s.biller.PreparePayment(ctx, tx.Unit(), p.acct, changeID, p.quote, s.clock.Now())
			tx.CommitNextBatch(false)
			if err != nil || payment != nil || tx.Done() {
				return err
			}
		}
		// Nothing is charged now (an invoice account, a decrease, a card
		// account's credit): the change is applied in this transaction,
		// planned once.
		var err error
		applied, err = s.apply(ctx, tx, actor, p, pv)
		appliedNow = err == nil
		return err
	})
	if err != nil || done {
		return res, s.refundIfDead(ctx, changeID, err)
	}
	if appliedNow {
		return applied, nil
	}
	var answer PaymentAnswer
	if payment != nil {
		if answer, err = s.biller.Pay(ctx, payment); err != nil {
			return res, err
		}
	}
	// The gateway's answer is recorded in the transaction that applies the
	// change, under the account lock; if that one fails, on its own first.
	var record func(*store.Batch)
	if answer != nil {
		record = answer.Queue
	}
	res, done, err = s.confirmStep(ctx, o, record, func(tx *store.PipeTx, p *plan, pv Preview) error {
		var err error
		applied, err = s.apply(ctx, tx, actor, p, pv)
		return err
	})
	if answer != nil {
		if err == nil {
			answer.Committed()
		} else if rerr := answer.Record(context.WithoutCancel(ctx)); rerr != nil {
			// Left unknown: Recover asks the gateway and settles it.
			s.log.Error("record a payment answer failed; recovery settles it", "change", changeID, "err", rerr)
			return res, err
		}
	}
	if err == nil && !done {
		res = applied
	}
	return res, s.refundIfDead(ctx, changeID, err)
}

// renewDue has the biller invoice the periods that began and are not
// invoiced yet (the renewal job runs every quarter of an hour).
func (s *Service) renewDue(ctx context.Context, accountID string) error {
	if s.biller == nil || uuid.Validate(accountID) != nil {
		return nil
	}
	// As the renewal job does: period-end decreases first, so the renewal
	// bills the new quantities.
	now := s.clock.Now()
	if _, err := s.applyDueScheduled(ctx, now, accountID); err != nil {
		return fmt.Errorf("apply scheduled changes before renewing: %w", err)
	}
	if err := s.biller.RenewDue(ctx, accountID, now); err != nil {
		return fmt.Errorf("renew before the change: %w", err)
	}
	return nil
}

// refundIfDead refunds the payment of a change refused for good (the
// account changed since the preview): no payment without its change.
func (s *Service) refundIfDead(ctx context.Context, changeID string, err error) error {
	if fe, ok := fault.As(err); !ok || fe.Kind != fault.Conflict || s.biller == nil {
		return err
	}
	if rerr := s.biller.Refund(context.WithoutCancel(ctx), changeID, err.Error()); rerr != nil {
		s.log.Error("refund of a refused change failed; recovery retries it", "change", changeID, "err", rerr)
	}
	return err
}

// changeOrder is what confirm reads once of a stored order: the fields
// that never change after the preview.
type changeOrder struct {
	id, accountID, basis string
	req                  ChangeRequest
}

func (s *Service) loadChangeOrder(ctx context.Context, changeID, accountScope string) (changeOrder, error) {
	o := changeOrder{id: changeID}
	row, err := s.q.ChangeOrderToConfirm(ctx, changeID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && accountScope != "" && accountScope != row.AccountID) {
		return o, fault.New(fault.NotFound, "", "change order not found")
	}
	if err != nil {
		return o, err
	}
	o.accountID, o.basis = row.AccountID, row.Basis
	return o, json.Unmarshal(row.Request, &o.req)
}

// confirmStep runs fn in a transaction holding the account lock, with the
// change order's plan recomputed and checked against its preview; done
// reports an order already confirmed, whose first result it returns. The
// BEGIN, the lock, the order's status, more's statements (under the lock)
// and the state the plan needs go in one round trip.
func (s *Service) confirmStep(ctx context.Context, o changeOrder, more func(*store.Batch), fn func(tx *store.PipeTx, p *plan, pv Preview) error) (res ConfirmResult, done bool, err error) {
	var order provdb.ChangeOrderStatusRow
	b := &store.Batch{}
	b.BeginTx(store.ReadWrite)
	st := s.queueState(b, o.accountID, true, func(b *store.Batch) {
		// Under the account lock: a concurrent confirm of the same
		// order may have finished while we waited.
		b.Queue(provdb.ChangeOrderStatusSQL, o.id).QueryRow(func(row store.Row) error {
			return row.Scan(&order.Status, &order.Result)
		})
		if more != nil {
			more(b)
		}
	})
	err = store.InPipeTx(ctx, s.db, b, func(tx *store.PipeTx) error {
		if order.Status == "confirmed" {
			done = true
			return json.Unmarshal(order.Result, &res)
		}
		p, err := s.makePlan(ctx, tx.Unit(), st, o.req)
		if err != nil {
			if fe, ok := fault.As(err); ok {
				return fault.New(fault.Conflict, fe.Field, "the account changed since the preview: %s; preview again", fe.Msg)
			}
			return err
		}
		pv, err := s.render(ctx, p, o.id)
		if err != nil {
			return err
		}
		if pv.basisOf() != o.basis {
			return fault.New(fault.Conflict, "", "quantities, lines or prices changed since the preview; preview again")
		}
		return fn(tx, p, pv)
	})
	return res, done, err
}

// makePlan validates req against the account's state (read in tx): the
// reads the plan needs (loadPlanInputs), then the pure planner
// (planChange, plan.go).
func (s *Service) makePlan(ctx context.Context, tx *store.Tx, st *accountState, req ChangeRequest) (*plan, error) {
	now := s.clock.Now()
	in, err := loadPlanInputs(ctx, tx, st, req, now)
	if err != nil {
		return nil, err
	}
	p, err := planChange(in, req, s.biller, now)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// render turns a plan into the preview the customer sees, priced by the
// biller when there is one.
func (s *Service) render(ctx context.Context, p *plan, id string) (Preview, error) {
	pv := Preview{ID: id, AccountID: p.acct.ID, PaymentMode: p.acct.PaymentMode, CreatedAt: s.clock.Now(), Swaps: []Swap{}}
	pv.DueNow.Currency = p.acct.Currency
	var q Quote
	if s.biller != nil && len(p.changes) > 0 {
		var err error
		q, err = s.biller.Quote(ctx, p.acct, p.changes, s.clock.Now())
		if err != nil {
			return pv, err
		}
		p.quote = q
		pv.Priced = true
		pv.DueNow, pv.CreditNextBill, pv.ChargeNextBill, pv.PaymentMethod = q.DueNow, q.CreditNextBill, q.ChargeNextBill, q.PaymentMethod
	}
	for _, it := range p.items {
		pi := PreviewItem{Package: it.pkg.Code, Name: it.pkg.Name, Cycle: it.cycle, From: it.from, To: it.to,
			LinesCreated: it.create, LinesRemoved: []LineRef{}, Direction: "same", Effective: EffectiveNow}
		if it.scheduled {
			at := it.effectiveAt.In(p.acct.Location())
			pi.Effective, pi.EffectiveAt, pi.LinesRemovedAtPeriodEnd = EffectivePeriodEnd, &at, lineRefs(it.atEnd)
		}
		if it.to > it.from {
			pi.Direction = "up"
		} else if it.to < it.from {
			pi.Direction = "down"
		}
		if s.biller != nil {
			pi.UnitMinor = s.biller.PeriodPrice(it.pkg, it.cycle)
			if it.sub != nil && it.sub.Quantity > 0 && it.switchFrom == "" {
				pi.UnitMinor = it.sub.PeriodPrice
			}
			pi.PerMonthMinor = perMonth(pi.UnitMinor, it.cycle)
		}
		pi.CycleFrom = it.switchFrom
		var notes []string
		for _, qi := range q.Items {
			if qi.Package == it.pkg.Code && !qi.OneTime {
				pi.ProratedMinor += qi.ProratedMinor
				notes = append(notes, qi.Note)
			}
		}
		pi.Note = strings.Join(notes, "; ")
		for _, l := range it.remove {
			pi.LinesRemoved = append(pi.LinesRemoved, LineRef{ID: l.ID, Extension: l.Extension, Package: l.Package})
		}
		pv.Items = append(pv.Items, pi)
	}
	for _, sw := range p.swaps {
		pv.Swaps = append(pv.Swaps, Swap{Line: sw.line.ID, Package: sw.to})
	}
	for _, qi := range q.Items {
		if qi.OneTime {
			pv.OneTime = append(pv.OneTime, OneTimeCharge{Package: qi.Package, Description: qi.Description, Quantity: qi.Quantity,
				UnitMinor: qi.UnitMinor, AmountMinor: qi.ProratedMinor})
		}
	}
	pv.Numbers = p.numbers
	pv.Scheduled = p.scheduled
	return pv, nil
}

// apply writes the plan: subscriptions, lines, money, audit, NOTIFY, and
// marks the order confirmed.
func (s *Service) apply(ctx context.Context, tx *store.PipeTx, actor string, p *plan, pv Preview) (ConfirmResult, error) {
	now := s.clock.Now()
	res := ConfirmResult{ChangeID: pv.ID, LinesCreated: []LineRef{}, LinesRemoved: []LineRef{}, LinesSwapped: []LineRef{},
		NumbersReserved: []string{}, NumbersReleased: []string{}}
	q := provdb.New(tx.Unit())
	for _, it := range p.items {
		if it.scheduled {
			continue // applySchedule records it
		}
		if it.switchFrom != "" {
			if err := s.switchSubscription(ctx, tx.Unit(), p.acct, it); err != nil {
				return res, err
			}
		} else if err := s.saveSubscription(ctx, tx.Unit(), p.acct, it, now); err != nil {
			return res, err
		}
		for _, l := range it.remove {
			if err := q.DeleteLine(ctx, provdb.DeleteLineParams{ID: l.ID, Now: &now}); err != nil {
				return res, fmt.Errorf("remove line: %w", err)
			}
			if err := q.UnbindLine(ctx, l.ID); err != nil {
				return res, fmt.Errorf("unbind removed line: %w", err)
			}
			res.LinesRemoved = append(res.LinesRemoved, LineRef{ID: l.ID, Extension: l.Extension, Package: l.Package})
		}
	}
	for _, sw := range p.swaps {
		if err := q.SwapLine(ctx, provdb.SwapLineParams{ID: sw.line.ID, PackageCode: sw.to, ChangedAt: now}); err != nil {
			return res, fmt.Errorf("swap line: %w", err)
		}
		res.LinesSwapped = append(res.LinesSwapped, LineRef{ID: sw.line.ID, Extension: sw.line.Extension, Package: sw.to})
	}
	for _, it := range p.items {
		if it.create == 0 {
			continue
		}
		created, err := s.createLines(ctx, tx.Unit(), p.acct, it.pkg.Code, it.create, now)
		if err != nil {
			return res, err
		}
		res.LinesCreated = append(res.LinesCreated, created...)
	}
	var err error
	if res.NumbersReserved, res.NumbersReleased, err = s.applyNumbers(ctx, tx.Unit(), p, pv.ID, res.LinesRemoved, now); err != nil {
		return res, err
	}
	if res.Scheduled, err = s.applySchedule(ctx, tx.Unit(), p, pv.ID, now); err != nil {
		return res, err
	}
	// The last writes and the COMMIT in one round trip: the audit record,
	// the order confirmed with its result, and last the invoice, whose
	// number locks the issuer's counter until the commit. Then the
	// reconciler's wake-up.
	b := &store.Batch{}
	store.QueueAudit(b, now, actor, p.acct.ID, "change.confirm", pv.ID, map[string]any{
		"items": pv.Items, "swaps": pv.Swaps, "due_now": pv.DueNow, "credit_next_bill_minor": pv.CreditNextBill,
	})
	last := &store.Batch{}
	if s.biller != nil && pv.Priced {
		// The quote confirm's render just made, which matched the preview.
		inv, err := s.biller.Record(ctx, tx.Unit(), last, p.acct, pv.ID, p.quote, now)
		if err != nil {
			return res, err
		}
		if inv != "" {
			res.InvoiceID = &inv
		}
	}
	resJSON, _ := json.Marshal(res)
	b.Queue(provdb.ConfirmChangeOrderSQL, pv.ID, resJSON, now)
	b.Append(last)
	committed := false
	b.QueueCommit(&committed)
	// The wake-up goes after the COMMIT, in a transaction of its own with
	// an asynchronous commit: a NOTIFY in the confirm's transaction holds
	// PostgreSQL's global notify lock through that commit's WAL flush,
	// which serialized every confirm (Lock:object on commit, 4.5 of 16
	// clients waiting in the invoice benchmark). A wake-up lost is only
	// late: the next one, or the periodic pass, applies the lines.
	b.Queue("begin")
	b.Queue("set local synchronous_commit = off")
	b.Queue(notifyLinesSQL, NotifyChannel)
	b.Queue("commit")
	if err := tx.Finish(ctx, b); err != nil {
		if !committed {
			return res, fmt.Errorf("record the confirm: %w", err)
		}
		s.log.Warn("wake the reconciler after a confirm", "change", pv.ID, "err", err)
		tx.RollbackOpen(ctx) // the wake-up's own transaction
	}
	return res, nil
}

// saveSubscription has the subscription writer (billing) record the
// quantity a change leaves: a subscription brought back from zero or a
// new one starts a period, priced here.
func (s *Service) saveSubscription(ctx context.Context, tx *store.Tx, acct Account, it *planItem, now time.Time) error {
	if s.subs == nil {
		return errors.New("provisioning: no subscription writer configured")
	}
	w := SubscriptionWrite{AccountID: acct.ID, Package: it.pkg.Code, Cycle: it.cycle, Quantity: it.to, At: now}
	if it.sub != nil {
		w.ID = it.sub.ID
		if it.sub.Quantity == 0 && it.to > 0 {
			// A subscription brought back from zero starts a new period.
			pc := s.priceChange(acct, &planItem{pkg: it.pkg, cycle: it.cycle})
			w.Restart, w.PeriodStart, w.PeriodEnd, w.PeriodPriceMinor = true, pc.PeriodStart, pc.PeriodEnd, pc.PeriodPriceMinor
		}
		return s.subs.SaveSubscription(ctx, tx, w)
	}
	if it.to == 0 {
		return nil
	}
	pc := s.priceChange(acct, it)
	if pc.PeriodEnd.IsZero() { // no biller: a calendar month in UTC
		y, m, _ := now.UTC().Date()
		pc.PeriodStart = time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
		pc.PeriodEnd = pc.PeriodStart.AddDate(0, 1, 0)
		pc.PeriodPriceMinor = it.pkg.PriceMinor
	}
	w.Restart, w.PeriodStart, w.PeriodEnd, w.PeriodPriceMinor = true, pc.PeriodStart, pc.PeriodEnd, pc.PeriodPriceMinor
	if it.pkg.TrialDays > 0 {
		te := now.AddDate(0, 0, it.pkg.TrialDays)
		w.TrialEnd = &te
	}
	return s.subs.SaveSubscription(ctx, tx, w)
}

// subscriptionOf is a subscription as the state read returns it.
func subscriptionOf(r provdb.StateSubscriptionsRow) *subscription {
	return &subscription{ID: r.ID, Package: r.PackageCode, Cycle: r.Cycle, Quantity: int(r.Quantity), Status: r.Status,
		PeriodPrice: r.PeriodPriceMinor, PeriodStart: r.PeriodStart, PeriodEnd: r.PeriodEnd, Version: r.Version}
}

// lineOf is a live line as the state read returns it.
func lineOf(r provdb.StateLinesRow) lineRow {
	return lineRow{ID: r.ID, Package: r.PackageCode, Extension: int(r.Extension), CreatedAt: r.CreatedAt, Device: r.Device, Contacts: int(r.Contacts)}
}

// liveLines reads the account's live lines in tx, by id.
func liveLines(ctx context.Context, tx *store.Tx, accountID string) (map[string]lineRow, error) {
	rows, err := provdb.New(tx).StateLines(ctx, accountID)
	if err != nil {
		return nil, err
	}
	m := make(map[string]lineRow, len(rows))
	for _, r := range rows {
		m[r.ID] = lineOf(r)
	}
	return m, nil
}
