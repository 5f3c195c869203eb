package provisioning

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/provdb"
)

// Number kinds. Customers order local numbers through a change order;
// toll-free numbers are allocated by the operator on request.
const (
	NumberLocal    = "local"
	NumberTollFree = "toll-free"
)

// MaxNumberImport bounds one import call (the request body limit allows
// about 60,000 numbers; 20,000 keeps one transaction short).
const MaxNumberImport = 20_000

// Number is one number of the inventory as the API shows it.
type Number struct {
	Number        string     `json:"number"`
	Country       string     `json:"country"`
	Area          string     `json:"area"`
	Kind          string     `json:"kind"`
	Addon         string     `json:"addon"`
	SetupFeeMinor int64      `json:"setup_fee_minor"`
	State         string     `json:"state"`
	AccountID     *string    `json:"account_id"`
	LineID        *string    `json:"line_id"`
	Extension     *int       `json:"extension"`
	CallerID      bool       `json:"caller_id"`
	AgingUntil    *time.Time `json:"aging_until,omitempty"`
	// HeldFor is the account a port-in holds the (available) number for.
	HeldFor *string `json:"held_for,omitempty"`
}

// NumberImport is one bulk import: the numbers share their attributes.
type NumberImport struct {
	Country       string   // ISO 3166-1 alpha-2, e.g. FR
	Area          string   // free label or prefix, e.g. "+331" or "Paris"
	Kind          string   // local or toll-free
	Addon         string   // catalog add-on billing each number monthly
	SetupFeeMinor int64    // one-time fee recorded with each number
	Numbers       []string // E.164; spaces, dots, dashes and brackets are ignored
	// HeldFor, if set, is the account a port-in imports the numbers for:
	// they are held for it (new ones and free existing ones) until its
	// order takes them or the port-in is cancelled.
	HeldFor string
}

// ImportResult counts what an import did; Existing numbers were already in
// the inventory and were left as they are (an import is idempotent).
type ImportResult struct {
	Imported int `json:"imported"`
	Existing int `json:"existing"`
}

// ParseE164 returns the canonical E.164 form (+ and 7 to 15 digits, no
// leading zero in the country code) of s, which may contain spaces, dots,
// dashes and brackets between the digits.
func ParseE164(s string) (string, error) {
	if !strings.HasPrefix(s, "+") {
		return "", errors.New("must start with + and the country code")
	}
	var b strings.Builder
	b.WriteByte('+')
	for _, r := range s[1:] {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '.' || r == '-' || r == '(' || r == ')':
		default:
			return "", fmt.Errorf("unexpected character %q", r)
		}
	}
	out := b.String()
	switch digits := len(out) - 1; {
	case digits < 7 || digits > 15:
		return "", fmt.Errorf("has %d digits; E.164 numbers have 7 to 15", digits)
	case out[1] == '0':
		return "", errors.New("a country code never starts with 0")
	}
	return out, nil
}

// parsePrefix validates a number prefix a customer searches by.
func parsePrefix(s string) (string, error) {
	if len(s) < 2 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return "", errors.New("must be + and 1 to 15 digits, e.g. +331")
	}
	for _, r := range s[1:] {
		if r < '0' || r > '9' {
			return "", errors.New("must be + and 1 to 15 digits, e.g. +331")
		}
	}
	return s, nil
}

