package provisioning

import (
	"regexp"
	"strings"
	"testing"
)

func TestParseE164(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"+33142000001", "+33142000001"},
		{"+33 1 42 00 00 01", "+33142000001"},
		{"+1 (415) 555-0100", "+14155550100"},
		{"+44.20.7946.0018", "+442079460018"},
		{"0142000001", ""},         // national format
		{"+033142000001", ""},      // country code starting with 0
		{"+331420", ""},            // too short
		{"+3314200000100000", ""},  // 16 digits
		{"+33142000001x", ""},      // letters
		{"+33142000001;ext=1", ""}, // extensions are not numbers
		{"+", ""},
	} {
		got, err := ParseE164(c.in)
		if got != c.want || (err == nil) != (c.want != "") {
			t.Errorf("ParseE164(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// Whatever an operator's file holds, an accepted number is canonical
// (what the database CHECK accepts) and parses to itself.
func FuzzParseE164(f *testing.F) {
	for _, s := range []string{"+33142000001", "+1 (415) 555-0100", "0142", "+0", "+٣٣١٤٢٠٠٠٠٠١", "+33-1-42"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseE164(s)
		if err != nil {
			if got != "" {
				t.Fatalf("error %v with result %q", err, got)
			}
			return
		}
		if !e164.MatchString(got) {
			t.Fatalf("ParseE164(%q) = %q, not canonical E.164", s, got)
		}
		if again, err := ParseE164(got); err != nil || again != got {
			t.Fatalf("ParseE164(%q) = %q, %v; not idempotent", got, again, err)
		}
		if strings.Count(s, "+") != 1 {
			t.Fatalf("accepted %q with %d plus signs", s, strings.Count(s, "+"))
		}
	})
}

// A prefix is what a LIKE pattern is built from: only + and digits.
func FuzzParsePrefix(f *testing.F) {
	for _, s := range []string{"+331", "+", "+0", "+33%", "+33_1", "33"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parsePrefix(s)
		if err != nil {
			return
		}
		if got != s || !regexp.MustCompile(`^\+[1-9][0-9]{0,14}$`).MatchString(got) {
			t.Fatalf("parsePrefix(%q) = %q", s, got)
		}
	})
}
