package app

import (
	"context"
	"time"

	"github.com/pbxd/pbxd/billing"
	"github.com/pbxd/pbxd/provisioning"
)

var _ provisioning.Charger = billerAdapter{}

// ChargeOneOff charges a hardware purchase through the billing shell.
func (b billerAdapter) ChargeOneOff(ctx context.Context, acct provisioning.Account, ref string, items []provisioning.OneOffItem, at time.Time) (string, error) {
	out := make([]billing.OneOffItem, 0, len(items))
	for _, it := range items {
		out = append(out, billing.OneOffItem{Code: it.Code, Description: it.Description, Quantity: it.Quantity, UnitMinor: it.UnitMinor})
	}
	return b.svc.ChargeOneOff(ctx, billingAccount(acct), ref, out, at)
}
