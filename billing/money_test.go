package billing

import (
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

func TestParseCurrency(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in  string
		ok  bool
		exp int
	}{
		{"EUR", true, 2}, {"USD", true, 2}, {"GBP", true, 2}, {"CHF", true, 2},
		{"JPY", true, 0}, {"KWD", true, 3}, {"XYZ", true, 2},
		{"eur", false, 0}, {"EU", false, 0}, {"EURO", false, 0}, {"", false, 0}, {"E1R", false, 0}, {"ÉUR", false, 0},
	} {
		c, err := ParseCurrency(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseCurrency(%q) err = %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if !tc.ok {
			if !errors.Is(err, ErrInvalidCurrency) {
				t.Errorf("ParseCurrency(%q) err = %v, want ErrInvalidCurrency", tc.in, err)
			}
			continue
		}
		if c.Exponent() != tc.exp {
			t.Errorf("%s.Exponent() = %d, want %d", c, c.Exponent(), tc.exp)
		}
	}
}

func TestMoneyString(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		m    Money
		want string
	}{
		{Money{4990, "EUR"}, "49.90 EUR"},
		{Money{5, "EUR"}, "0.05 EUR"},
		{Money{-5, "EUR"}, "-0.05 EUR"},
		{Money{0, "USD"}, "0.00 USD"},
		{Money{-249500, "GBP"}, "-2495.00 GBP"},
		{Money{500, "JPY"}, "500 JPY"},
		{Money{-500, "JPY"}, "-500 JPY"},
		{Money{1234, "KWD"}, "1.234 KWD"},
		{Money{math.MinInt64, "EUR"}, "-92233720368547758.08 EUR"},
		{Money{math.MaxInt64, "EUR"}, "92233720368547758.07 EUR"},
	} {
		if got := tc.m.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.m, got, tc.want)
		}
	}
}

func TestParseMoney(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want Money
		err  error
	}{
		{"49.90 EUR", Money{4990, "EUR"}, nil},
		{"-0.05 EUR", Money{-5, "EUR"}, nil},
		{"0.00 EUR", Money{0, "EUR"}, nil},
		{"500 JPY", Money{500, "JPY"}, nil},
		{"92233720368547758.07 EUR", Money{math.MaxInt64, "EUR"}, nil},
		{"-92233720368547758.08 EUR", Money{math.MinInt64, "EUR"}, nil},
		{"92233720368547758.08 EUR", Money{}, ErrOverflow},
		{"49.9 EUR", Money{}, ErrInvalidAmount},
		{"49.905 EUR", Money{}, ErrInvalidAmount},
		{"49 EUR", Money{}, ErrInvalidAmount},
		{"49.00 JPY", Money{}, ErrInvalidAmount},
		{"-0.00 EUR", Money{}, ErrInvalidAmount},
		{"049.90 EUR", Money{}, ErrInvalidAmount},
		{"+1.00 EUR", Money{}, ErrInvalidAmount},
		{".50 EUR", Money{}, ErrInvalidAmount},
		{"1.00 eur", Money{}, ErrInvalidCurrency},
		{"1.00", Money{}, ErrInvalidAmount},
		{"1.00  EUR", Money{}, ErrInvalidCurrency},
	} {
		got, err := ParseMoney(tc.in)
		if !errors.Is(err, tc.err) || (err == nil && got != tc.want) {
			t.Errorf("ParseMoney(%q) = %v, %v; want %v, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestMoneyArithmetic(t *testing.T) {
	t.Parallel()
	eur := func(m int64) Money { return Money{m, "EUR"} }
	type op func(a, b Money) (Money, error)
	add := Money.Add
	sub := Money.Sub
	neg := func(a, _ Money) (Money, error) { return a.Neg() }
	for _, tc := range []struct {
		name string
		op   op
		a, b Money
		want Money
		err  error
	}{
		{"add", add, eur(4990), eur(-2495), eur(2495), nil},
		{"add max", add, eur(math.MaxInt64), eur(0), eur(math.MaxInt64), nil},
		{"add overflow", add, eur(math.MaxInt64), eur(1), Money{}, ErrOverflow},
		{"add underflow", add, eur(math.MinInt64), eur(-1), Money{}, ErrOverflow},
		{"add extremes", add, eur(math.MinInt64), eur(math.MaxInt64), eur(-1), nil},
		{"add mismatch", add, eur(1), Money{1, "USD"}, Money{}, ErrCurrencyMismatch},
		{"sub", sub, eur(100), eur(250), eur(-150), nil},
		{"sub overflow", sub, eur(math.MinInt64), eur(1), Money{}, ErrOverflow},
		{"sub overflow neg", sub, eur(0), eur(math.MinInt64), Money{}, ErrOverflow},
		{"sub to min", sub, eur(-1), eur(math.MaxInt64), eur(math.MinInt64), nil},
		{"sub mismatch", sub, eur(1), Money{1, "GBP"}, Money{}, ErrCurrencyMismatch},
		{"neg", neg, eur(4990), Money{}, eur(-4990), nil},
		{"neg max", neg, eur(math.MaxInt64), Money{}, eur(-math.MaxInt64), nil},
		{"neg min", neg, eur(math.MinInt64), Money{}, Money{}, ErrOverflow},
	} {
		got, err := tc.op(tc.a, tc.b)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("%s(%v, %v) = %v, %v; want %v, %v", tc.name, tc.a, tc.b, got, err, tc.want, tc.err)
		}
	}
}

func TestMulDivRound(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, num, den, want int64
		err               error
	}{
		{4990, 15, 30, 2495, nil},
		{1999, 15, 30, 1000, nil}, // 999.5 → 1000
		{-1999, 15, 30, -1000, nil},
		{1999, -15, 30, -1000, nil},
		{1999, 15, -30, -1000, nil},
		{-1999, -15, -30, -1000, nil},
		{-1999, -15, 30, 1000, nil},
		{4990, 1, 30, 166, nil}, // 166.33
		{4990, 2, 30, 333, nil}, // 332.67
		{5, 1, 2, 3, nil},       // 2.5 → 3
		{-5, 1, 2, -3, nil},     // -2.5 → -3
		{7, 1, 2, 4, nil},       // 3.5 → 4
		{1, 1, 3, 0, nil},       // 0.33
		{0, 5, 7, 0, nil},
		{math.MaxInt64, math.MaxInt64, math.MaxInt64, math.MaxInt64, nil},
		{math.MinInt64, 30, 30, math.MinInt64, nil},
		{math.MinInt64, -1, 1, 0, ErrOverflow},
		{math.MaxInt64, 2, 1, 0, ErrOverflow},
		{math.MaxInt64, 3, 2, 0, ErrOverflow},
		{math.MaxInt64, 1, 0, 0, ErrDivisionByZero},
		{math.MinInt64, math.MinInt64, math.MinInt64, math.MinInt64, nil},
		{math.MinInt64, 1, -1, 0, ErrOverflow},
		{math.MinInt64, 1, 2, -(1 << 62), nil},
	} {
		got, err := MulDivRoundChecked(tc.a, tc.num, tc.den)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("MulDivRoundChecked(%d, %d, %d) = %d, %v; want %d, %v", tc.a, tc.num, tc.den, got, err, tc.want, tc.err)
		}
	}
}

