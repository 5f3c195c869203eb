package billing

import "fmt"

// ProrationSettings are the catalog's proration options. The zero value is
// DESIGN §4's default: real calendar days, order day included.
type ProrationSettings struct {
	// FixedMonthDays counts every month as 30 days, as some markets expect,
	// using the European 30E/360 day count: a monthly period is 30 days, an
	// annual one 360; a day of month above 30 counts as the 30th (ordering on
	// the 31st leaves 1 day, like the 30th), and February keeps its day
	// numbers, so ordering on 28 February leaves 3 of 30 days (days 28–30).
	// It assumes month-aligned periods, which are the only ones pbxd has.
	FixedMonthDays bool
	// ExcludeOrderDay makes the order day free: remaining days start the day
	// after it, so an order on the period's last day costs nothing.
	ExcludeOrderDay bool
}

// Prorate returns the share of priceMinor (unit price × quantity, negative for
// a credit) due for the rest of the period [periodStart, periodEndExclusive)
// when ordering on orderDay (the account's local day, see DateOf):
//
//	amount = round_half_away_from_zero(price × remaining / daysInPeriod)
//
// with a single rounding, so a credit is exactly the negated charge. An order
// day before the period is clamped to its start (full price); one on or after
// its end leaves nothing. An empty or inverted period yields zeros.
func Prorate(priceMinor int64, periodStart, periodEndExclusive, orderDay Date, s ProrationSettings) (amount int64, remaining, daysInPeriod int) {
	if !periodStart.Before(periodEndExclusive) {
		return 0, 0, 0
	}
	count := Date.DaysUntil
	if s.FixedMonthDays {
		count = days360
	}
	daysInPeriod = count(periodStart, periodEndExclusive)
	switch {
	case orderDay.Before(periodStart):
		remaining = daysInPeriod
	case !orderDay.Before(periodEndExclusive):
		remaining = 0
	default:
		remaining = count(orderDay, periodEndExclusive)
		if s.ExcludeOrderDay && remaining > 0 {
			remaining--
		}
	}
	if daysInPeriod <= 0 {
		return 0, 0, daysInPeriod
	}
	remaining = min(max(remaining, 0), daysInPeriod)
	return ProrateDays(priceMinor, remaining, daysInPeriod), remaining, daysInPeriod
}

// ProrateDays is the proration formula on day counts alone: priceMinor ×
// days / daysInPeriod, rounded half away from zero. For 0 ≤ days ≤
// daysInPeriod it cannot overflow. It panics if daysInPeriod is zero.
func ProrateDays(priceMinor int64, days, daysInPeriod int) int64 {
	return MulDivRound(priceMinor, int64(days), int64(daysInPeriod))
}

// days360 is the 30E/360 day count from a to b: every month is 30 days and a
// 31st is treated as the 30th.
func days360(a, b Date) int {
	return 360*(b.Year-a.Year) + 30*(int(b.Month)-int(a.Month)) + min(b.Day, 30) - min(a.Day, 30)
}

// AnnualPrice returns the price of an annual period for a monthly price and
// the cycle's discount, round(12 × monthly × (1 − discount)) with one
// rounding, and the per-month figure shown beside it, round(annual / 12).
// The per-month figure is for display only: 12 × it need not equal annual.
func AnnualPrice(monthlyMinor int64, discount BasisPoints) (annual, perMonthDisplay int64, err error) {
	if !discount.Valid() {
		return 0, 0, fmt.Errorf("%w: discount %d bp", ErrInvalidRate, int64(discount))
	}
	annual, err = MulDivRoundChecked(monthlyMinor, 12*int64(MaxBasisPoints-discount), int64(MaxBasisPoints))
	if err != nil {
		return 0, 0, fmt.Errorf("annual price of %d: %w", monthlyMinor, err)
	}
	return annual, MulDivRound(annual, 1, 12), nil
}
