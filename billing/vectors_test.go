package billing

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// vectorFile is the JSON form of shared/vectors/billing.json. Settings is an
// extension used by this package's own files under testdata/; the shared
// file has none, which means the default settings.
type vectorFile struct {
	Description string `json:"description"`
	Settings    *struct {
		FixedMonthDays  bool `json:"fixed_month_days"`
		ExcludeOrderDay bool `json:"exclude_order_day"`
	} `json:"settings"`
	Proration []struct {
		Name               string `json:"name"`
		PriceMinor         int64  `json:"price_minor"`
		PeriodStart        Date   `json:"period_start"`
		PeriodEndExclusive Date   `json:"period_end_exclusive"`
		OrderDay           Date   `json:"order_day"`
		RemainingDays      int    `json:"remaining_days"`
		DaysInPeriod       int    `json:"days_in_period"`
		ProratedMinor      int64  `json:"prorated_minor"`
		Note               string `json:"note"`
	} `json:"proration"`
	AnnualPrice *struct {
		MonthlyMinor         int64  `json:"monthly_minor"`
		DiscountPercent      int64  `json:"discount_percent"`
		AnnualMinor          int64  `json:"annual_minor"`
		PerMonthDisplayMinor int64  `json:"per_month_display_minor"`
		Note                 string `json:"note"`
	} `json:"annual_price"`
	Timezone *struct {
		AccountTZ          string    `json:"account_tz"`
		OrderedAtUTC       time.Time `json:"ordered_at_utc"`
		OrderDayLocal      Date      `json:"order_day_local"`
		PriceMinor         int64     `json:"price_minor"`
		PeriodStart        Date      `json:"period_start"`
		PeriodEndExclusive Date      `json:"period_end_exclusive"`
		ProratedMinor      int64     `json:"prorated_minor"`
		WrongIfUTCUsed     int64     `json:"wrong_if_utc_used"`
		Note               string    `json:"note"`
	} `json:"timezone"`
	Tax *struct {
		LinesMinor []int64 `json:"lines_minor"`
		VATPercent int64   `json:"vat_percent"`
		NetMinor   int64   `json:"net_minor"`
		VATMinor   int64   `json:"vat_minor"`
		GrossMinor int64   `json:"gross_minor"`
		Note       string  `json:"note"`
	} `json:"tax"`
}

// sharedVectorsDir is the shared vectors directory: $PBXD_SHARED_DIR/vectors,
// else ../shared/vectors beside the repository (CI has it; a user's clone
// does not). The second result says whether it must exist: only when the
// variable names it explicitly.
func sharedVectorsDir() (dir string, required bool) {
	if d := os.Getenv("PBXD_SHARED_DIR"); d != "" {
		return filepath.Join(d, "vectors"), true
	}
	return filepath.Join("..", "..", "shared", "vectors"), false
}

// loadVectors reads a vector file; a missing or malformed file fails the
// test, never skips it.
func loadVectors(t *testing.T, path string) vectorFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("billing vectors: %v", err)
	}
	var v vectorFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	if len(v.Proration) == 0 {
		t.Fatalf("%s: no proration vectors", path)
	}
	return v
}

// TestSharedVectors checks the copy of shared/vectors/billing.json kept in
// testdata/ (so a clone with nothing beside it is tested), and, when the
// shared directory is there, the shared file itself, so a vector added there
// is enforced before anyone copies it.
func TestSharedVectors(t *testing.T) {
	t.Parallel()
	files := []string{filepath.Join("testdata", "billing.json")}
	dir, required := sharedVectorsDir()
	switch _, err := os.Stat(dir); {
	case err == nil:
		files = append(files, filepath.Join(dir, "billing.json"))
	case required || !errors.Is(err, fs.ErrNotExist):
		t.Fatalf("shared vectors: %v", err)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			t.Parallel()
			checkDefaultVectors(t, loadVectors(t, f))
		})
	}
}

