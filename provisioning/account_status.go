package provisioning

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
)

// SetAccountStatus suspends or resumes an account (operator). Suspending
// takes every active line off the PBX (state suspended, kept with its
// password) and change orders are refused until it is resumed. Resuming
// brings back the lines of subscriptions that are not inactive: dunning's
// own suspensions stay until the invoice is paid.
func (s *Service) SetAccountStatus(ctx context.Context, actor, accountID string, suspend bool) (Account, error) {
	from, to := "active", "suspended"
	if !suspend {
		from, to = "suspended", "active"
	}
	now := s.clock.Now()
	err := store.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		acct, err := lockAccount(ctx, tx, accountID)
		if err != nil {
			return err
		}
		if acct.Status == to {
			return nil // already there: nothing to do, nothing to audit
		}
		if acct.Status != from {
			return fault.New(fault.Conflict, "", "account is %s", acct.Status)
		}
		if _, err := tx.Exec(ctx, `UPDATE accounts SET status = $2 WHERE id = $1`, accountID, to); err != nil {
			return fmt.Errorf("set account status: %w", err)
		}
		q := `UPDATE lines SET state = 'suspended', revision = revision + 1, changed_at = $2 WHERE account_id = $1 AND state = 'active'`
		if !suspend {
			q = `UPDATE lines l SET state = 'active', revision = revision + 1, changed_at = $2
				WHERE l.account_id = $1 AND l.state = 'suspended' AND NOT EXISTS (SELECT 1 FROM subscriptions s
				WHERE s.account_id = l.account_id AND s.package_code = l.package_code AND s.status = 'inactive')`
		}
		tag, err := tx.Exec(ctx, q, accountID, now)
		if err != nil {
			return fmt.Errorf("switch lines: %w", err)
		}
		if err := audit(ctx, tx, now, actor, accountID, "account."+to, accountID, map[string]any{"lines": tag.RowsAffected()}); err != nil {
			return err
		}
		return notifyLines(ctx, tx)
	})
	if err != nil {
		return Account{}, err
	}
	return s.Account(ctx, accountID)
}

// SetSeatPreference chooses what happens when a new line is needed and no
// seat is free: auto_purchase (buy one, prorated) or block (refuse).
func (s *Service) SetSeatPreference(ctx context.Context, actor, accountID, pref string) (Account, error) {
	if pref != "auto_purchase" && pref != "block" {
		return Account{}, fault.New(fault.Invalid, "seat_preference", "seat_preference must be auto_purchase or block")
	}
	now := s.clock.Now()
	err := store.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		acct, err := lockAccount(ctx, tx, accountID)
		if err != nil {
			return err
		}
		if acct.SeatPreference == pref {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE accounts SET seat_preference = $2 WHERE id = $1`, accountID, pref); err != nil {
			return fmt.Errorf("set seat preference: %w", err)
		}
		return audit(ctx, tx, now, actor, accountID, "account.seat_preference", accountID, map[string]any{"from": acct.SeatPreference, "to": pref})
	})
	if err != nil {
		return Account{}, err
	}
	return s.Account(ctx, accountID)
}