func (n *NumberImport) validate(addons map[string]Package) ([]string, error) {
	if len(n.Country) != 2 || strings.ToUpper(n.Country) != n.Country || n.Country[0] < 'A' || n.Country[1] < 'A' || n.Country[0] > 'Z' || n.Country[1] > 'Z' {
		return nil, fault.New(fault.Invalid, "country", "country must be an ISO 3166 code of two capital letters, e.g. FR")
	}
	if len(n.Area) > 64 {
		return nil, fault.New(fault.Invalid, "area", "area is at most 64 characters")
	}
	if n.Kind != NumberLocal && n.Kind != NumberTollFree {
		return nil, fault.New(fault.Invalid, "kind", "kind must be local or toll-free")
	}
	if p, ok := addons[n.Addon]; !ok || p.Kind != "addon" || p.Retired {
		return nil, fault.New(fault.Invalid, "addon", "addon must name a catalog add-on on sale (kind addon), e.g. local-number")
	}
	if n.SetupFeeMinor < 0 {
		return nil, fault.New(fault.Invalid, "setup_fee_minor", "setup_fee_minor must not be negative")
	}
	if len(n.Numbers) == 0 || len(n.Numbers) > MaxNumberImport {
		return nil, fault.New(fault.Invalid, "numbers", "numbers must list 1 to %d numbers", MaxNumberImport)
	}
	seen := make(map[string]bool, len(n.Numbers))
	out := make([]string, 0, len(n.Numbers))
	for i, raw := range n.Numbers {
		e, err := ParseE164(raw)
		if err != nil {
			return nil, fault.New(fault.Invalid, fmt.Sprintf("numbers[%d]", i), "%q is not an E.164 number: %v", raw, err)
		}
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	return out, nil
}

// ImportNumbers adds numbers to the inventory as available. Numbers already
// there are left untouched, so an import can be repeated safely.
func (s *Service) ImportNumbers(ctx context.Context, actor string, n NumberImport) (ImportResult, error) {
	var res ImportResult
	now := s.clock.Now()
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		pkgs, err := packagesByCode(ctx, tx)
		if err != nil {
			return err
		}
		nums, err := n.validate(pkgs)
		if err != nil {
			return err
		}
		q := provdb.New(tx)
		imported, err := q.ImportNumbers(ctx, provdb.ImportNumbersParams{Numbers: nums, Country: n.Country, Area: n.Area,
			Kind: n.Kind, AddonCode: n.Addon, SetupFeeMinor: n.SetupFeeMinor, Now: now})
		if err != nil {
			return fmt.Errorf("insert numbers: %w", err)
		}
		res.Imported = int(imported)
		res.Existing = len(nums) - res.Imported
		if n.HeldFor != "" {
			if err := q.HoldNumbers(ctx, provdb.HoldNumbersParams{Numbers: nums, HeldFor: &n.HeldFor}); err != nil {
				return fmt.Errorf("hold numbers: %w", err)
			}
		}
		return audit(ctx, tx, now, actor, "", "numbers.import", n.Addon, map[string]any{
			"imported": res.Imported, "existing": res.Existing, "country": n.Country, "area": n.Area, "kind": n.Kind,
			"setup_fee_minor": n.SetupFeeMinor, "first": nums[0], "last": nums[len(nums)-1],
		})
	})
	return res, err
}

// NumberFilter selects inventory rows.
type NumberFilter struct {
	State  string // effective state; "" any
	Prefix string // "" any
	Kind   string // "" any
	Limit  int    // 1..1000, default 100
}

// numberFromRow is an inventory row as the API shows it: the end of the
// quarantine only while the number is still aging.
func numberFromRow(r provdb.AccountNumberRow) Number {
	n := Number{Number: r.E164, Country: r.Country, Area: r.Area, Kind: r.Kind, Addon: r.AddonCode, SetupFeeMinor: r.SetupFeeMinor,
		State: r.State, AccountID: r.AccountID, LineID: r.LineID, Extension: intPtr(r.Extension), CallerID: r.CallerID, HeldFor: r.HeldFor}
	if NumberState(r.State) == NumberAging {
		n.AgingUntil = r.AgingUntil
	}
	return n
}

// Numbers lists the inventory (operator), or with accountID the account's
// numbers, in number order.
func (s *Service) Numbers(ctx context.Context, accountID string, f NumberFilter) ([]Number, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	if f.Limit > 1000 {
		return nil, fault.New(fault.Invalid, "limit", "limit is at most 1000")
	}
	if f.Prefix != "" {
		if _, err := parsePrefix(f.Prefix); err != nil {
			return nil, fault.New(fault.Invalid, "prefix", "prefix %v", err)
		}
	}
	if f.State != "" && !slices.Contains(NumberStates, NumberState(f.State)) {
		return nil, fault.New(fault.Invalid, "state", "state must be available, reserved, assigned, removal_requested or aging")
	}
	if f.Kind != "" && f.Kind != NumberLocal && f.Kind != NumberTollFree {
		return nil, fault.New(fault.Invalid, "kind", "kind must be local or toll-free")
	}
	if accountID != "" {
		if _, err := s.Account(ctx, accountID); err != nil {
			return nil, err
		}
	}
	var acct *string
	if accountID != "" {
		acct = &accountID
	}
	rows, err := s.q.ListNumbers(ctx, provdb.ListNumbersParams{Now: s.clock.Now(), AccountID: acct, Prefix: f.Prefix,
		Kind: f.Kind, State: f.State, Lim: int32(f.Limit)})
	if err != nil {
		return nil, fmt.Errorf("list numbers: %w", err)
	}
	list := make([]Number, 0, len(rows))
	for _, r := range rows {
		list = append(list, numberFromRow(provdb.AccountNumberRow(r)))
	}
	return list, nil
}

