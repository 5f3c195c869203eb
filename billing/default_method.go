package billing

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/billdb"
)

// SetDefaultPaymentMethod makes one of the account's saved methods the one
// recurring billing charges (the portal's "make default"). Like a new
// default card, it then pays the account's overdue invoices at once (outside
// the transaction); what fails stays with the dunning job.
func (s *Service) SetDefaultPaymentMethod(ctx context.Context, actor, accountID, id string) error {
	if uuid.Validate(id) != nil || uuid.Validate(accountID) != nil {
		return fault.New(fault.NotFound, "", "payment method not found")
	}
	now := s.clock.Now()
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		q := billdb.New(tx)
		// The account row lock serialises default changes, as in AddPaymentMethod.
		if err := q.LockAccount(ctx, accountID); err != nil {
			return fmt.Errorf("lock account: %w", err)
		}
		exists, err := q.PaymentMethodExists(ctx, billdb.PaymentMethodExistsParams{ID: id, AccountID: accountID})
		if err != nil {
			return fmt.Errorf("read payment method: %w", err)
		}
		if !exists {
			return fault.New(fault.NotFound, "", "payment method not found")
		}
		if err := q.SetDefaultMethod(ctx, billdb.SetDefaultMethodParams{ID: id, AccountID: accountID}); err != nil {
			return fmt.Errorf("set default: %w", err)
		}
		if err := reopenDunning(ctx, tx, accountID, now); err != nil {
			return err
		}
		return audit(ctx, tx, now, actor, accountID, "payment_method.default", id, nil)
	})
	if err != nil {
		return err
	}
	if _, err := s.chargeOverdue(ctx, accountID, now); err != nil {
		s.log.Warn("charging overdue invoices with the new default method; the dunning job retries", "account", accountID, "err", err)
	}
	return nil
}