// TestMulDivRoundBig compares MulDivRound with an exact math/big reference
// on random inputs, including ones whose product exceeds 64 bits.
func TestMulDivRoundBig(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	gen := func() int64 {
		switch r.IntN(4) {
		case 0:
			return r.Int64N(2001) - 1000
		case 1:
			return int64(r.Uint64())
		case 2:
			return r.Int64N(1<<40) - 1<<39
		}
		return []int64{math.MinInt64, math.MaxInt64, 0, 1, -1}[r.IntN(5)]
	}
	for range 200000 {
		a, num, den := gen(), gen(), gen()
		got, err := MulDivRoundChecked(a, num, den)
		want, ok := bigMulDivRound(a, num, den)
		if !ok {
			if err == nil {
				t.Fatalf("MulDivRoundChecked(%d, %d, %d) = %d, want an error", a, num, den, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Fatalf("MulDivRoundChecked(%d, %d, %d) = %d, %v; want %d", a, num, den, got, err, want)
		}
	}
}

func bigMulDivRound(a, num, den int64) (int64, bool) {
	if den == 0 {
		return 0, false
	}
	p := new(big.Int).Mul(big.NewInt(a), big.NewInt(num))
	d := big.NewInt(den)
	neg := p.Sign()*d.Sign() < 0
	p.Abs(p)
	d.Abs(d)
	q, m := new(big.Int).QuoRem(p, d, new(big.Int))
	if m.Lsh(m, 1).Cmp(d) >= 0 {
		q.Add(q, big.NewInt(1))
	}
	if neg {
		q.Neg(q)
	}
	if !q.IsInt64() {
		return 0, false
	}
	return q.Int64(), true
}

func TestMulDivRoundPanics(t *testing.T) {
	t.Parallel()
	defer func() {
		if r := recover(); r == nil {
			t.Error("MulDivRound(1, 1, 0) did not panic")
		}
	}()
	MulDivRound(1, 1, 0)
}
