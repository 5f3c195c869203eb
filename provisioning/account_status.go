package provisioning

import (
	"context"
	"fmt"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/provdb"
)

// SetAccountStatus suspends or resumes an account (operator). Suspending
// takes every active line off the PBX (state suspended, kept with its
// password) and change orders are refused until it is resumed. Resuming
// brings back the lines of subscriptions that are not inactive: dunning's
// own suspensions stay until the invoice is paid.
func (s *Service) SetAccountStatus(ctx context.Context, actor, accountID string, suspend bool) (Account, error) {
	from, to := AccountActive, AccountSuspended
	if !suspend {
		from, to = AccountSuspended, AccountActive
	}
	now := s.clock.Now()
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		acct, err := s.lockAccount(ctx, tx, accountID)
		if err != nil {
			return err
		}
		if AccountStatus(acct.Status) == to {
			return nil // already there: nothing to do, nothing to audit
		}
		if AccountStatus(acct.Status) != from {
			return fault.New(fault.Conflict, "", "account is %s", acct.Status)
		}
		q := provdb.New(tx)
		if err := q.SetAccountStatus(ctx, provdb.SetAccountStatusParams{ID: accountID, Status: string(to)}); err != nil {
			return fmt.Errorf("set account status: %w", err)
		}
		var n int64
		if suspend {
			n, err = q.SuspendAccountLines(ctx, provdb.SuspendAccountLinesParams{AccountID: accountID, ChangedAt: now})
		} else {
			n, err = q.ResumeAccountLines(ctx, provdb.ResumeAccountLinesParams{AccountID: accountID, ChangedAt: now})
		}
		if err != nil {
			return fmt.Errorf("switch lines: %w", err)
		}
		if err := audit(ctx, tx, now, actor, accountID, "account."+string(to), accountID, map[string]any{"lines": n}); err != nil {
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
	if p := SeatPreference(pref); p != SeatAutoPurchase && p != SeatBlock {
		return Account{}, fault.New(fault.Invalid, "seat_preference", "seat_preference must be auto_purchase or block")
	}
	now := s.clock.Now()
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		acct, err := s.lockAccount(ctx, tx, accountID)
		if err != nil {
			return err
		}
		if acct.SeatPreference == pref {
			return nil
		}
		if err := provdb.New(tx).SetSeatPreference(ctx, provdb.SetSeatPreferenceParams{ID: accountID, SeatPreference: pref}); err != nil {
			return fmt.Errorf("set seat preference: %w", err)
		}
		return audit(ctx, tx, now, actor, accountID, "account.seat_preference", accountID, map[string]any{"from": acct.SeatPreference, "to": pref})
	})
	if err != nil {
		return Account{}, err
	}
	return s.Account(ctx, accountID)
}
