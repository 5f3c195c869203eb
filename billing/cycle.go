package billing

import "fmt"

// CyclePrice returns the price of one period of cycle c for a monthly price
// and the cycle's discount, round(months × monthly × (1 − discount)) with
// one rounding, half away from zero, and the per-month figure shown beside
// it, round(period / months), for display only. For Annual it agrees with
// AnnualPrice.
func CyclePrice(monthlyMinor int64, c Cycle, discount BasisPoints) (period, perMonthDisplay int64, err error) {
	months := int64(c.Months())
	if months == 0 {
		return 0, 0, fmt.Errorf("%w: %q", ErrInvalidCycle, string(c))
	}
	if !discount.Valid() {
		return 0, 0, fmt.Errorf("%w: discount %d bp", ErrInvalidRate, int64(discount))
	}
	period, err = MulDivRoundChecked(monthlyMinor, months*int64(MaxBasisPoints-discount), int64(MaxBasisPoints))
	if err != nil {
		return 0, 0, fmt.Errorf("%s price of %d: %w", c, monthlyMinor, err)
	}
	return period, MulDivRound(period, 1, months), nil
}

// PerMonth is the per-month figure of a period price of cycle c, for
// display: round(period / months), half away from zero.
func PerMonth(periodMinor int64, c Cycle) int64 {
	return MulDivRound(periodMinor, 1, int64(max(1, c.Months())))
}
