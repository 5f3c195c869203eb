package billing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/billdb"
)

// OneOffItem is one line of a one-time purchase (hardware), not prorated.
type OneOffItem struct {
	Code        string
	Description string
	Quantity    int64
	UnitMinor   int64
}

// ChargeOneOff charges the account's default card for items in full, now,
// whatever the account's payment mode (portal purchases are paid by card),
// and issues the paid invoice. ref names the purchase: the invoice id and
// the gateway's idempotency key derive from it, so calling again after a
// crash or a timeout never charges twice and returns the same invoice. The
// payment is a durable intent like every other (see intent.go): committed
// before the gateway is called, outside any transaction; an answer a crash
// lost is settled by Recover, and the next call with the same ref issues
// the invoice. A refused payment is a fault.PaymentRequired; an account
// without a card a fault.Conflict.
func (s *Service) ChargeOneOff(ctx context.Context, acct Account, ref string, items []OneOffItem, at time.Time) (string, error) {
	id := derivedID("oneoff", ref)
	exists, err := s.q.InvoiceExists(ctx, id)
	if err != nil {
		return "", fmt.Errorf("read invoice: %w", err)
	}
	if exists {
		return id, nil
	}
	// The line's "period" is the day of purchase: stored invoices carry a
	// date on every line.
	day := DateOf(at, acct.Location)
	lines := make([]Line, 0, len(items))
	for _, it := range items {
		amount, ok := mulInt64(it.Quantity, it.UnitMinor)
		if !ok {
			return "", fault.New(fault.Invalid, "quantity", "amount overflows")
		}
		lines = append(lines, Line{Description: it.Description, PackageCode: it.Code, Quantity: it.Quantity, UnitMinor: it.UnitMinor,
			PeriodStart: day, PeriodEnd: day.AddDays(1), ProrationNote: "one-time purchase", AmountMinor: amount, VATBasisPoints: acct.VAT})
	}
	local := at.In(acct.Location)
	inv, err := BuildInvoice(Draft{Issuer: s.cfg().Issuer, Customer: acct.Customer(), IssuedAt: local, DueAt: local, Currency: acct.Currency, Lines: lines})
	if err != nil {
		return "", fmt.Errorf("build hardware invoice: %w", err)
	}
	a, err := s.oneOffIntent(ctx, acct, "invoice:"+id, Money{Minor: inv.Totals.GrossMinor, Currency: acct.Currency}, at)
	if err != nil {
		return "", err
	}
	if AttemptOutcome(a.outcome) == AttemptUnknown {
		res, outcome, gerr := s.callGateway(ctx, a)
		if outcome == "" {
			return "", fmt.Errorf("charge hardware %s: %w", ref, gerr)
		}
		if _, err := s.recordOutcomes(ctx, []decided{{a: a, res: res, outcome: outcome}}, at); err != nil {
			return "", err
		}
		if a, err = s.loadAttempt(ctx, s.db, a.id); err != nil { // Recover may have recorded it first
			return "", err
		}
	}
	switch AttemptOutcome(a.outcome) {
	case AttemptApproved:
	case AttemptError:
		return "", fault.New(fault.PaymentRequired, "payment_method", "the payment gateway did not answer; nothing was charged, try again")
	case AttemptDeclined:
		return "", fault.New(fault.PaymentRequired, "payment_method", "the payment was declined")
	case AttemptUnknown, AttemptPending, AttemptManual:
		fallthrough
	default:
		return "", fault.New(fault.PaymentRequired, "payment_method", "the card payment was not approved at once (%s)", a.outcome)
	}
	is := &issue{id: id, accountID: acct.ID, inv: inv, status: StatusPaid, paymentRef: a.reference, paidAt: &at}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := s.issueTx(ctx, tx, is); err != nil {
			return err
		}
		if err := billdb.New(tx).LinkAttemptInvoice(ctx, billdb.LinkAttemptInvoiceParams{ID: a.id, InvoiceID: id}); err != nil {
			return fmt.Errorf("link payment to invoice: %w", err)
		}
		return audit(ctx, tx, at, "billing", acct.ID, "invoice.oneoff", id, map[string]any{"ref": ref, "gross_minor": inv.Totals.GrossMinor})
	})
	if store.IsUniqueViolation(err, "") {
		return id, nil // a concurrent call issued it
	}
	if err != nil {
		return "", fmt.Errorf("issue hardware invoice: %w", err)
	}
	s.countIssued(is.inv)
	return id, nil
}

// oneOffIntent returns the payment intent under key, committing a new one
// (outcome unknown) with the account's default card when there is none.
func (s *Service) oneOffIntent(ctx context.Context, acct Account, key string, amount Money, at time.Time) (*attempt, error) {
	id, err := s.q.AttemptByKey(ctx, key)
	if err == nil {
		return s.loadAttempt(ctx, s.db, id)
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("read payment intent: %w", err)
	}
	pm, err := defaultMethod(ctx, s.db, acct.ID)
	if err != nil {
		return nil, err
	}
	if pm == nil || pm.Gateway == "manual" {
		return nil, fault.New(fault.Conflict, "payment_method", "hardware is paid by card at purchase: add a card with POST /v1/accounts/%s/payment-methods", acct.ID)
	}
	a := &attempt{key: key, accountID: acct.ID, method: pm, amount: amount}
	err = s.db.InTx(ctx, func(tx *store.Tx) error { return s.beginAttempt(ctx, tx, a, at) })
	if store.IsUniqueViolation(err, "") { // a concurrent call committed it first
		return s.oneOffIntent(ctx, acct, key, amount, at)
	}
	if err != nil {
		return nil, err
	}
	return a, nil
}
