package billing

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
)

// cycleVectors is the JSON form of testdata/cycles_vectors.json.
type cycleVectors struct {
	Description string `json:"description"`
	CyclePrices []struct {
		MonthlyMinor         int64  `json:"monthly_minor"`
		Cycle                Cycle  `json:"cycle"`
		DiscountPercent      int64  `json:"discount_percent"`
		PeriodMinor          int64  `json:"period_minor"`
		PerMonthDisplayMinor int64  `json:"per_month_display_minor"`
		Note                 string `json:"note"`
	} `json:"cycle_prices"`
	Proration []struct {
		Name               string `json:"name"`
		Cycle              Cycle  `json:"cycle"`
		PriceMinor         int64  `json:"price_minor"`
		PeriodStart        Date   `json:"period_start"`
		PeriodEndExclusive Date   `json:"period_end_exclusive"`
		OrderDay           Date   `json:"order_day"`
		RemainingDays      int    `json:"remaining_days"`
		DaysInPeriod       int    `json:"days_in_period"`
		ProratedMinor      int64  `json:"prorated_minor"`
		Note               string `json:"note"`
	} `json:"proration"`
	Switches []struct {
		Name                  string `json:"name"`
		Quantity              int64  `json:"quantity"`
		OrderDay              Date   `json:"order_day"`
		OldCycle              Cycle  `json:"old_cycle"`
		OldPeriodPriceMinor   int64  `json:"old_period_price_minor"`
		OldPeriodStart        Date   `json:"old_period_start"`
		OldPeriodEndExclusive Date   `json:"old_period_end_exclusive"`
		NewCycle              Cycle  `json:"new_cycle"`
		NewPeriodPriceMinor   int64  `json:"new_period_price_minor"`
		NewPeriodStart        Date   `json:"new_period_start"`
		NewPeriodEndExclusive Date   `json:"new_period_end_exclusive"`
		CreditMinor           int64  `json:"credit_minor"`
		ChargeMinor           int64  `json:"charge_minor"`
		NetMinor              int64  `json:"net_minor"`
		Note                  string `json:"note"`
	} `json:"switches"`
}

func loadCycleVectors(t *testing.T) cycleVectors {
	t.Helper()
	b, err := os.ReadFile("testdata/cycles_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v cycleVectors
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("cycles_vectors.json: %v", err)
	}
	if len(v.CyclePrices) == 0 || len(v.Proration) == 0 || len(v.Switches) == 0 {
		t.Fatal("cycles_vectors.json: a section is empty")
	}
	return v
}

func TestCycleVectorsPrices(t *testing.T) {
	t.Parallel()
	for _, c := range loadCycleVectors(t).CyclePrices {
		period, perMonth, err := CyclePrice(c.MonthlyMinor, c.Cycle, BasisPoints(c.DiscountPercent*100))
		if err != nil || period != c.PeriodMinor || perMonth != c.PerMonthDisplayMinor {
			t.Errorf("%s %d at %d%%: %d (%d/month), %v; want %d (%d/month): %s", c.Cycle, c.MonthlyMinor, c.DiscountPercent,
				period, perMonth, err, c.PeriodMinor, c.PerMonthDisplayMinor, c.Note)
		}
		if got := PerMonth(period, c.Cycle); got != c.PerMonthDisplayMinor {
			t.Errorf("PerMonth(%d, %s) = %d, want %d", period, c.Cycle, got, c.PerMonthDisplayMinor)
		}
		p := Package{PriceMinor: c.MonthlyMinor, Discounts: map[Cycle]BasisPoints{c.Cycle: BasisPoints(c.DiscountPercent * 100)}}
		if got, err := PeriodPrice(p, c.Cycle); err != nil || got != c.PeriodMinor {
			t.Errorf("PeriodPrice(%s) = %d, %v; want %d", c.Cycle, got, err, c.PeriodMinor)
		}
		if c.Cycle == Annual {
			if a, pm, _ := AnnualPrice(c.MonthlyMinor, BasisPoints(c.DiscountPercent*100)); a != period || pm != perMonth {
				t.Errorf("AnnualPrice disagrees: %d/%d vs %d/%d", a, pm, period, perMonth)
			}
		}
	}
}

func TestCycleVectorsProration(t *testing.T) {
	t.Parallel()
	for _, c := range loadCycleVectors(t).Proration {
		// The period is the cycle's: the one containing the order day for a
		// subscription anchored on its start.
		if s, e := PeriodDates(c.Cycle, c.PeriodStart, c.OrderDay); s != c.PeriodStart || e != c.PeriodEndExclusive {
			t.Errorf("%s: period %v–%v, want %v–%v", c.Name, s, e, c.PeriodStart, c.PeriodEndExclusive)
		}
		amount, rem, days := Prorate(c.PriceMinor, c.PeriodStart, c.PeriodEndExclusive, c.OrderDay, ProrationSettings{})
		if amount != c.ProratedMinor || rem != c.RemainingDays || days != c.DaysInPeriod {
			t.Errorf("%s: %d (%d of %d days), want %d (%d of %d): %s", c.Name, amount, rem, days, c.ProratedMinor, c.RemainingDays, c.DaysInPeriod, c.Note)
		}
	}
}

func TestCycleVectorsSwitches(t *testing.T) {
	t.Parallel()
	for _, c := range loadCycleVectors(t).Switches {
		if s, e := PeriodDates(c.NewCycle, c.OrderDay, c.OrderDay); s != c.NewPeriodStart || e != c.NewPeriodEndExclusive {
			t.Errorf("%s: new period %v–%v, want %v–%v", c.Name, s, e, c.NewPeriodStart, c.NewPeriodEndExclusive)
		}
		credit, err := ProratedLine("old", "p", -c.Quantity, c.OldPeriodPriceMinor, c.OldPeriodStart, c.OldPeriodEndExclusive, c.OrderDay, 0, ProrationSettings{})
		if err != nil {
			t.Fatal(err)
		}
		charge, err := ProratedLine("new", "p", c.Quantity, c.NewPeriodPriceMinor, c.NewPeriodStart, c.NewPeriodEndExclusive, c.OrderDay, 0, ProrationSettings{})
		if err != nil {
			t.Fatal(err)
		}
		if credit.AmountMinor != c.CreditMinor || charge.AmountMinor != c.ChargeMinor || credit.AmountMinor+charge.AmountMinor != c.NetMinor {
			t.Errorf("%s: credit %d, charge %d; want %d, %d (net %d): %s", c.Name, credit.AmountMinor, charge.AmountMinor,
				c.CreditMinor, c.ChargeMinor, c.NetMinor, c.Note)
		}
	}
}