// checkDefaultVectors checks a file in the shared form: default settings,
// proration plus the annual price, time zone and tax cases.
func checkDefaultVectors(t *testing.T, v vectorFile) {
	t.Helper()
	if v.Settings != nil {
		t.Fatalf("shared vectors must use the default settings")
	}
	checkProration(t, v, ProrationSettings{})

	if v.AnnualPrice == nil || v.Timezone == nil || v.Tax == nil {
		t.Fatal("shared vectors lack annual_price, timezone or tax")
	}
	t.Run("annual_price", func(t *testing.T) {
		a := v.AnnualPrice
		annual, perMonth, err := AnnualPrice(a.MonthlyMinor, Percent(a.DiscountPercent))
		if err != nil || annual != a.AnnualMinor || perMonth != a.PerMonthDisplayMinor {
			t.Errorf("AnnualPrice(%d, %d%%) = %d, %d, %v; want %d, %d", a.MonthlyMinor, a.DiscountPercent, annual, perMonth, err, a.AnnualMinor, a.PerMonthDisplayMinor)
		}
	})
	t.Run("timezone", func(t *testing.T) {
		z := v.Timezone
		loc, err := time.LoadLocation(z.AccountTZ)
		if err != nil {
			t.Fatal(err)
		}
		day := DateOf(z.OrderedAtUTC, loc)
		if day != z.OrderDayLocal {
			t.Errorf("DateOf(%v, %s) = %v, want %v", z.OrderedAtUTC, loc, day, z.OrderDayLocal)
		}
		if got, _, _ := Prorate(z.PriceMinor, z.PeriodStart, z.PeriodEndExclusive, day, ProrationSettings{}); got != z.ProratedMinor {
			t.Errorf("local day: prorated %d, want %d", got, z.ProratedMinor)
		}
		utcDay := DateOf(z.OrderedAtUTC, time.UTC)
		if got, _, _ := Prorate(z.PriceMinor, z.PeriodStart, z.PeriodEndExclusive, utcDay, ProrationSettings{}); got != z.WrongIfUTCUsed {
			t.Errorf("UTC day (the wrong way): prorated %d, vector says %d", got, z.WrongIfUTCUsed)
		}
	})
	t.Run("tax", func(t *testing.T) {
		x := v.Tax
		var lines []TaxLine
		for _, m := range x.LinesMinor {
			lines = append(lines, TaxLine{NetMinor: m, Rate: Percent(x.VATPercent)})
		}
		got, err := ComputeTotals(lines)
		if err != nil {
			t.Fatal(err)
		}
		if got.NetMinor != x.NetMinor || got.TaxMinor != x.VATMinor || got.GrossMinor != x.GrossMinor {
			t.Errorf("totals = %+v, want net %d vat %d gross %d", got, x.NetMinor, x.VATMinor, x.GrossMinor)
		}
		if len(got.ByRate) != 1 || got.ByRate[0].TaxMinor != x.VATMinor {
			t.Errorf("by rate = %+v", got.ByRate)
		}
	})
}

// TestLocalVectors checks this package's own vectors for the non-default
// proration settings (testdata/vectors_*.json, same form as the shared file).
func TestLocalVectors(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "vectors_*.json"))
	if err != nil || len(files) < 3 {
		t.Fatalf("want at least 3 local vector files, got %v (%v)", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			v := loadVectors(t, f)
			if v.Settings == nil {
				t.Fatal("local vector files must state their settings")
			}
			checkProration(t, v, ProrationSettings{FixedMonthDays: v.Settings.FixedMonthDays, ExcludeOrderDay: v.Settings.ExcludeOrderDay})
		})
	}
}

func checkProration(t *testing.T, v vectorFile, s ProrationSettings) {
	t.Helper()
	for _, c := range v.Proration {
		t.Run(c.Name, func(t *testing.T) {
			amount, remaining, days := Prorate(c.PriceMinor, c.PeriodStart, c.PeriodEndExclusive, c.OrderDay, s)
			if amount != c.ProratedMinor || remaining != c.RemainingDays || days != c.DaysInPeriod {
				t.Errorf("Prorate(%d, %v, %v, %v, %+v) = %d, %d/%d; want %d, %d/%d (%s)",
					c.PriceMinor, c.PeriodStart, c.PeriodEndExclusive, c.OrderDay, s,
					amount, remaining, days, c.ProratedMinor, c.RemainingDays, c.DaysInPeriod, c.Note)
			}
		})
	}
}
