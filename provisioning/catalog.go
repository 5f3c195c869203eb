package provisioning

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/provisioning/phones"
)

// Package is a catalog entry as sold.
type Package struct {
	Code            string  `json:"code"`
	Name            string  `json:"name"`
	Kind            string  `json:"kind"`
	PriceMinor      int64   `json:"price_minor"`
	Currency        string  `json:"currency"`
	Cycles          []Cycle `json:"cycles"`
	TrialDays       int     `json:"trial_days"`
	DialContext     string  `json:"dial_context"`
	FixedMonthDays  bool    `json:"fixed_month_days"`
	ExcludeOrderDay bool    `json:"exclude_order_day"`
	Retired         bool    `json:"retired"`
	// Decrease is when a lower quantity takes effect by default
	// (DecreaseImmediate or DecreasePeriodEnd); DecreaseChoice lets the
	// customer choose the other per order.
	Decrease       string `json:"decrease"`
	DecreaseChoice bool   `json:"decrease_choice"`
	// Hardware (kind "hardware") has a one-time price, an optional stock
	// (units received; nil: unlimited) and the vendor and model it
	// provisions as.
	Stock  *int   `json:"stock,omitempty"`
	Vendor string `json:"vendor,omitempty"`
	Model  string `json:"model,omitempty"`
}

// When decreases take effect.
const (
	DecreaseImmediate = "immediate_credit" // lines go now, prorated credit
	DecreasePeriodEnd = "period_end"       // lines stay until the period ends, no credit
)

// Cycle is a billing cycle offered for a package with its discount.
type Cycle struct {
	Cycle      string `json:"cycle"`
	DiscountBP int64  `json:"discount_bp"`
	// PriceMinor is the price of one line for a whole period of the cycle,
	// discounted; PerMonthMinor the per-month figure shown beside it. Both
	// are computed when the catalog is listed, never stored.
	PriceMinor    int64 `json:"price_minor,omitempty"`
	PerMonthMinor int64 `json:"per_month_minor,omitempty"`
}

// Offers returns the cycle named name if the package offers it.
func (p Package) Offers(name string) (Cycle, bool) {
	for _, c := range p.Cycles {
		if c.Cycle == name {
			return c, true
		}
	}
	return Cycle{}, false
}

// SyncCatalog makes the packages table equal to the configured catalog.
// A package that disappeared from the config is retired (no new sales) so
// its subscribers keep their lines; a price change applies from each
// subscription's next period (subscriptions keep their period price).
func (s *Service) SyncCatalog(ctx context.Context, pkgs []Package) error {
	if err := CheckCatalog(pkgs); err != nil {
		return err
	}
	now := s.clock.Now()
	return store.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		keep := make([]string, 0, len(pkgs))
		for i, p := range pkgs {
			if p.Kind == "hardware" && !phones.Vendor(p.Vendor).Valid() {
				return fmt.Errorf("hardware %s: vendor %q is not one of %v", p.Code, p.Vendor, phones.Vendors)
			}
			cycles, err := json.Marshal(p.Cycles)
			if err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `
				INSERT INTO packages (code, name, kind, price_minor, currency, cycles, trial_days, dial_context,
				                      fixed_month_days, exclude_order_day, retired, position, updated_at, decrease, decrease_choice, stock, vendor, model)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, false, $11, $12, $13, $14, $15, $16, $17)
				ON CONFLICT (code) DO UPDATE SET name = $2, kind = $3, price_minor = $4, currency = $5, cycles = $6,
				    trial_days = $7, dial_context = $8, fixed_month_days = $9, exclude_order_day = $10,
				    retired = false, position = $11, updated_at = $12, decrease = $13, decrease_choice = $14,
				    stock = $15, vendor = $16, model = $17`,
				p.Code, p.Name, p.Kind, p.PriceMinor, p.Currency, cycles, p.TrialDays, p.DialContext,
				p.FixedMonthDays, p.ExcludeOrderDay, i, now, cmp.Or(p.Decrease, DecreaseImmediate), p.DecreaseChoice, p.Stock, p.Vendor, p.Model)
			if err != nil {
				return fmt.Errorf("sync package %s: %w", p.Code, err)
			}
			keep = append(keep, p.Code)
		}
		// Gone from the config: retire those still subscribed, drop the rest.
		if _, err := tx.Exec(ctx, `UPDATE packages SET retired = true, updated_at = $2
			WHERE NOT (code = ANY($1)) AND NOT retired`, keep, now); err != nil {
			return fmt.Errorf("retire packages: %w", err)
		}
		_, err := tx.Exec(ctx, `DELETE FROM packages p WHERE NOT (code = ANY($1))
			AND NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.package_code = p.code)
			AND NOT EXISTS (SELECT 1 FROM lines l WHERE l.package_code = p.code)
			AND NOT EXISTS (SELECT 1 FROM pending_items i WHERE i.package_code = p.code)
			AND NOT EXISTS (SELECT 1 FROM hardware_orders h WHERE h.item_code = p.code)`, keep)
		if err != nil {
			return fmt.Errorf("drop unused packages: %w", err)
		}
		return nil
	})
}