// AssignNumber puts one of the account's numbers on a line (lineID ""
// means the account's main line, its lowest extension); with callerID the
// number becomes the line's caller id.
func (s *Service) AssignNumber(ctx context.Context, actor, accountID, number, lineID string, callerID bool) (Number, error) {
	now := s.clock.Now()
	e, err := ParseE164(number)
	if err != nil {
		return Number{}, fault.New(fault.NotFound, "", "number not found")
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := s.lockAccount(ctx, tx, accountID); err != nil {
			return err
		}
		q := provdb.New(tx)
		state, err := q.LockAccountNumberState(ctx, provdb.LockAccountNumberStateParams{E164: e, AccountID: &accountID})
		if errors.Is(err, store.ErrNotFound) {
			return fault.New(fault.NotFound, "", "number not found")
		}
		if err != nil {
			return err
		}
		if NumberState(state) == NumberRemovalRequested {
			return fault.New(fault.Conflict, "", "number %s is being removed or ported out", e)
		}
		if lineID == "" {
			lineID, err = q.MainLine(ctx, accountID)
			if errors.Is(err, store.ErrNotFound) {
				return fault.New(fault.Conflict, "line", "the account has no line to assign the number to")
			}
		} else if uuid.Validate(lineID) != nil {
			return fault.New(fault.Invalid, "line", "unknown line %q", lineID)
		} else {
			_, err = q.LiveLineID(ctx, provdb.LiveLineIDParams{ID: lineID, AccountID: accountID})
			if errors.Is(err, store.ErrNotFound) {
				return fault.New(fault.Invalid, "line", "unknown line %q", lineID)
			}
		}
		if err != nil {
			return err
		}
		if err := q.AssignNumber(ctx, provdb.AssignNumberParams{E164: e, LineID: &lineID, CallerID: callerID, UpdatedAt: now}); err != nil {
			return fmt.Errorf("assign number: %w", err)
		}
		if callerID {
			// One caller id per line: the line's other numbers stop being it.
			if err := q.ClearOtherCallerIDs(ctx, provdb.ClearOtherCallerIDsParams{LineID: &lineID, E164: e, UpdatedAt: now}); err != nil {
				return err
			}
		}
		return audit(ctx, tx, now, actor, accountID, "number.assign", e, map[string]any{"line": lineID, "caller_id": callerID})
	})
	if err != nil {
		return Number{}, err
	}
	return s.accountNumber(ctx, accountID, e)
}

// UnassignNumber takes a number off its line; the account keeps it.
func (s *Service) UnassignNumber(ctx context.Context, actor, accountID, number string) (Number, error) {
	now := s.clock.Now()
	e, err := ParseE164(number)
	if err != nil {
		return Number{}, fault.New(fault.NotFound, "", "number not found")
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		n, err := provdb.New(tx).UnassignNumber(ctx, provdb.UnassignNumberParams{E164: e, AccountID: &accountID, UpdatedAt: now})
		if err != nil {
			return fmt.Errorf("unassign number: %w", err)
		}
		if n == 0 {
			return fault.New(fault.NotFound, "", "number not found")
		}
		return audit(ctx, tx, now, actor, accountID, "number.unassign", e, nil)
	})
	if err != nil {
		return Number{}, err
	}
	return s.accountNumber(ctx, accountID, e)
}

func (s *Service) accountNumber(ctx context.Context, accountID, e string) (Number, error) {
	r, err := s.q.AccountNumber(ctx, provdb.AccountNumberParams{Now: s.clock.Now(), E164: e, AccountID: &accountID})
	if errors.Is(err, store.ErrNotFound) {
		return Number{}, fault.New(fault.NotFound, "", "number not found")
	}
	if err != nil {
		return Number{}, err
	}
	return numberFromRow(r), nil
}

// refreshNumberGauge sets pbxd_numbers from the inventory.
func (s *Service) refreshNumberGauge(ctx context.Context) {
	rows, err := s.q.CountNumbers(ctx, s.clock.Now())
	if err != nil {
		return
	}
	for _, k := range []string{NumberLocal, NumberTollFree} {
		for _, st := range NumberStates {
			s.numbersByState.WithLabelValues(k, string(st)).Set(0)
		}
	}
	for _, r := range rows {
		s.numbersByState.WithLabelValues(r.Kind, r.State).Set(float64(r.N))
	}
}
