package provisioning

import (
	"errors"
	"time"

	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/provdb"
)

// accountState is what a change order is planned from: the account, the
// catalog, the account's subscriptions, live lines and pending scheduled
// changes, and which add-ons bill numbers. queueState reads it in one round
// trip, with the BEGIN of the transaction (preview and both confirm steps
// plan from it).
type accountState struct {
	acct         Account
	found        bool
	pkgs         map[string]Package
	subs         map[string]*subscription
	lines        map[string]lineRow
	scheduled    []ScheduledChange
	numberAddons map[string]bool
}

// queueState queues the reads of accountID's state into b: the state is
// filled in as b's results are read. lock takes the account row lock
// first, as lockAccount does. more queues the caller's own statements
// right after the account row (under the lock).
func (s *Service) queueState(b *store.Batch, accountID string, lock bool, more func(*store.Batch)) *accountState {
	st := &accountState{}
	acctSQL := accountByIDSQL
	if lock {
		acctSQL = lockAccountSQL
	}
	b.Queue(acctSQL, accountID).QueryRow(func(row store.Row) error {
		var err error
		st.acct, err = s.scanAccount(row)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		st.found = err == nil
		return err
	})
	if more != nil {
		more(b)
	}
	store.QueryRows(b.Queue(packagesSQL), func(list []provdb.AllPackagesRow) error {
		st.pkgs = make(map[string]Package, len(list))
		for _, r := range list {
			p, err := packageFromRow(provdb.ListPackagesRow(r))
			if err != nil {
				return err
			}
			st.pkgs[p.Code] = p
		}
		return nil
	})
	store.QueryRows(b.Queue(provdb.StateSubscriptionsSQL, accountID), func(list []provdb.StateSubscriptionsRow) error {
		st.subs = make(map[string]*subscription, len(list))
		for _, r := range list {
			st.subs[r.PackageCode] = subscriptionOf(r)
		}
		return nil
	})
	store.QueryRows(b.Queue(provdb.StateLinesSQL, accountID), func(list []provdb.StateLinesRow) error {
		st.lines = make(map[string]lineRow, len(list))
		for _, r := range list {
			st.lines[r.ID] = lineOf(r)
		}
		return nil
	})
	store.QueryRows(b.Queue(pendingScheduledSQL, accountID), func(list []provdb.ScheduledChange) error {
		st.scheduled = make([]ScheduledChange, 0, len(list))
		for _, r := range list {
			sc, err := scheduledFromRow(r)
			if err != nil {
				return err
			}
			st.scheduled = append(st.scheduled, sc)
		}
		return nil
	})
	store.QueryValues(b.Queue(provdb.NumberAddonsSQL), func(codes []string) error {
		st.numberAddons = make(map[string]bool, len(codes))
		for _, c := range codes {
			st.numberAddons[c] = true
		}
		return nil
	})
	return st
}

// scheduledDue reports a pending scheduled change of the account due at
// now (the job applies it; a preview applies it first).
func (st *accountState) scheduledDue(now time.Time) bool {
	for _, sc := range st.scheduled {
		if !sc.EffectiveAt.After(now) {
			return true
		}
	}
	return false
}
