package billing

import (
	"cmp"
	"fmt"
	"slices"
)

// TaxLine is what tax needs from an invoice line: its net amount and VAT rate.
type TaxLine struct {
	NetMinor int64
	Rate     BasisPoints
}

// RateTotal is the net base and VAT of one rate on an invoice, shown as a
// line of the invoice's tax summary (required when rates are mixed).
type RateTotal struct {
	Rate     BasisPoints
	NetMinor int64
	TaxMinor int64
}

// Totals are an invoice's figures before and after tax.
type Totals struct {
	// NetMinor is the sum of the lines, before tax.
	NetMinor int64
	// ByRate holds one entry per VAT rate present, by ascending rate.
	ByRate []RateTotal
	// TaxMinor is the sum of ByRate's taxes.
	TaxMinor int64
	// GrossMinor is NetMinor + TaxMinor, the amount to pay (or credit).
	GrossMinor int64
}

// ComputeTotals sums lines per VAT rate and computes each rate's VAT on that
// rate's net total, rounded once half away from zero. Rounding per rate
// rather than per line is what EU invoicing expects and keeps the invoice's
// VAT independent of how the lines were split. Negative lines (credits) are
// netted before tax. Rates outside 0–100 % and overflow are errors.
func ComputeTotals(lines []TaxLine) (Totals, error) {
	net := map[BasisPoints]int64{}
	var t Totals
	for i, l := range lines {
		if !l.Rate.Valid() {
			return Totals{}, fmt.Errorf("line %d: %w: %d bp", i, ErrInvalidRate, int64(l.Rate))
		}
		var ok bool
		if net[l.Rate], ok = addInt64(net[l.Rate], l.NetMinor); !ok {
			return Totals{}, fmt.Errorf("line %d: %w", i, ErrOverflow)
		}
		if t.NetMinor, ok = addInt64(t.NetMinor, l.NetMinor); !ok {
			return Totals{}, fmt.Errorf("line %d: %w", i, ErrOverflow)
		}
	}
	for rate, n := range net {
		// |tax| ≤ |n| for rates ≤ 100 %, so this cannot overflow.
		t.ByRate = append(t.ByRate, RateTotal{Rate: rate, NetMinor: n, TaxMinor: MulDivRound(n, int64(rate), int64(MaxBasisPoints))})
	}
	slices.SortFunc(t.ByRate, func(a, b RateTotal) int { return cmp.Compare(a.Rate, b.Rate) })
	var ok bool
	for _, r := range t.ByRate {
		if t.TaxMinor, ok = addInt64(t.TaxMinor, r.TaxMinor); !ok {
			return Totals{}, fmt.Errorf("tax total: %w", ErrOverflow)
		}
	}
	if t.GrossMinor, ok = addInt64(t.NetMinor, t.TaxMinor); !ok {
		return Totals{}, fmt.Errorf("gross total: %w", ErrOverflow)
	}
	return t, nil
}
