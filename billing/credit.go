package billing

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
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
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var status, tz string
		err := tx.QueryRow(ctx, `SELECT i.status, a.timezone FROM invoices i JOIN accounts a ON a.id = i.account_id
			WHERE i.id = $1 FOR UPDATE OF i`, invoiceID).Scan(&status, &tz)
		if errors.Is(err, pgx.ErrNoRows) {
			return errNoInvoice
		}
		if err != nil {
			return fmt.Errorf("lock invoice: %w", err)
		}
		var credited bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM invoices WHERE corrects = $1)`, invoiceID).Scan(&credited); err != nil {
			return err
		}
		if credited || status == string(StatusVoid) {
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
		switch Status(status) {
		case StatusOpen:
			is.paymentRef = "cancels " + orig.Number
			if _, err := tx.Exec(ctx, `UPDATE invoices SET status = 'void' WHERE id = $1`, invoiceID); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE dunning SET next_retry_at = NULL WHERE invoice_id = $1`, invoiceID); err != nil {
				return err
			}
		default: // paid: the credit goes onto the next bill
			is.paymentRef = "credited on the next bill"
			for _, l := range lines {
				if _, err := tx.Exec(ctx, `INSERT INTO pending_items (id, account_id, package_code, description, quantity, unit_minor,
					amount_minor, currency, period_start, period_end, note, created_at)
					VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
					uuid.NewString(), orig.AccountID, l.PackageCode, l.Description, l.Quantity, l.UnitMinor, l.AmountMinor,
					string(orig.Currency), l.PeriodStart.Start(s.location(tz)), l.PeriodEnd.Start(s.location(tz)), l.ProrationNote, now); err != nil {
					return fmt.Errorf("credit for the next bill: %w", err)
				}
			}
		}
		if err := s.issueTx(ctx, store.Wrap(tx), is); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE invoices SET corrects = $2 WHERE id = $1`, id, invoiceID); err != nil {
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
