package provisioning

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

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

// planNumbers works the request's number orders and releases into the
// plan: each moves its add-on's quantity by one per number. item returns
// the plan item of a package (creating it); listed are the packages the
// request sets explicitly.
func (s *Service) planNumbers(ctx context.Context, tx pgx.Tx, p *plan, req ChangeRequest, listed map[string]bool,
	item func(code, cycle, field string) (*planItem, error)) error {
	now := s.clock.Now()
	q := qtx(tx)
	// An add-on that numbers are sold under follows the numbers held: its
	// quantity cannot be set directly.
	for i, ci := range req.Items {
		if p.numberAddons[ci.Package] {
			return fault.New(fault.Invalid, fmt.Sprintf("items[%d].package", i), "%s bills phone numbers: order numbers with \"numbers\" (a prefix or a chosen number) instead of a quantity", ci.Package)
		}
	}
	chosen := map[string]bool{}
	for i, o := range req.Numbers {
		field := fmt.Sprintf("numbers[%d]", i)
		nl := NumberLine{Action: "order", Quantity: o.Quantity}
		switch {
		case o.Number != "" && o.Prefix != "":
			return fault.New(fault.Invalid, field+".prefix", "give a number or a prefix, not both")
		case o.Number != "":
			e, err := ParseE164(o.Number)
			if err != nil {
				return fault.New(fault.Invalid, field+".number", "%q is not an E.164 number: %v", o.Number, err)
			}
			if o.Quantity != 0 && o.Quantity != 1 {
				return fault.New(fault.Invalid, field+".quantity", "a chosen number has quantity 1")
			}
			if chosen[e] {
				return fault.New(fault.Invalid, field+".number", "number %s is listed twice", e)
			}
			chosen[e] = true
			n, err := q.ChosenNumber(ctx, provdb.ChosenNumberParams{Now: now, AccountID: p.acct.ID, E164: e})
			if errors.Is(err, store.ErrNotFound) || (err == nil && (!n.Free || (n.Kind != NumberLocal && !req.ByOperator))) {
				return fault.New(fault.Conflict, field+".number", "number %s is not available; pick another free local number", e)
			}
			if err != nil {
				return fmt.Errorf("read number: %w", err)
			}
			nl.Number, nl.Quantity, nl.Addon, nl.SetupFeeMinor = e, 1, n.AddonCode, n.SetupFeeMinor
		case o.Prefix != "":
			prefix, err := parsePrefix(o.Prefix)
			if err != nil {
				return fault.New(fault.Invalid, field+".prefix", "prefix %v", err)
			}
			if o.Quantity < 1 || o.Quantity > maxNumbersPerOrder {
				return fault.New(fault.Invalid, field+".quantity", "quantity must be between 1 and %d", maxNumbersPerOrder)
			}
			// The first free numbers in order, read through the index and
			// never counted in full: an inventory may hold millions.
			free, err := q.FirstFreeNumbers(ctx, provdb.FirstFreeNumbersParams{Prefix: prefix, Now: now, Addon: o.Addon, Lim: int32(o.Quantity)})
			if err != nil {
				return fmt.Errorf("find free numbers: %w", err)
			}
			var first []string
			for _, n := range free {
				first = append(first, n.AddonCode)
				nl.SetupFeeMinor += n.SetupFeeMinor
			}
			if len(first) < o.Quantity {
				return fault.New(fault.Conflict, field+".quantity", "only %d free local numbers start with %s", len(first), prefix)
			}
			slices.Sort(first)
			if addons := slices.Compact(first); len(addons) > 1 {
				return fault.New(fault.Invalid, field+".addon", "the free numbers starting %s are sold as %v: say which add-on", prefix, addons)
			}
			nl.Prefix, nl.Addon = prefix, first[0]
		default:
			return fault.New(fault.Invalid, field+".prefix", "give a prefix (with a quantity) or a chosen number")
		}
		if listed[nl.Addon] {
			return fault.New(fault.Invalid, field, "add-on %s is also listed in items", nl.Addon)
		}
		it, err := item(nl.Addon, "", field)
		if err != nil {
			return err
		}
		it.to += nl.Quantity
		p.numbers = append(p.numbers, nl)
		if nl.SetupFeeMinor > 0 {
			p.oneTime = append(p.oneTime, PriceChange{Package: it.pkg, Cycle: it.cycle, To: nl.Quantity, OneTimeMinor: nl.SetupFeeMinor})
		}
	}
	for i, raw := range req.ReleaseNumbers {
		field := fmt.Sprintf("release_numbers[%d]", i)
		e, err := ParseE164(raw)
		if err != nil {
			return fault.New(fault.Invalid, field, "%q is not an E.164 number: %v", raw, err)
		}
		if chosen[e] {
			return fault.New(fault.Invalid, field, "number %s is listed twice", e)
		}
		chosen[e] = true
		addon, err := q.AccountNumberAddon(ctx, provdb.AccountNumberAddonParams{E164: e, AccountID: &p.acct.ID})
		if errors.Is(err, store.ErrNotFound) {
			return fault.New(fault.Invalid, field, "number %s is not the account's", e)
		}
		if err != nil {
			return fmt.Errorf("read number: %w", err)
		}
		it, err := item(addon, "", field)
		if err != nil {
			return err
		}
		it.to--
		p.numbers = append(p.numbers, NumberLine{Action: "release", Number: e, Quantity: 1, Addon: addon})
	}
	return nil
}

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
