package provisioning_test

import (
	"context"

	"github.com/pbxd/pbxd/billing"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/provisioning"
)

// billingSubscriptions writes the subscriptions of the tests' services,
// which have no Biller, as the daemon does: through billing, which owns
// them.
type billingSubscriptions struct{}

func (billingSubscriptions) SaveSubscription(ctx context.Context, tx *store.Tx, w provisioning.SubscriptionWrite) error {
	return billing.SaveSubscription(ctx, tx, billing.SubscriptionWrite(w))
}
