package provisioning

import (
	"encoding/json"
	"regexp"
	"slices"
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

// Whatever a customer sends as a request's details, an accepted one holds
// only the fields its kind takes, the fields it needs, and canonical
// numbers.
func FuzzParseDetails(f *testing.F) {
	f.Add("cancel_all", `{"reason": "moving"}`)
	f.Add("downgrade", `{"items": [{"package": "world", "quantity": 1}]}`)
	f.Add("port_in", `{"numbers": ["+33 1 55 00 00 01"], "country": "FR", "losing_carrier": "SFR"}`)
	f.Add("port_out", `{"numbers": ["0155"], "gaining_carrier": "Orange"}`)
	f.Add("other", `{"text": " "}`)
	f.Add("change_owner", `{"new_owner": {"name": "B"}, "extra": 1}`)
	f.Fuzz(func(t *testing.T, kind, raw string) {
		d, err := parseDetails(kind, []byte(raw))
		if err != nil {
			return
		}
		var keys map[string]any
		if json.Unmarshal([]byte(raw), &keys) != nil {
			t.Fatalf("accepted non-object details %q", raw)
		}
		for k := range keys {
			if !slices.Contains(allowed[kind], k) {
				t.Fatalf("%s accepted field %q", kind, k)
			}
		}
		for _, n := range d.Numbers {
			if !e164.MatchString(n) {
				t.Fatalf("number %q not canonical", n)
			}
		}
		switch kind {
		case "downgrade", "remove_addon":
			if len(d.Items) == 0 {
				t.Fatal("accepted without items")
			}
		case "remove_number", "port_out":
			if len(d.Numbers) == 0 {
				t.Fatal("accepted without numbers")
			}
		case "port_in":
			if len(d.Numbers) == 0 || d.LosingCarrier == "" || d.Country == "" {
				t.Fatal("port-in accepted without numbers, carrier or country")
			}
		case "other":
			if strings.TrimSpace(d.Text) == "" {
				t.Fatal("accepted without text")
			}
		}
	})
}
