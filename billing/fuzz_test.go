package billing

import (
	"strings"
	"testing"
)

// Fuzz targets for every parser of outside input. Each checks that parsing
// never panics and that what it accepts round-trips through its formatter
// unchanged (the parsers accept only canonical forms).

func FuzzParseCurrency(f *testing.F) {
	for _, s := range []string{"EUR", "JPY", "eur", "", "EURO", "\xff\xfe\xfd"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCurrency(s)
		if err != nil {
			return
		}
		if string(c) != s || !c.Valid() {
			t.Fatalf("ParseCurrency(%q) = %q", s, c)
		}
		if e := c.Exponent(); e < 0 || e > 3 {
			t.Fatalf("%s.Exponent() = %d", c, e)
		}
	})
}

func FuzzParseMoney(f *testing.F) {
	for _, s := range []string{"49.90 EUR", "-0.05 EUR", "500 JPY", "1.234 KWD", "92233720368547758.08 EUR", "1.0 EUR", "- EUR", "-.00 EUR"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMoney(s)
		if err != nil {
			return
		}
		if got := m.String(); got != s {
			t.Fatalf("ParseMoney(%q) = %#v, which formats as %q", s, m, got)
		}
	})
}

func FuzzMoneyFormat(f *testing.F) {
	f.Add(int64(4990), "EUR")
	f.Add(int64(-9223372036854775808), "JPY")
	f.Add(int64(-1), "KWD")
	f.Fuzz(func(t *testing.T, minor int64, code string) {
		c, err := ParseCurrency(code)
		if err != nil {
			return
		}
		m := Money{Minor: minor, Currency: c}
		back, err := ParseMoney(m.String())
		if err != nil || back != m {
			t.Fatalf("%#v → %q → %#v, %v", m, m.String(), back, err)
		}
	})
}

func FuzzParseDate(f *testing.F) {
	for _, s := range []string{"2026-11-16", "2028-02-29", "2027-02-29", "0000-01-01", "9999-12-31", "2026-1-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDate(s)
		if err != nil {
			return
		}
		if d.String() != s {
			t.Fatalf("ParseDate(%q) = %v", s, d)
		}
		if d.AddDays(1).AddDays(-1) != d || d.AddDays(40).DaysUntil(d) != -40 {
			t.Fatalf("day arithmetic broken at %v", d)
		}
	})
}

func FuzzParsePercent(f *testing.F) {
	for _, s := range []string{"20", "5.5", "0.01", "100", "100.01", "5.", "-1", "007"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParsePercent(s)
		if err != nil {
			return
		}
		if !r.Valid() {
			t.Fatalf("ParsePercent(%q) = %d, out of range", s, r)
		}
		again, err := ParsePercent(strings.TrimSuffix(r.String(), "%"))
		if err != nil || again != r {
			t.Fatalf("ParsePercent(%q) = %d; its String %q parses as %d, %v", s, r, r.String(), again, err)
		}
	})
}

func FuzzParseNumber(f *testing.F) {
	for _, s := range []string{"2026-000001", "2026-1000000", "2026-0000001", "2026-000000", "x", "2026-99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		y, seq, err := ParseNumber(s)
		if err != nil {
			return
		}
		if got := FormatNumber(y, seq); got != s {
			t.Fatalf("ParseNumber(%q) = %d, %d, which formats as %q", s, y, seq, got)
		}
	})
}

func FuzzMulDivRound(f *testing.F) {
	f.Add(int64(1999), int64(15), int64(30))
	f.Add(int64(-9223372036854775808), int64(-1), int64(1))
	f.Fuzz(func(t *testing.T, a, num, den int64) {
		got, err := MulDivRoundChecked(a, num, den)
		want, ok := bigMulDivRound(a, num, den)
		if ok != (err == nil) || (ok && got != want) {
			t.Fatalf("MulDivRoundChecked(%d, %d, %d) = %d, %v; want %d, ok=%v", a, num, den, got, err, want, ok)
		}
	})
}
