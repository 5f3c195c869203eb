package billing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/billdb"
)

// Change is one package's seat change in a change order, with the period
// and unit price in force for the subscription (a new subscription's first
// period and current price).
type Change struct {
	Package          Package
	Cycle            Cycle
	From, To         int
	PeriodStart      time.Time
	PeriodEnd        time.Time
	PeriodPriceMinor int64
	// Trial: nothing is charged or credited before the trial ends.
	Trial bool
	// OneTimeMinor, when not zero, makes the change a one-time charge of
	// this net amount for To-From units (a number's setup fee): charged once
	// at order, whole (never prorated), on no renewal.
	OneTimeMinor int64
}

// ChangeQuote is the money side of a change order.
type ChangeQuote struct {
	// Lines are the prorated lines, charges (increases) and credits
	// (decreases, negative), in the order of the changes.
	Lines []Line
	// OneTime are the one-time charges (setup fees), whole; DueNow (card)
	// or ChargeNextBill (invoice) include them.
	OneTime []Line
	// DueNow is what a card account pays at confirm: the charges' totals.
	// Zero for invoice accounts, whose charges wait for the next bill.
	DueNow Totals
	// ChargeNextBill is the net of charges waiting for the next bill.
	ChargeNextBill int64
	// CreditNextBill is the magnitude of the credit on the next bill.
	CreditNextBill int64
	// PaymentMethod is the default method's gateway ("" if none).
	PaymentMethod   string
	PaymentMethodID string
}

// QuoteChanges prices changes as of at without writing: increases are
// prorated charges, decreases prorated credits (none if the config says
// credit_on_decrease: false), over the subscription's current period in the
// account's time zone, with the package's proration settings.
func (s *Service) QuoteChanges(ctx context.Context, acct Account, changes []Change, at time.Time) (ChangeQuote, error) {
	var q ChangeQuote
	cfg := s.cfg()
	day := DateOf(at, acct.Location)
	var charges []TaxLine
	for _, c := range changes {
		if c.OneTimeMinor != 0 {
			l := OneTimeLine(c, day, acct.VAT)
			q.OneTime = append(q.OneTime, l)
			if acct.PaymentMode == ModeCard {
				charges = append(charges, TaxLine{NetMinor: l.AmountMinor, Rate: l.VATBasisPoints})
			} else {
				q.ChargeNextBill += l.AmountMinor
			}
			continue
		}
		delta := c.To - c.From
		if delta == 0 || c.Trial || (delta < 0 && !cfg.CreditOnDecrease) {
			continue
		}
		ps, pe := DateOf(c.PeriodStart, acct.Location), DateOf(c.PeriodEnd, acct.Location)
		l, err := ProratedLine(c.Package.Name, c.Package.Code, int64(delta), c.PeriodPriceMinor, ps, pe, day, acct.VAT, c.Package.Proration)
		if err != nil {
			return q, fmt.Errorf("price %s: %w", c.Package.Code, err)
		}
		if l.AmountMinor == 0 {
			continue
		}
		q.Lines = append(q.Lines, l)
		switch {
		case l.AmountMinor < 0:
			q.CreditNextBill -= l.AmountMinor
		case acct.PaymentMode == ModeCard:
			charges = append(charges, TaxLine{NetMinor: l.AmountMinor, Rate: l.VATBasisPoints})
		default:
			q.ChargeNextBill += l.AmountMinor
		}
	}
	t, err := ComputeTotals(charges)
	if err != nil {
		return q, fmt.Errorf("change totals: %w", err)
	}
	q.DueNow = t
	// No database read here: the caller may hold a transaction, and a
	// second connection per quote can exhaust the pool under load. Which
	// card pays is settled by RecordChange, in the caller's transaction.
	q.PaymentMethod = acct.PaymentMode
	return q, nil
}

