package billing

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestProrate(t *testing.T) {
	t.Parallel()
	fixed := ProrationSettings{FixedMonthDays: true}
	excl := ProrationSettings{ExcludeOrderDay: true}
	for _, tc := range []struct {
		name                  string
		price                 int64
		start, end, order     string
		s                     ProrationSettings
		amount                int64
		remaining, daysPeriod int
	}{
		{"seed", 4990, "2026-11-01", "2026-12-01", "2026-11-16", ProrationSettings{}, 2495, 15, 30},
		{"before the period: full price", 4990, "2026-11-01", "2026-12-01", "2026-10-16", ProrationSettings{}, 4990, 30, 30},
		{"on the end day: nothing", 4990, "2026-11-01", "2026-12-01", "2026-12-01", ProrationSettings{}, 0, 0, 30},
		{"after the period: nothing", 4990, "2026-11-01", "2026-12-01", "2027-01-10", ProrationSettings{}, 0, 0, 30},
		{"empty period", 4990, "2026-11-01", "2026-11-01", "2026-11-01", ProrationSettings{}, 0, 0, 0},
		{"inverted period", 4990, "2026-12-01", "2026-11-01", "2026-11-16", ProrationSettings{}, 0, 0, 0},
		{"zero price", 0, "2026-11-01", "2026-12-01", "2026-11-16", ProrationSettings{}, 0, 15, 30},
		{"quantity 3 in one line", 3 * 4990, "2026-11-01", "2026-12-01", "2026-11-30", ProrationSettings{}, 499, 1, 30},
		{"huge price does not overflow", math.MaxInt64, "2026-12-01", "2027-01-01", "2026-12-17", ProrationSettings{}, 4462921953316827003, 15, 31},
		{"huge credit", math.MinInt64, "2026-11-01", "2026-12-01", "2026-11-01", ProrationSettings{}, math.MinInt64, 30, 30},
		{"30-day: 31st like the 30th", 4990, "2026-12-01", "2027-01-01", "2026-12-31", fixed, 166, 1, 30},
		{"30-day: 28 Feb leaves 3", 4990, "2027-02-01", "2027-03-01", "2027-02-28", fixed, 499, 3, 30},
		{"30-day: annual is 360", 20390, "2026-03-01", "2027-03-01", "2026-03-01", fixed, 20390, 360, 360},
		{"30-day: annual from 31 Aug", 36000, "2026-03-01", "2027-03-01", "2026-08-31", fixed, 18100, 181, 360},
		{"30-day: before the period", 4990, "2026-11-01", "2026-12-01", "2026-10-31", fixed, 4990, 30, 30},
		{"exclude: first day", 3000, "2026-11-01", "2026-12-01", "2026-11-01", excl, 2900, 29, 30},
		{"exclude: last day", 3000, "2026-11-01", "2026-12-01", "2026-11-30", excl, 0, 0, 30},
		{"exclude: before the period", 3000, "2026-11-01", "2026-12-01", "2026-10-30", excl, 3000, 30, 30},
	} {
		amount, rem, days := Prorate(tc.price, d(tc.start), d(tc.end), d(tc.order), tc.s)
		if amount != tc.amount || rem != tc.remaining || days != tc.daysPeriod {
			t.Errorf("%s: Prorate = %d, %d/%d; want %d, %d/%d", tc.name, amount, rem, days, tc.amount, tc.remaining, tc.daysPeriod)
		}
	}
}

func TestAnnualPrice(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		monthly          int64
		discount         BasisPoints
		annual, perMonth int64
		err              error
	}{
		{1999, Percent(15), 20390, 1699, nil},    // 20389.8 → 20390; 1699.17
		{4990, Percent(15), 50898, 4242, nil},    // 50898.0; 4241.5 → 4242
		{6990, Percent(15), 71298, 5942, nil},    // 71298.0; 5941.5 → 5942
		{4990, 0, 59880, 4990, nil},              // no discount
		{4990, Percent(100), 0, 0, nil},          // free
		{1999, 1250, 20990, 1749, nil},           // 12.5 %: 20989.5 → 20990; 1749.17
		{-1999, Percent(15), -20390, -1699, nil}, // a credit rounds symmetrically
		{1999, -1, 0, 0, ErrInvalidRate},
		{1999, 10001, 0, 0, ErrInvalidRate},
		{math.MaxInt64, 0, 0, 0, ErrOverflow},
	} {
		annual, perMonth, err := AnnualPrice(tc.monthly, tc.discount)
		if !errors.Is(err, tc.err) || annual != tc.annual || perMonth != tc.perMonth {
			t.Errorf("AnnualPrice(%d, %v) = %d, %d, %v; want %d, %d, %v", tc.monthly, tc.discount, annual, perMonth, err, tc.annual, tc.perMonth, tc.err)
		}
	}
}

// randomPeriod returns a monthly or annual period and a day inside it.
func randomPeriod(r *rand.Rand) (start, end Date) {
	start = Date{Year: 1990 + r.IntN(80), Month: time.Month(1 + r.IntN(12)), Day: 1}
	if r.IntN(2) == 0 {
		return start, start.AddMonths(1)
	}
	return start, start.AddMonths(12)
}

