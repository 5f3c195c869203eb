package billing

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/billdb"
)

// CreditNote corrects an issued invoice, which is never edited: it issues a
// credit note with the invoice's lines negated, numbered in the same gapless
// series. An open invoice is cancelled by it (status void, dunning ended); a
// paid one is credited on the account's next bill (pbxd makes no cash
// refunds). An invoice is credited at most once.
func (s *Service) CreditNote(ctx context.Context, actor, invoiceID, reason string) (StoredInvoice, error) {
	if uuid.Validate(invoiceID) != nil {
		return StoredInvoice{}, errNoInvoice
	}
	if len(reason) > 500 {
		return StoredInvoice{}, fault.New(fault.Invalid, "reason", "reason is at most 500 characters")
	}
	orig, err := s.Invoice(ctx, invoiceID, "")
	if err != nil {
		return StoredInvoice{}, err
	}
	if orig.Kind != KindInvoice {
		return StoredInvoice{}, fault.New(fault.Conflict, "", "a credit note cannot itself be credited")
	}
	now := s.clock.Now()
	id := uuid.NewString()
	var is *issue
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		q := billdb.New(tx)
		locked, err := q.LockInvoiceForCredit(ctx, invoiceID)
		if errors.Is(err, store.ErrNotFound) {
			return errNoInvoice
		}
		if err != nil {
			return fmt.Errorf("lock invoice: %w", err)
		}
		status, tz := Status(locked.Status), locked.Timezone
		credited, err := q.InvoiceCredited(ctx, invoiceID)
		if err != nil {
			return err
		}
		if credited || status == StatusVoid {
			return fault.New(fault.Conflict, "", "invoice %s is already credited or void", orig.Number)
		}
		lines := make([]Line, 0, len(orig.Lines))
		for _, l := range orig.Lines {
			l.AmountMinor, l.Quantity = -l.AmountMinor, -l.Quantity
			l.ProrationNote = "credit for " + orig.Number
			lines = append(lines, l)
		}
		local := now.In(s.location(tz))
		cfg := s.cfg()
		inv, err := BuildInvoice(Draft{Kind: KindCreditNote, Corrects: orig.Number, Issuer: cfg.Issuer, Customer: orig.Customer,
			IssuedAt: local, DueAt: local, Currency: orig.Currency, Lines: lines})
		if err != nil {
			return fmt.Errorf("build credit note: %w", err)
		}
		is = &issue{id: id, accountID: orig.AccountID, inv: inv, status: StatusPaid, paidAt: &now}
		switch status {
		case StatusOpen:
			is.paymentRef = "cancels " + orig.Number
			if err := q.VoidInvoice(ctx, invoiceID); err != nil {
				return err
			}
			if err := q.EndDunning(ctx, invoiceID); err != nil {
				return err
			}
		case StatusPaid: // the credit goes onto the next bill
			is.paymentRef = "credited on the next bill"
			for _, l := range lines {
				if err := q.InsertCreditItem(ctx, billdb.InsertCreditItemParams{ID: uuid.NewString(), AccountID: orig.AccountID,
					PackageCode: l.PackageCode, Description: l.Description, Quantity: int32(l.Quantity), UnitMinor: l.UnitMinor, AmountMinor: l.AmountMinor,
					Currency: string(orig.Currency), PeriodStart: l.PeriodStart.Start(s.location(tz)), PeriodEnd: l.PeriodEnd.Start(s.location(tz)),
					Note: l.ProrationNote, CreatedAt: now}); err != nil {
					return fmt.Errorf("credit for the next bill: %w", err)
				}
			}
		case StatusVoid: // refused above
		}
		if err := s.issueTx(ctx, tx, is); err != nil {
			return err
		}
		if err := q.SetCorrects(ctx, billdb.SetCorrectsParams{ID: id, Corrects: invoiceID}); err != nil {
			return err
		}
		return audit(ctx, tx, now, actor, orig.AccountID, "invoice.credit_note", invoiceID, map[string]any{"credit_note": id, "reason": reason})
	})
	if err != nil {
		return StoredInvoice{}, err
	}
	s.countIssued(is.inv)
	return s.Invoice(ctx, id, "")
}