// OneTimeLine is the invoice line of a one-time charge c (a setup fee)
// ordered on day: "Setup fee: <package>", the whole amount, with the unit
// price when the units share it evenly (else one unit of the whole).
func OneTimeLine(c Change, day Date, vat BasisPoints) Line {
	qty := int64(c.To - c.From)
	unit := c.OneTimeMinor
	if qty > 1 && c.OneTimeMinor%qty == 0 {
		unit = c.OneTimeMinor / qty
	} else {
		qty = 1
	}
	return Line{Description: "Setup fee: " + c.Package.Name, PackageCode: c.Package.Code, Quantity: qty, UnitMinor: unit,
		PeriodStart: day, PeriodEnd: day.AddDays(1), ProrationNote: "one-time, not prorated", AmountMinor: c.OneTimeMinor, VATBasisPoints: vat}
}

// RecordItem is one priced line of a confirmed change, as quoted.
type RecordItem struct {
	Package     string
	Quantity    int64
	AmountMinor int64
	PeriodStart Date
	PeriodEnd   Date
	Note        string
	// Description and UnitMinor, when set, replace the package's name and
	// period price (one-time charges).
	Description string
	UnitMinor   int64
}

// RecordChange writes a confirmed change's money side in tx, the change's
// own transaction. Card accounts: the charges are invoiced, with the
// payment PayChange took before this transaction (none is a
// fault.Conflict); credits wait for the next bill. Invoice accounts: everything waits
// for the next bill. dueGross is what the preview promised; a different
// amount is a fault.Conflict. It returns the invoice id, or "".
//
// With last not nil, the invoice's insert is queued into last instead of
// run: the caller sends last at the very end of its transaction, in one
// round trip with its COMMIT, because the insert locks the issuer's
// invoice counter (gapless numbers) until the transaction ends, and every
// card confirm queues on that lock.
func (s *Service) RecordChange(ctx context.Context, tx *store.Tx, last *store.Batch, acct Account, changeID string, items []RecordItem, dueGross int64, at time.Time) (string, error) {
	if len(items) == 0 {
		return "", nil
	}
	cfg := s.cfg()
	codes := make([]string, 0, len(items))
	charged := false // something is charged now, not on the next bill
	for _, it := range items {
		codes = append(codes, it.Package)
		charged = charged || (it.AmountMinor > 0 && acct.PaymentMode == ModeCard)
	}
	type pkgInfo struct {
		name string
		unit int64
	}
	info := map[string]pkgInfo{}
	// One round trip: the packages' names and prices, and for a card
	// account the change's payment, linked to its invoice as it is read
	// (the link is deferred to commit; a refusal below rolls it back with
	// the transaction). The payment was taken before this transaction
	// (PrepareChangePayment, PayChange): the invoice records it.
	b := &store.Batch{}
	store.QueryRows(b.Queue(billdb.ChangePackagesSQL, acct.ID, codes), func(pkgs []billdb.ChangePackagesRow) error {
		for _, p := range pkgs {
			info[p.Code] = pkgInfo{name: p.Name, unit: p.UnitMinor}
		}
		return nil
	})
	is := &issue{id: derivedID("change", changeID), accountID: acct.ID, status: StatusOpen}
	var outcome AttemptOutcome
	var ref string
	var paid int64
	linked := false
	if charged {
		store.QueryRows(b.Queue(billdb.LinkChangePaymentSQL, changeID, is.id), func(ps []billdb.LinkChangePaymentRow) error {
			if len(ps) == 1 { // at most one live payment per change
				outcome, ref, paid, linked = AttemptOutcome(ps[0].Outcome), ps[0].Reference, ps[0].AmountMinor, true
			}
			return nil
		})
	}
	if err := tx.SendBatch(ctx, b); err != nil {
		return "", fmt.Errorf("read packages and change payment: %w", err)
	}
	q := billdb.New(tx)
	var charges []Line
	for _, it := range items {
		pi := info[it.Package]
		if pi.name == "" {
			pi.name = it.Package
		}
		if it.Description != "" {
			pi.name = it.Description
		}
		if it.UnitMinor != 0 {
			pi.unit = it.UnitMinor
		}
		l := Line{Description: pi.name, PackageCode: it.Package, Quantity: it.Quantity, UnitMinor: pi.unit,
			PeriodStart: it.PeriodStart, PeriodEnd: it.PeriodEnd, ProrationNote: it.Note, AmountMinor: it.AmountMinor, VATBasisPoints: acct.VAT}
		if it.AmountMinor > 0 && acct.PaymentMode == ModeCard {
			charges = append(charges, l)
			continue
		}
		if it.AmountMinor == 0 {
			continue
		}
		if err := q.InsertChangeItem(ctx, billdb.InsertChangeItemParams{ID: uuid.NewString(), AccountID: acct.ID, PackageCode: l.PackageCode,
			Description: l.Description, Quantity: int32(l.Quantity), UnitMinor: l.UnitMinor, AmountMinor: l.AmountMinor, Currency: string(acct.Currency),
			PeriodStart: l.PeriodStart.Start(time.UTC), PeriodEnd: l.PeriodEnd.Start(time.UTC), Note: l.ProrationNote, CreatedAt: at, ChangeID: &changeID}); err != nil {
			return "", fmt.Errorf("store pending item: %w", err)
		}
	}
	if len(charges) == 0 {
		if dueGross != 0 {
			return "", fault.New(fault.Conflict, "", "the amount due changed since the preview; preview again")
		}
		return "", nil
	}
	if !linked {
		return "", fault.New(fault.Conflict, "payment_method", "no payment was taken for this change; confirm it again")
	}
	local := at.In(acct.Location)
	inv, err := BuildInvoice(Draft{Issuer: cfg.Issuer, Customer: acct.Customer(), IssuedAt: local, DueAt: local, Currency: acct.Currency, Lines: charges})
	if err != nil {
		return "", fmt.Errorf("build change invoice: %w", err)
	}
	if inv.Totals.GrossMinor != dueGross || paid != dueGross {
		return "", fault.New(fault.Conflict, "", "the amount due is %s, the preview said %s and %s was paid; preview again",
			acct.Currency.FormatMinor(inv.Totals.GrossMinor), acct.Currency.FormatMinor(dueGross), acct.Currency.FormatMinor(paid))
	}
	is.inv = inv
	switch outcome {
	case AttemptApproved:
		is.status, is.paymentRef, is.paidAt = StatusPaid, ref, &at
	case AttemptPending: // a bank transfer the operator will mark paid
		is.inv.DueAt = local.AddDate(0, 0, cfg.PaymentTermDays)
	case AttemptUnknown, AttemptDeclined, AttemptError, AttemptManual:
		// LinkChangePayment links only approved and pending payments.
		return "", fmt.Errorf("change %s: payment %s", changeID, outcome)
	}
	if last != nil {
		if err := queueInvoices(last, []*issue{is}, cfg.IssuerCode); err != nil {
			return "", err
		}
	} else if err := s.issueTx(ctx, tx, is); err != nil {
		return "", err
	}
	s.countIssued(is.inv)
	return is.id, nil
}

// method is a stored payment method with its token (never shown).
type method struct {
	ID      string
	Gateway string
	Token   string
}

// defaultMethod reads the account's default payment method, nil if none.
func defaultMethod(ctx context.Context, db billdb.DBTX, accountID string) (*method, error) {
	r, err := billdb.New(db).DefaultMethod(ctx, accountID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read default payment method: %w", err)
	}
	return &method{ID: r.ID, Gateway: r.Gateway, Token: r.Token}, nil
}

func insertAttempt(ctx context.Context, tx *store.Tx, invoiceID, methodID string, at time.Time, amount int64, outcome AttemptOutcome, ref, detail string) error {
	var pm *string
	if methodID != "" {
		pm = &methodID
	}
	err := billdb.New(tx).InsertAttempt(ctx, billdb.InsertAttemptParams{ID: uuid.NewString(), InvoiceID: &invoiceID, PaymentMethodID: pm,
		At: at, AmountMinor: amount, Outcome: string(outcome), Reference: ref, Detail: detail})
	if err != nil {
		return fmt.Errorf("record payment attempt: %w", err)
	}
	return nil
}
