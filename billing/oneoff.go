package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
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
// crash or a timeout never charges twice and returns the same invoice. No
// database transaction is open while the gateway is called. A refused
// payment is a fault.PaymentRequired; an account without a card a
// fault.Conflict.
func (s *Service) ChargeOneOff(ctx context.Context, acct Account, ref string, items []OneOffItem, at time.Time) (string, error) {
	id := derivedID("oneoff", ref)
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM invoices WHERE id = $1)`, id).Scan(&exists); err != nil {
		return "", fmt.Errorf("read invoice: %w", err)
	}
	if exists {
		return id, nil
	}
	pm, err := defaultMethod(ctx, s.pool, acct.ID)
	if err != nil {
		return "", err
	}
	if pm == nil || pm.Gateway == "manual" {
		return "", fault.New(fault.Conflict, "payment_method", "hardware is paid by card at purchase: add a card with POST /v1/accounts/%s/payment-methods", acct.ID)
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
	res, outcome, err := s.charge(ctx, pm, Money{Minor: inv.Totals.GrossMinor, Currency: acct.Currency}, "invoice:"+id)
	switch {
	case outcome == "declined" || outcome == "error":
		s.auditOutside(ctx, at, acct.ID, "payment."+outcome, ref, map[string]any{"amount_minor": inv.Totals.GrossMinor, "currency": acct.Currency, "gateway": pm.Gateway, "detail": res.Message})
		if err != nil {
			return "", fault.New(fault.PaymentRequired, "payment_method", "the payment gateway did not answer; nothing was charged, try again")
		}
		return "", fault.New(fault.PaymentRequired, "payment_method", "the payment was declined: %s", res.Message)
	case err != nil:
		return "", err
	case res.Outcome != OutcomeApproved:
		return "", fault.New(fault.PaymentRequired, "payment_method", "the card payment was not approved at once (%s)", res.Outcome)
	}
	is := &issue{id: id, accountID: acct.ID, inv: inv, status: StatusPaid, paymentRef: res.TransactionRef, paidAt: &at}
	err = store.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if err := insertAttempt(ctx, tx, id, pm.ID, at, inv.Totals.GrossMinor, outcome, res.TransactionRef, res.Message); err != nil {
			return err
		}
		if err := s.issueTx(ctx, tx, is); err != nil {
			return err
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