func randomSettings(r *rand.Rand) ProrationSettings {
	return ProrationSettings{FixedMonthDays: r.IntN(2) == 0, ExcludeOrderDay: r.IntN(2) == 0}
}

func randomPrice(r *rand.Rand) int64 {
	if r.IntN(4) == 0 {
		return r.Int64N(1<<50) - 1<<49
	}
	return r.Int64N(200001) - 100000
}

// TestPropertySplit: prorating the pieces of a period split at any days
// adds up to the whole price within one minor unit per split.
func TestPropertySplit(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(5, 6))
	for range 20000 {
		start, end := randomPeriod(r)
		s := randomSettings(r)
		price := randomPrice(r)
		_, _, dip := Prorate(price, start, end, start, s)
		// Remaining days at k random split days, in period order.
		splits := 1 + r.IntN(4)
		var rems []int
		for range splits {
			day := start.AddDays(r.IntN(start.DaysUntil(end)))
			_, rem, _ := Prorate(price, start, end, day, ProrationSettings{FixedMonthDays: s.FixedMonthDays})
			rems = append(rems, rem)
		}
		rems = append(rems, dip, 0)
		sortDesc(rems)
		var sum int64
		for i := 0; i+1 < len(rems); i++ {
			sum += ProrateDays(price, rems[i]-rems[i+1], dip) // piece i's days
		}
		if diff := sum - price; diff > int64(splits) || diff < -int64(splits) {
			t.Fatalf("price %d over [%v, %v) %+v split at %v: pieces sum to %d", price, start, end, s, rems, sum)
		}
		// The simplest split, via Prorate itself: what a line held until day
		// X costs (full price minus the credit from X) plus the charge of a
		// line ordered on X equals the price exactly.
		day := start.AddDays(r.IntN(start.DaysUntil(end)))
		charge, _, _ := Prorate(price, start, end, day, s)
		credit, _, _ := Prorate(-price, start, end, day, s)
		if (price+credit)+charge != price {
			t.Fatalf("held-until + ordered-on %v != price %d", day, price)
		}
	}
}

func sortDesc(xs []int) {
	for i := 1; i < len(xs); i++ {
		for j := i; j > 0 && xs[j] > xs[j-1]; j-- {
			xs[j], xs[j-1] = xs[j-1], xs[j]
		}
	}
}

// TestPropertyMonotone: a later order day never costs more (for a charge)
// and more remaining days never cost less.
func TestPropertyMonotone(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 8))
	for range 2000 {
		start, end := randomPeriod(r)
		s := randomSettings(r)
		price := r.Int64N(1 << 40)
		prevAmount, prevRem := int64(math.MaxInt64), math.MaxInt
		for day := start.AddDays(-2); !day.After(end.AddDays(2)); day = day.AddDays(1) {
			amount, rem, dip := Prorate(price, start, end, day, s)
			if rem > prevRem || amount > prevAmount || rem < 0 || rem > dip || amount < 0 || amount > price {
				t.Fatalf("price %d [%v, %v) %+v on %v: %d, %d/%d after %d, %d", price, start, end, s, day, amount, rem, dip, prevAmount, prevRem)
			}
			prevAmount, prevRem = amount, rem
		}
		// Directly in remaining days, including equal and neighbour counts.
		_, _, dip := Prorate(price, start, end, start, s)
		a := r.IntN(dip + 1)
		b := r.IntN(dip + 1)
		if a > b {
			a, b = b, a
		}
		if ProrateDays(price, a, dip) > ProrateDays(price, b, dip) {
			t.Fatalf("ProrateDays not monotone: %d days > %d days", a, b)
		}
	}
}

// TestPropertyCredit: a credit is exactly the negated charge.
func TestPropertyCredit(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(9, 10))
	for range 50000 {
		start, end := randomPeriod(r)
		s := randomSettings(r)
		price := int64(r.Uint64() >> 1) // any non-negative int64
		if r.IntN(2) == 0 {
			price = randomPrice(r)
		}
		day := start.AddDays(r.IntN(start.DaysUntil(end)+4) - 2)
		charge, rc, dc := Prorate(price, start, end, day, s)
		credit, rr, dr := Prorate(-price, start, end, day, s)
		if credit != -charge || rc != rr || dc != dr {
			t.Fatalf("price %d on %v %+v: charge %d, credit %d", price, day, s, charge, credit)
		}
	}
}

func BenchmarkProrate(b *testing.B) {
	start, end, order := d("2026-03-01"), d("2027-03-01"), d("2026-11-16")
	for _, bc := range []struct {
		name string
		s    ProrationSettings
	}{
		{"real", ProrationSettings{}},
		{"fixed30", ProrationSettings{FixedMonthDays: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var sink int64
			for b.Loop() {
				a, _, _ := Prorate(20390, start, end, order, bc.s)
				sink += a
			}
			_ = sink
		})
	}
}

func BenchmarkMulDivRound(b *testing.B) {
	var sink int64
	for i := int64(0); b.Loop(); i++ {
		sink += MulDivRound(math.MaxInt64-i, 105, 365)
	}
	_ = sink
}
