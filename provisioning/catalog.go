package provisioning

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"

	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/provdb"
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
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		q := provdb.New(tx)
		keep := make([]string, 0, len(pkgs))
		for i, p := range pkgs {
			if p.Kind == "hardware" && !phones.Vendor(p.Vendor).Valid() {
				return fmt.Errorf("hardware %s: vendor %q is not one of %v", p.Code, p.Vendor, phones.Vendors)
			}
			cycles, err := json.Marshal(p.Cycles)
			if err != nil {
				return err
			}
			err = q.UpsertPackage(ctx, provdb.UpsertPackageParams{Code: p.Code, Name: p.Name, Kind: p.Kind,
				PriceMinor: p.PriceMinor, Currency: p.Currency, Cycles: cycles, TrialDays: int32(p.TrialDays),
				DialContext: p.DialContext, FixedMonthDays: p.FixedMonthDays, ExcludeOrderDay: p.ExcludeOrderDay,
				Position: int32(i), UpdatedAt: now, Decrease: cmp.Or(p.Decrease, DecreaseImmediate),
				DecreaseChoice: p.DecreaseChoice, Stock: int32Ptr(p.Stock), Vendor: p.Vendor, Model: p.Model})
			if err != nil {
				return fmt.Errorf("sync package %s: %w", p.Code, err)
			}
			keep = append(keep, p.Code)
		}
		// Gone from the config: retire those still subscribed, drop the rest.
		if err := q.RetirePackagesExcept(ctx, provdb.RetirePackagesExceptParams{UpdatedAt: now, Keep: keep}); err != nil {
			return fmt.Errorf("retire packages: %w", err)
		}
		if err := q.DropUnusedPackagesExcept(ctx, keep); err != nil {
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
	rows, err := s.q.ListPackages(ctx, withRetired)
	if err != nil {
		return nil, err
	}
	list := make([]Package, 0, len(rows))
	for _, r := range rows {
		p, err := packageFromRow(r)
		if err != nil {
			return nil, err
		}
		list = append(list, p)
	}
	if s.biller == nil {
		return list, nil
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

// packageFromRow is a catalog row as the domain sees it.
func packageFromRow(r provdb.ListPackagesRow) (Package, error) {
	p := Package{Code: r.Code, Name: r.Name, Kind: r.Kind, PriceMinor: r.PriceMinor, Currency: r.Currency,
		TrialDays: int(r.TrialDays), DialContext: r.DialContext, FixedMonthDays: r.FixedMonthDays,
		ExcludeOrderDay: r.ExcludeOrderDay, Retired: r.Retired, Decrease: r.Decrease, DecreaseChoice: r.DecreaseChoice,
		Stock: intPtr(r.Stock), Vendor: r.Vendor, Model: r.Model}
	if err := json.Unmarshal(r.Cycles, &p.Cycles); err != nil {
		return Package{}, fmt.Errorf("package %s cycles: %w", r.Code, err)
	}
	return p, nil
}

// packagesSQL is the whole catalog, for the pipelined state read.
const packagesSQL = provdb.AllPackagesSQL

func packagesByCode(ctx context.Context, tx *store.Tx) (map[string]Package, error) {
	rows, err := provdb.New(tx).AllPackages(ctx)
	if err != nil {
		return nil, err
	}
	m := make(map[string]Package, len(rows))
	for _, r := range rows {
		p, err := packageFromRow(provdb.ListPackagesRow(r))
		if err != nil {
			return nil, err
		}
		m[p.Code] = p
	}
	return m, nil
}

// intPtr and int32Ptr convert optional counts between the domain and
// PostgreSQL's integer.
func intPtr(v *int32) *int {
	if v == nil {
		return nil
	}
	n := int(*v)
	return &n
}

func int32Ptr(v *int) *int32 {
	if v == nil {
		return nil
	}
	n := int32(*v)
	return &n
}
