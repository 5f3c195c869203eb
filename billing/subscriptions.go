package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/billdb"
)

// SubscriptionWrite is a subscription as a confirmed change order leaves
// it. Billing owns subscriptions: provisioning plans the change and hands
// the result over (its Biller), in the change's own unit of work.
type SubscriptionWrite struct {
	ID        string // the subscription; "" for a new one
	AccountID string
	Package   string
	Cycle     string
	Quantity  int
	// Restart starts a new period (a new subscription, or one brought back
	// from zero quantity): PeriodStart, PeriodEnd and PeriodPriceMinor are
	// its own. A new one in trial has TrialEnd, when it is next billed.
	Restart          bool
	PeriodStart      time.Time
	PeriodEnd        time.Time
	PeriodPriceMinor int64
	TrialEnd         *time.Time
	At               time.Time // a new subscription's registration
	// SwitchCycle moves the subscription to a new period of Cycle
	// (PeriodStart, PeriodEnd, PeriodPriceMinor) with Quantity; a trial
	// keeps its first payment date (KeepNextPayment).
	SwitchCycle     bool
	KeepNextPayment bool
}

// SaveSubscription writes w in tx: a new quantity, a restarted period, a
// switch of cycle, or a new subscription (active, or in trial until TrialEnd). It needs no
// Service: provisioning's tests write subscriptions with it too.
func SaveSubscription(ctx context.Context, tx *store.Tx, w SubscriptionWrite) error {
	q := billdb.New(tx)
	switch {
	case w.ID != "" && w.SwitchCycle:
		return q.SwitchSubscriptionCycle(ctx, billdb.SwitchSubscriptionCycleParams{ID: w.ID, Quantity: int32(w.Quantity), Cycle: w.Cycle,
			PeriodStart: w.PeriodStart, PeriodEnd: w.PeriodEnd, PeriodPriceMinor: w.PeriodPriceMinor, KeepNextPayment: w.KeepNextPayment})
	case w.ID != "" && !w.Restart:
		return q.ChangeSubscriptionQuantity(ctx, billdb.ChangeSubscriptionQuantityParams{ID: w.ID, Quantity: int32(w.Quantity)})
	case w.ID != "":
		return q.RestartSubscription(ctx, billdb.RestartSubscriptionParams{ID: w.ID, Quantity: int32(w.Quantity), Cycle: w.Cycle,
			PeriodStart: w.PeriodStart, PeriodEnd: w.PeriodEnd, PeriodPriceMinor: w.PeriodPriceMinor})
	}
	status, next := "active", w.PeriodEnd
	if w.TrialEnd != nil {
		status, next = "trial", *w.TrialEnd
	}
	err := q.InsertSubscription(ctx, billdb.InsertSubscriptionParams{ID: uuid.NewString(), AccountID: w.AccountID, PackageCode: w.Package,
		Cycle: w.Cycle, Quantity: int32(w.Quantity), Status: status, PeriodPriceMinor: w.PeriodPriceMinor,
		PeriodStart: w.PeriodStart, PeriodEnd: w.PeriodEnd, NextPaymentAt: next, RegisteredFrom: w.At, TrialEnd: w.TrialEnd})
	if err != nil {
		return fmt.Errorf("create subscription: %w", err)
	}
	return nil
}
