package provisioning

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pbxd/pbxd/internal/store"
)

// CycleNames are the billing cycles a package may offer, shortest first.
var CycleNames = []string{"monthly", "quarterly", "semiannual", "annual"}

// cycleMonths is a cycle's length in calendar months (0: unknown).
func cycleMonths(c string) int64 {
	switch c {
	case "monthly":
		return 1
	case "quarterly":
		return 3
	case "semiannual":
		return 6
	case "annual":
		return 12
	}
	return 0
}

// perMonth is the per-month figure of a period price, for display:
// round(period / months), half away from zero, in integers.
func perMonth(periodMinor int64, cycle string) int64 {
	m := cycleMonths(cycle)
	if m == 0 {
		return 0
	}
	q, r := periodMinor/m, periodMinor%m
	if 2*r >= m {
		q++
	} else if 2*r <= -m {
		q--
	}
	return q
}

// switchChanges prices a cycle switch: the seats leave the old cycle (a
// prorated credit for the rest of the current period, at the price in force
// for it) and join the new one (a prorated charge for a new period of the
// new cycle starting where the old calendar lines up, at today's price).
func (s *Service) switchChanges(acct Account, it *planItem) []PriceChange {
	return switchChangesOf(s.biller, s.clock.Now(), acct, it)
}

// switchChangesOf is switchChanges as of now, priced by pr (nil: no
// billing).
func switchChangesOf(pr periodPricer, now time.Time, acct Account, it *planItem) []PriceChange {
	old := PriceChange{Package: it.pkg, Cycle: it.switchFrom, From: it.from, To: 0,
		PeriodStart: it.sub.PeriodStart, PeriodEnd: it.sub.PeriodEnd, PeriodPriceMinor: it.sub.PeriodPrice, Trial: it.sub.Status == SubscriptionTrial}
	nw := PriceChange{Package: it.pkg, Cycle: it.cycle, From: 0, To: it.to, Trial: old.Trial}
	if pr != nil {
		nw.PeriodStart, nw.PeriodEnd = pr.NewPeriod(acct, it.cycle, now)
		nw.PeriodPriceMinor = pr.PeriodPrice(it.pkg, it.cycle)
	}
	return []PriceChange{old, nw}
}

// switchSubscription moves a subscription to its new cycle: a new period
// of that cycle, its price, and the new quantity.
func (s *Service) switchSubscription(ctx context.Context, tx *store.Tx, acct Account, it *planItem) error {
	nw := s.switchChanges(acct, it)[1]
	if nw.PeriodEnd.IsZero() {
		return fmt.Errorf("switch %s to %s: no billing period (billing is off)", it.pkg.Code, it.cycle)
	}
	if s.subs == nil {
		return errors.New("provisioning: no subscription writer configured")
	}
	err := s.subs.SaveSubscription(ctx, tx, SubscriptionWrite{ID: it.sub.ID, AccountID: acct.ID, Package: it.pkg.Code, Quantity: it.to,
		Cycle: it.cycle, PeriodStart: nw.PeriodStart, PeriodEnd: nw.PeriodEnd, PeriodPriceMinor: nw.PeriodPriceMinor,
		SwitchCycle: true, KeepNextPayment: it.sub.Status == SubscriptionTrial}) // the trial's end stays the first payment
	if err != nil {
		return fmt.Errorf("switch cycle: %w", err)
	}
	return nil
}
