package provisioning

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
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

// freeNumber is the SQL condition of a number that may be sold now ($now
// is the order time): available, or aging with its quarantine over, and
// not held for a port-in.
const freeNumber = `(n.state = 'available' OR (n.state = 'aging' AND n.aging_until <= $now)) AND n.held_for IS NULL`

// freeNumberFor is freeNumber for account $3, which may also order the
// numbers held for its port-in.
const freeNumberFor = `(n.state = 'available' OR (n.state = 'aging' AND n.aging_until <= $now)) AND (n.held_for IS NULL OR n.held_for = $3)`

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
	err := store.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		pkgs, err := packagesByCode(ctx, tx)
		if err != nil {
			return err
		}
		nums, err := n.validate(pkgs)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO numbers (e164, country, area, kind, addon_code, setup_fee_minor, state, imported_at, updated_at)
			SELECT e, $2, $3, $4, $5, $6, 'available', $7, $7 FROM unnest($1::text[]) AS e
			ON CONFLICT (e164) DO NOTHING`, nums, n.Country, n.Area, n.Kind, n.Addon, n.SetupFeeMinor, now)
		if err != nil {
			return fmt.Errorf("insert numbers: %w", err)
		}
		res.Imported = int(tag.RowsAffected())
		res.Existing = len(nums) - res.Imported
		if n.HeldFor != "" {
			if _, err := tx.Exec(ctx, `UPDATE numbers SET held_for = $2 WHERE e164 = ANY($1) AND account_id IS NULL AND held_for IS NULL`, nums, n.HeldFor); err != nil {
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

const numberCols = `n.e164, n.country, n.area, n.kind, n.addon_code, n.setup_fee_minor,
	CASE WHEN n.state = 'aging' AND n.aging_until <= $now THEN 'available' ELSE n.state END,
	n.account_id, n.line_id, l.extension, n.caller_id,
	CASE WHEN n.state = 'aging' AND n.aging_until > $now THEN n.aging_until END, n.held_for`

func scanNumber(row pgx.CollectableRow) (Number, error) {
	var n Number
	err := row.Scan(&n.Number, &n.Country, &n.Area, &n.Kind, &n.Addon, &n.SetupFeeMinor, &n.State,
		&n.AccountID, &n.LineID, &n.Extension, &n.CallerID, &n.AgingUntil, &n.HeldFor)
	return n, err
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
	switch f.State {
	case "", "available", "reserved", "assigned", "removal_requested", "aging":
	default:
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
	q := named(`SELECT ` + numberCols + ` FROM numbers n LEFT JOIN lines l ON l.id = n.line_id
		WHERE ($acct::uuid IS NULL OR n.account_id = $acct::uuid)
		  AND n.e164 LIKE $prefix || '%'
		  AND ($kind = '' OR n.kind = $kind)
		  AND ($state = '' OR CASE WHEN n.state = 'aging' AND n.aging_until <= $now THEN 'available' ELSE n.state END = $state)
		ORDER BY n.e164 LIMIT $limit`)
	var acct any
	if accountID != "" {
		acct = accountID
	}
	rows, err := s.pool.Query(ctx, q, s.clock.Now(), acct, f.Prefix, f.Kind, f.State, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list numbers: %w", err)
	}
	return pgx.CollectRows(rows, scanNumber)
}

// named replaces the $names used by the number queries with positional
// parameters, in one fixed order: now, acct, prefix, kind, state, limit.
func named(q string) string {
	return strings.NewReplacer("$now", "$1", "$acct", "$2", "$prefix", "$3", "$kind", "$4", "$state", "$5", "$limit", "$6").Replace(q)
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
	err = store.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := lockAccount(ctx, tx, accountID); err != nil {
			return err
		}
		var state string
		err := tx.QueryRow(ctx, `SELECT state FROM numbers WHERE e164 = $1 AND account_id = $2 FOR UPDATE`, e, accountID).Scan(&state)
		if errors.Is(err, pgx.ErrNoRows) {
			return fault.New(fault.NotFound, "", "number not found")
		}
		if err != nil {
			return err
		}
		if state == "removal_requested" {
			return fault.New(fault.Conflict, "", "number %s is being removed or ported out", e)
		}
		if lineID == "" {
			err = tx.QueryRow(ctx, `SELECT id FROM lines WHERE account_id = $1 AND state <> 'deleted' ORDER BY extension LIMIT 1`, accountID).Scan(&lineID)
			if errors.Is(err, pgx.ErrNoRows) {
				return fault.New(fault.Conflict, "line", "the account has no line to assign the number to")
			}
		} else if uuid.Validate(lineID) != nil {
			return fault.New(fault.Invalid, "line", "unknown line %q", lineID)
		} else {
			err = tx.QueryRow(ctx, `SELECT id FROM lines WHERE id = $1 AND account_id = $2 AND state <> 'deleted'`, lineID, accountID).Scan(&lineID)
			if errors.Is(err, pgx.ErrNoRows) {
				return fault.New(fault.Invalid, "line", "unknown line %q", lineID)
			}
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE numbers SET state = 'assigned', line_id = $2, caller_id = $3, updated_at = $4 WHERE e164 = $1`,
			e, lineID, callerID, now); err != nil {
			return fmt.Errorf("assign number: %w", err)
		}
		if callerID {
			// One caller id per line: the line's other numbers stop being it.
			if _, err := tx.Exec(ctx, `UPDATE numbers SET caller_id = false, updated_at = $3 WHERE line_id = $1 AND e164 <> $2 AND caller_id`, lineID, e, now); err != nil {
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
	err = store.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE numbers SET state = CASE WHEN state = 'assigned' THEN 'reserved' ELSE state END,
			line_id = NULL, caller_id = false, updated_at = $3 WHERE e164 = $1 AND account_id = $2`, e, accountID, now)
		if err != nil {
			return fmt.Errorf("unassign number: %w", err)
		}
		if tag.RowsAffected() == 0 {
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
	rows, err := s.pool.Query(ctx, named(`SELECT `+numberCols+` FROM numbers n LEFT JOIN lines l ON l.id = n.line_id
		WHERE n.e164 = $2 AND n.account_id = $3`), s.clock.Now(), e, accountID)
	if err != nil {
		return Number{}, err
	}
	n, err := pgx.CollectExactlyOneRow(rows, scanNumber)
	if errors.Is(err, pgx.ErrNoRows) {
		return n, fault.New(fault.NotFound, "", "number not found")
	}
	return n, err
}

// refreshNumberGauge sets pbxd_numbers from the inventory.
func (s *Service) refreshNumberGauge(ctx context.Context) {
	rows, err := s.pool.Query(ctx, named(`SELECT n.kind, CASE WHEN n.state = 'aging' AND n.aging_until <= $now THEN 'available' ELSE n.state END, count(*)
		FROM numbers n GROUP BY 1, 2`), s.clock.Now())
	if err != nil {
		return
	}
	defer rows.Close()
	for _, k := range []string{NumberLocal, NumberTollFree} {
		for _, st := range []string{"available", "reserved", "assigned", "removal_requested", "aging"} {
			s.numbersByState.WithLabelValues(k, st).Set(0)
		}
	}
	for rows.Next() {
		var kind, st string
		var n float64
		if rows.Scan(&kind, &st, &n) == nil {
			s.numbersByState.WithLabelValues(kind, st).Set(n)
		}
	}
}