// CheckCatalog refuses a catalog SyncCatalog would refuse (SyncCatalog's
// own check stays beside its writes), without writing anything: a reload
// checks every part before it changes any.
func CheckCatalog(pkgs []Package) error {
	for _, p := range pkgs {
		if p.Kind == "hardware" && !phones.Vendor(p.Vendor).Valid() {
			return fmt.Errorf("hardware %s: vendor %q is not one of %v", p.Code, p.Vendor, phones.Vendors)
		}
	}
	return nil
}

// Packages lists the catalog; retired packages only when withRetired.
func (s *Service) Packages(ctx context.Context, withRetired bool) ([]Package, error) {
	rows, err := s.pool.Query(ctx, `SELECT code, name, kind, price_minor, currency, cycles, trial_days, dial_context,
		fixed_month_days, exclude_order_day, retired, decrease, decrease_choice, stock, vendor, model FROM packages WHERE $1 OR NOT retired ORDER BY retired, position, code`, withRetired)
	if err != nil {
		return nil, err
	}
	list, err := pgx.CollectRows(rows, scanPackage)
	if err != nil || s.biller == nil {
		return list, err
	}
	for i := range list {
		for j := range list[i].Cycles {
			c := &list[i].Cycles[j]
			c.PriceMinor = s.biller.PeriodPrice(list[i], c.Cycle)
			c.PerMonthMinor = perMonth(c.PriceMinor, c.Cycle)
		}
	}
	return list, nil
}

func scanPackage(row pgx.CollectableRow) (Package, error) {
	var p Package
	var cycles []byte
	err := row.Scan(&p.Code, &p.Name, &p.Kind, &p.PriceMinor, &p.Currency, &cycles, &p.TrialDays, &p.DialContext,
		&p.FixedMonthDays, &p.ExcludeOrderDay, &p.Retired, &p.Decrease, &p.DecreaseChoice, &p.Stock, &p.Vendor, &p.Model)
	if err == nil {
		err = json.Unmarshal(cycles, &p.Cycles)
	}
	return p, err
}

const packagesSQL = `SELECT code, name, kind, price_minor, currency, cycles, trial_days, dial_context,
	fixed_month_days, exclude_order_day, retired, decrease, decrease_choice, stock, vendor, model FROM packages`

func packagesByCode(ctx context.Context, q pgx.Tx) (map[string]Package, error) {
	rows, err := q.Query(ctx, packagesSQL)
	if err != nil {
		return nil, err
	}
	list, err := pgx.CollectRows(rows, scanPackage)
	if err != nil {
		return nil, err
	}
	m := make(map[string]Package, len(list))
	for _, p := range list {
		m[p.Code] = p
	}
	return m, nil
}
