package billing

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// Sentinel errors for money arithmetic; callers test them with errors.Is.
var (
	// ErrCurrencyMismatch means two amounts of different currencies were combined.
	ErrCurrencyMismatch = errors.New("billing: currency mismatch")
	// ErrOverflow means a result does not fit in int64 minor units.
	ErrOverflow = errors.New("billing: amount overflows int64")
	// ErrInvalidCurrency means a currency code is not three uppercase ASCII letters.
	ErrInvalidCurrency = errors.New("billing: invalid currency code")
	// ErrInvalidAmount means an amount string could not be parsed.
	ErrInvalidAmount = errors.New("billing: invalid amount")
)

// Currency is an ISO 4217 alphabetic code such as "EUR". It is a string so it
// maps directly onto the API's "currency" field and the database column.
type Currency string

// ParseCurrency validates s as an ISO 4217 code: exactly three uppercase ASCII
// letters. It does not lowercase-fold, so "eur" is rejected rather than
// silently stored in a second spelling.
func ParseCurrency(s string) (Currency, error) {
	c := Currency(s)
	if !c.Valid() {
		return "", fmt.Errorf("%w: %q", ErrInvalidCurrency, s)
	}
	return c, nil
}

// Valid reports whether c is three uppercase ASCII letters.
func (c Currency) Valid() bool {
	if len(c) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if c[i] < 'A' || c[i] > 'Z' {
			return false
		}
	}
	return true
}

// minorExponents lists ISO 4217 currencies whose minor unit is not 1/100.
// Every other valid code is assumed to have two decimals, which holds for the
// great majority of currencies (EUR, USD, GBP, CHF, ...).
var minorExponents = map[Currency]int{
	"JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "VND": 0, "PYG": 0, "UGX": 0,
	"XAF": 0, "XOF": 0, "XPF": 0, "RWF": 0, "KMF": 0, "GNF": 0, "DJF": 0,
	"VUV": 0, "BIF": 0,
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}

// Exponent is the number of decimal digits of c's minor unit (2 for EUR: one
// cent is 10^-2 euro; 0 for JPY). Formatting and parsing depend on it.
func (c Currency) Exponent() int {
	if e, ok := minorExponents[c]; ok {
		return e
	}
	return 2
}

// FormatMinor renders minor units of c as a plain decimal ("49.90", "-0.05",
// "500" for JPY) by integer arithmetic only, so no float rounding can creep in.
func (c Currency) FormatMinor(minor int64) string {
	return formatMinor(minor, c.Exponent())
}

