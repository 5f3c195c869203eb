package billing

import (
	"errors"
	"testing"
)

func TestParsePercent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want BasisPoints
		ok   bool
	}{
		{"20", 2000, true}, {"5.5", 550, true}, {"5.50", 550, true}, {"0", 0, true},
		{"0.01", 1, true}, {"100", 10000, true}, {"100.00", 10000, true}, {"020", 2000, true},
		{"100.01", 0, false}, {"5.555", 0, false}, {"-5", 0, false}, {"+5", 0, false},
		{"5.", 0, false}, {".5", 0, false}, {"", 0, false}, {"1e1", 0, false}, {"5 ", 0, false},
		{"1000", 0, false}, {"5,5", 0, false},
	} {
		got, err := ParsePercent(tc.in)
		if tc.ok != (err == nil) || got != tc.want {
			t.Errorf("ParsePercent(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidRate) {
			t.Errorf("ParsePercent(%q) err = %v, want ErrInvalidRate", tc.in, err)
		}
	}
}

func TestBasisPointsString(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   BasisPoints
		want string
	}{
		{2000, "20%"}, {550, "5.5%"}, {1, "0.01%"}, {0, "0%"}, {10000, "100%"}, {210, "2.1%"}, {-550, "-5.5%"}, {1234, "12.34%"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("BasisPoints(%d).String() = %q, want %q", int64(tc.in), got, tc.want)
		}
	}
}
