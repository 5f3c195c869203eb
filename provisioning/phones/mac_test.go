package phones

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestParseMAC(t *testing.T) {
	t.Parallel()
	want := MAC{0x00, 0x15, 0x65, 0xab, 0xcd, 0xef}
	for _, in := range []string{
		"00:15:65:ab:cd:ef", "00:15:65:AB:CD:EF", "00-15-65-AB-CD-EF", "00-15-65-ab-cd-ef",
		"0015.65ab.cdef", "0015.65AB.CDEF", "001565abcdef", "001565ABCDEF", " 001565abcdef\n",
	} {
		got, err := ParseMAC(in)
		if err != nil || got != want {
			t.Errorf("ParseMAC(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if got := want.String(); got != "001565abcdef" {
		t.Errorf("String() = %q", got)
	}
	for _, in := range []string{
		"", "001565abcde", "001565abcdefa", "00:15:65:ab:cd-ef", "00:15:65:ab:cd:eg",
		"0015:65ab:cdef", "00.15.65.ab.cd.ef", "000000000000", "00:00:00:00:00:00",
		"+01565abcdef", "0x1565abcdef", "00:15:65:ab:cd:e", "001565abcd\x00f",
	} {
		if m, err := ParseMAC(in); !errors.Is(err, ErrInvalidMAC) {
			t.Errorf("ParseMAC(%q) = %v, %v; want ErrInvalidMAC", in, m, err)
		}
	}
}

func TestMACText(t *testing.T) {
	t.Parallel()
	var m MAC
	if err := m.UnmarshalText([]byte("00-15-65-AB-CD-EF")); err != nil {
		t.Fatal(err)
	}
	b, _ := m.MarshalText()
	if string(b) != "001565abcdef" {
		t.Errorf("MarshalText = %s", b)
	}
}

var canonicalMAC = regexp.MustCompile(`^[0-9a-f]{12}$`)

func FuzzParseMAC(f *testing.F) {
	for _, s := range []string{"00:15:65:ab:cd:ef", "00-15-65-AB-CD-EF", "0015.65ab.cdef", "001565abcdef", "", "zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMAC(s)
		if err != nil {
			return
		}
		c := m.String()
		if !canonicalMAC.MatchString(c) || m.IsZero() {
			t.Fatalf("ParseMAC(%q) = %q", s, c)
		}
		// Every notation of the result parses back to it.
		colon := strings.Join([]string{c[0:2], c[2:4], c[4:6], c[6:8], c[8:10], c[10:12]}, ":")
		for _, n := range []string{c, m.Upper(), colon, strings.ReplaceAll(colon, ":", "-"), c[0:4] + "." + c[4:8] + "." + c[8:12]} {
			if m2, err := ParseMAC(n); err != nil || m2 != m {
				t.Fatalf("ParseMAC(%q) = %v, %v; want %v", n, m2, err, m)
			}
		}
		// The input, stripped of separators, is the same digits.
		digits := strings.Map(func(r rune) rune {
			if strings.ContainsRune(":-.", r) {
				return -1
			}
			return r
		}, strings.TrimSpace(s))
		if !strings.EqualFold(digits, c) {
			t.Fatalf("ParseMAC(%q) = %q: digits differ", s, c)
		}
	})
}
