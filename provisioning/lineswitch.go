package provisioning

import (
	"context"
	"fmt"

	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/provdb"
)

// LineSwitch suspends and resumes the lines of one subscription for
// billing's dunning (billing.LineSwitch, satisfied through the daemon's
// wiring). It needs only the database and a clock, not the Service, whose
// Biller is billing itself: so billing takes it at construction, before
// the Service exists, and holds no late-bound pointer.
type LineSwitch struct{ clock Clock }

// NewLineSwitch returns the line switch billing is built with.
func NewLineSwitch(clock Clock) LineSwitch { return LineSwitch{clock: clock} }

// SetSubscriptionLines suspends or resumes the lines of one subscription,
// in tx (billing's unit of work): audited, and the PBX notified at commit.
func (l LineSwitch) SetSubscriptionLines(ctx context.Context, tx *store.Tx, subscriptionID string, suspended bool, reason string) (int, error) {
	from, to := LineActive, LineSuspended
	if !suspended {
		from, to = LineSuspended, LineActive
	}
	now := l.clock.Now()
	q := provdb.New(tx)
	accountID, err := q.SubscriptionAccount(ctx, subscriptionID)
	if err != nil {
		return 0, fmt.Errorf("subscription %s: %w", subscriptionID, err)
	}
	n, err := q.SwitchSubscriptionLines(ctx, provdb.SwitchSubscriptionLinesParams{SubscriptionID: subscriptionID, FromState: string(from), ToState: string(to), ChangedAt: now})
	if err != nil {
		return 0, err
	}
	if err := audit(ctx, tx, now, "billing", accountID, "lines."+string(to), subscriptionID, map[string]any{"reason": reason, "lines": n}); err != nil {
		return 0, err
	}
	return int(n), notifyLines(ctx, tx)
}
