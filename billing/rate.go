package billing

import (
	"errors"
	"fmt"

	"github.com/pbxd/pbxd/internal/percent"
)

// ErrInvalidRate means a percentage is malformed, out of 0–100 %, or finer
// than a basis point.
var ErrInvalidRate = errors.New("billing: invalid rate")

// BasisPoints is a rate in hundredths of a percent (2000 = 20 %, 550 = 5.5 %).
// Integer basis points express every VAT rate and catalog discount in use
// exactly, which a float percent would not.
type BasisPoints int64

// MaxBasisPoints is 100 %, the upper bound of a VAT rate or discount.
const MaxBasisPoints BasisPoints = 10000

// Percent converts a whole percentage (15 → 15 %) to basis points.
func Percent(p int64) BasisPoints { return BasisPoints(p * 100) }

// Valid reports whether r is within 0–100 %.
func (r BasisPoints) Valid() bool { return r >= 0 && r <= MaxBasisPoints }

// String formats r as a percentage for invoices: "20%", "5.5%", "0.01%".
func (r BasisPoints) String() string {
	sign := ""
	u := uint64(r)
	if r < 0 {
		sign, u = "-", -u
	}
	whole, frac := u/100, u%100
	switch {
	case frac == 0:
		return fmt.Sprintf("%s%d%%", sign, whole)
	case frac%10 == 0:
		return fmt.Sprintf("%s%d.%d%%", sign, whole, frac/10)
	}
	return fmt.Sprintf("%s%d.%02d%%", sign, whole, frac)
}

// ParsePercent parses a decimal percentage such as "20", "5.5" or "0.01"
// (an API "vat_percent" or a config discount) into basis points. It rejects
// signs, exponents, more than two decimals and anything above 100 %.
func ParsePercent(s string) (BasisPoints, error) {
	bp, err := percent.Parse(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", ErrInvalidRate, s)
	}
	return BasisPoints(bp), nil
}
