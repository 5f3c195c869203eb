package billing

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/pbxd/pbxd/internal/fault"
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
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The account row lock serialises default changes, as in AddPaymentMethod.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE`, accountID); err != nil {
			return fmt.Errorf("lock account: %w", err)
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM payment_methods WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL)`, id, accountID).Scan(&exists); err != nil {
			return fmt.Errorf("read payment method: %w", err)
		}
		if !exists {
			return fault.New(fault.NotFound, "", "payment method not found")
		}
		if _, err := tx.Exec(ctx, `UPDATE payment_methods SET is_default = (id = $2) WHERE account_id = $1 AND deleted_at IS NULL AND (is_default OR id = $2)`, accountID, id); err != nil {
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
