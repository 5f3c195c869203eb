package billing

import (
	"errors"
	"math"
	"reflect"
	"testing"
)

func TestComputeTotals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		lines []TaxLine
		want  Totals
		err   error
	}{
		{
			name:  "shared vector: one rounding on the rate's net",
			lines: []TaxLine{{2495, 2000}, {2581, 2000}},
			// Per line it would also be 499 + 516; the next case differs.
			want: Totals{NetMinor: 5076, ByRate: []RateTotal{{2000, 5076, 1015}}, TaxMinor: 1015, GrossMinor: 6091},
		},
		{
			name: "per rate, not per line",
			// Each line's VAT is 0.4, which would round to 0 per line; the
			// rate's net total of 6 gives 1.2 → 1.
			lines: []TaxLine{{2, 2000}, {2, 2000}, {2, 2000}},
			want:  Totals{NetMinor: 6, ByRate: []RateTotal{{2000, 6, 1}}, TaxMinor: 1, GrossMinor: 7},
		},
		{
			name:  "mixed rates sorted, 5.5 % and zero rate",
			lines: []TaxLine{{4990, 2000}, {1000, 550}, {300, 0}, {6990, 2000}},
			// 20 %: 11980 → 2396; 5.5 %: 1000 → 55; 0 %: 0.
			want: Totals{NetMinor: 13280, ByRate: []RateTotal{{0, 300, 0}, {550, 1000, 55}, {2000, 11980, 2396}}, TaxMinor: 2451, GrossMinor: 15731},
		},
		{
			name:  "half rounds away from zero",
			lines: []TaxLine{{1010, 550}}, // 55.55 → 56
			want:  Totals{NetMinor: 1010, ByRate: []RateTotal{{550, 1010, 56}}, TaxMinor: 56, GrossMinor: 1066},
		},
		{
			name:  "credits net before tax, negative half away from zero",
			lines: []TaxLine{{2495, 2000}, {-4990, 2000}, {-2, 2500}}, // -2495 → -499; -2 × 25 % = -0.5 → -1
			want:  Totals{NetMinor: -2497, ByRate: []RateTotal{{2000, -2495, -499}, {2500, -2, -1}}, TaxMinor: -500, GrossMinor: -2997},
		},
		{
			name: "empty",
			want: Totals{},
		},
		{name: "rate above 100 %", lines: []TaxLine{{1, 10001}}, err: ErrInvalidRate},
		{name: "negative rate", lines: []TaxLine{{1, -1}}, err: ErrInvalidRate},
		{name: "net overflow", lines: []TaxLine{{math.MaxInt64, 0}, {1, 2000}}, err: ErrOverflow},
		{name: "gross overflow", lines: []TaxLine{{math.MaxInt64 - 10, 2000}}, err: ErrOverflow},
	} {
		got, err := ComputeTotals(tc.lines)
		if !errors.Is(err, tc.err) || (err == nil && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("%s: ComputeTotals = %+v, %v; want %+v, %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}