func formatMinor(minor int64, exp int) string {
	neg := minor < 0
	// Two's complement negation in uint64 is exact even for math.MinInt64.
	u := uint64(minor)
	if neg {
		u = -u
	}
	digits := strconv.FormatUint(u, 10)
	if exp > 0 {
		if len(digits) <= exp {
			digits = strings.Repeat("0", exp-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-exp] + "." + digits[len(digits)-exp:]
	}
	if neg {
		return "-" + digits
	}
	return digits
}

// Money is an amount in integer minor units of a currency. The zero value is
// not a usable amount (it has no currency); build one with a literal.
type Money struct {
	// Minor is the amount in minor units (cents for EUR).
	Minor int64
	// Currency is the ISO 4217 code the amount is expressed in.
	Currency Currency
}

// String formats m the way invoices and logs show it: "49.90 EUR".
func (m Money) String() string {
	return m.Currency.FormatMinor(m.Minor) + " " + string(m.Currency)
}

// Add returns m+o. Mixing currencies or overflowing int64 is an error instead
// of a wrong bill.
func (m Money) Add(o Money) (Money, error) {
	if m.Currency != o.Currency {
		return Money{}, fmt.Errorf("%w: %s + %s", ErrCurrencyMismatch, m.Currency, o.Currency)
	}
	s, ok := addInt64(m.Minor, o.Minor)
	if !ok {
		return Money{}, fmt.Errorf("%w: %s + %s", ErrOverflow, m, o)
	}
	return Money{Minor: s, Currency: m.Currency}, nil
}

// Sub returns m−o, with the same checks as Add.
func (m Money) Sub(o Money) (Money, error) {
	if m.Currency != o.Currency {
		return Money{}, fmt.Errorf("%w: %s - %s", ErrCurrencyMismatch, m.Currency, o.Currency)
	}
	d, ok := subInt64(m.Minor, o.Minor)
	if !ok {
		return Money{}, fmt.Errorf("%w: %s - %s", ErrOverflow, m, o)
	}
	return Money{Minor: d, Currency: m.Currency}, nil
}

// Neg returns −m, turning a charge into the matching credit. Only
// math.MinInt64 has no negation and yields ErrOverflow.
func (m Money) Neg() (Money, error) {
	if m.Minor == math.MinInt64 {
		return Money{}, fmt.Errorf("%w: -(%s)", ErrOverflow, m)
	}
	return Money{Minor: -m.Minor, Currency: m.Currency}, nil
}

// ParseMoney parses the String form back ("49.90 EUR", "-0.05 EUR", "500 JPY").
// The number of decimals must match the currency's exponent exactly, so an
// ambiguous "49.9 EUR" or a sub-cent "49.905 EUR" is rejected, not rounded.
func ParseMoney(s string) (Money, error) {
	num, code, ok := strings.Cut(s, " ")
	if !ok {
		return Money{}, fmt.Errorf("%w: %q: want \"<amount> <currency>\"", ErrInvalidAmount, s)
	}
	c, err := ParseCurrency(code)
	if err != nil {
		return Money{}, err
	}
	minor, err := parseMinor(num, c.Exponent())
	if err != nil {
		return Money{}, fmt.Errorf("%w: %q", err, s)
	}
	return Money{Minor: minor, Currency: c}, nil
}

// parseMinor parses an optionally negative decimal with exactly exp decimals.
func parseMinor(s string, exp int) (int64, error) {
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	if hasDot != (exp > 0) || len(frac) != exp || intPart == "" {
		return 0, ErrInvalidAmount
	}
	digits := intPart + frac
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, ErrInvalidAmount
		}
	}
	if len(intPart) > 1 && intPart[0] == '0' {
		return 0, ErrInvalidAmount // leading zeros: not the canonical form
	}
	u, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return 0, ErrOverflow
	}
	if neg {
		if u > 1<<63 {
			return 0, ErrOverflow
		}
		if u == 0 {
			return 0, ErrInvalidAmount // "-0.00" is not canonical
		}
		return int64(-u), nil
	}
	if u > math.MaxInt64 {
		return 0, ErrOverflow
	}
	return int64(u), nil
}

func addInt64(a, b int64) (int64, bool) {
	s := a + b
	// Overflow iff a and b have the same sign and s has the other one.
	return s, (a >= 0) != (b >= 0) || (s >= 0) == (a >= 0)
}

func subInt64(a, b int64) (int64, bool) {
	d := a - b
	return d, (a >= 0) == (b >= 0) || (d >= 0) == (a >= 0)
}

func mulInt64(a, b int64) (int64, bool) {
	if a == 0 || b == 0 {
		return 0, true
	}
	p := a * b
	if p/b != a || (a == -1 && b == math.MinInt64) || (b == -1 && a == math.MinInt64) {
		return 0, false
	}
	return p, true
}

// MulDivRound returns a×num/den rounded half away from zero, computed exactly
// on a 128-bit intermediate so price × days never overflows before the
// division. It is the single rounding step of proration, discounts and tax.
// It panics if den is zero or the result does not fit in int64, like integer
// division; use MulDivRoundChecked where the inputs are not already bounded.
func MulDivRound(a, num, den int64) int64 {
	q, err := MulDivRoundChecked(a, num, den)
	if err != nil {
		panic(err)
	}
	return q
}

// ErrDivisionByZero is returned by MulDivRoundChecked for a zero denominator.
var ErrDivisionByZero = errors.New("billing: division by zero")

// MulDivRoundChecked is MulDivRound returning an error instead of panicking.
func MulDivRoundChecked(a, num, den int64) (int64, error) {
	if den == 0 {
		return 0, ErrDivisionByZero
	}
	neg := (a < 0) != (num < 0)
	if a == 0 || num == 0 {
		neg = false
	}
	if den < 0 {
		neg = !neg
	}
	hi, lo := bits.Mul64(absU64(a), absU64(num))
	d := absU64(den)
	if hi >= d {
		return 0, ErrOverflow // quotient needs more than 64 bits
	}
	q, r := bits.Div64(hi, lo, d)
	if r >= d-r { // 2r >= d without overflowing: the half rounds up in magnitude
		q++
		if q == 0 {
			return 0, ErrOverflow
		}
	}
	if neg {
		if q > 1<<63 {
			return 0, ErrOverflow
		}
		return int64(-q), nil
	}
	if q > math.MaxInt64 {
		return 0, ErrOverflow
	}
	return int64(q), nil
}

func absU64(x int64) uint64 {
	if x < 0 {
		return -uint64(x)
	}
	return uint64(x)
}
