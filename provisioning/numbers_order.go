package provisioning

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/provdb"
)

// NumberOrder asks for local numbers in a change order: either one chosen
// free number, or Quantity numbers starting with Prefix. Addon picks the
// price when numbers of the prefix are sold under several add-ons.
type NumberOrder struct {
	Number   string `json:"number,omitempty"`
	Prefix   string `json:"prefix,omitempty"`
	Quantity int    `json:"quantity,omitempty"`
	Addon    string `json:"addon,omitempty"`
}

// NumberLine is a number order or release as the preview shows it.
type NumberLine struct {
	Action   string `json:"action"` // order or release
	Number   string `json:"number,omitempty"`
	Prefix   string `json:"prefix,omitempty"`
	Quantity int    `json:"quantity"`
	Addon    string `json:"addon"`
	// Effective is "period_end" for a release that waits for the add-on's
	// period end (the number stays, marked removal_requested).
	Effective string `json:"effective,omitempty"`
	// SetupFeeMinor is the one-time fee of the numbers ordered (their
	// setup_fee_minor summed; for a prefix, of the first free numbers,
	// those the order takes), net.
	SetupFeeMinor int64 `json:"setup_fee_minor,omitempty"`
}

// maxNumbersPerOrder bounds one order's numbers by prefix.
const maxNumbersPerOrder = 1000

// applyNumbers reserves the ordered numbers for the account and sends the
// released ones into quarantine, in the change's transaction. Numbers
// ordered by prefix are claimed with SKIP LOCKED, so concurrent orders never
// get the same number and never wait for each other; when too few are left
// the whole change is refused. Numbers on removed lines go back to the
// account unassigned.
func (s *Service) applyNumbers(ctx context.Context, tx *store.Tx, p *plan, changeID string, removed []LineRef, now time.Time) (reserved, released []string, err error) {
	reserved, released = []string{}, []string{}
	q := provdb.New(tx)
	if len(removed) > 0 {
		ids := make([]string, 0, len(removed))
		for _, l := range removed {
			ids = append(ids, l.ID)
		}
		if err := q.UnassignNumbersOfLines(ctx, provdb.UnassignNumbersOfLinesParams{LineIds: ids, UpdatedAt: now}); err != nil {
			return nil, nil, fmt.Errorf("unassign numbers of removed lines: %w", err)
		}
	}
	for i, nl := range p.numbers {
		var got []string
		switch {
		case nl.Action == "release" && nl.Effective == EffectivePeriodEnd:
			if err := q.MarkNumberForRemoval(ctx, provdb.MarkNumberForRemovalParams{E164: nl.Number, UpdatedAt: now}); err != nil {
				return nil, nil, fmt.Errorf("mark number for removal: %w", err)
			}
			continue
		case nl.Action == "release":
			until := now.Add(s.numberQuarantine)
			if err := q.ReleaseNumber(ctx, provdb.ReleaseNumberParams{E164: nl.Number, ChangeID: &changeID, AgingUntil: &until, UpdatedAt: now}); err != nil {
				return nil, nil, fmt.Errorf("release number: %w", err)
			}
			released = append(released, nl.Number)
			continue
		case nl.Number != "":
			got, err = q.LockChosenNumber(ctx, provdb.LockChosenNumberParams{E164: nl.Number, Now: now, AccountID: p.acct.ID})
			if err != nil {
				return nil, nil, fmt.Errorf("lock number: %w", err)
			}
		default:
			got, err = q.ClaimFreeNumbers(ctx, provdb.ClaimFreeNumbersParams{Prefix: nl.Prefix, AddonCode: nl.Addon, Now: now, Lim: int32(nl.Quantity)})
			if err != nil {
				return nil, nil, fmt.Errorf("claim numbers: %w", err)
			}
		}
		if len(got) < nl.Quantity {
			s.numberOrders.WithLabelValues("sold_out").Inc()
			return nil, nil, fault.New(fault.Conflict, fmt.Sprintf("numbers[%d]", i), "the numbers ordered were sold meanwhile; preview again")
		}
		if err := q.ReserveNumbers(ctx, provdb.ReserveNumbersParams{Numbers: got, AccountID: &p.acct.ID, ChangeID: &changeID, UpdatedAt: now}); err != nil {
			return nil, nil, fmt.Errorf("reserve numbers: %w", err)
		}
		reserved = append(reserved, got...)
	}
	slices.Sort(reserved)
	if len(reserved) > 0 {
		s.numberOrders.WithLabelValues("reserved").Add(float64(len(reserved)))
	}
	return reserved, released, nil
}
