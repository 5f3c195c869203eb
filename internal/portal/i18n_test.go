package portal

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMoney(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		lang     string
		minor    int64
		currency string
		want     string
	}{
		{"en", 2495, "EUR", "€24.95"},
		{"fr", 2495, "EUR", "24,95\u00a0€"},
		{"en", -3495, "EUR", "−€34.95"},
		{"fr", -3495, "EUR", "−34,95\u00a0€"},
		{"en", 142596, "EUR", "€1,425.96"},
		{"fr", 142596, "EUR", "1\u202f425,96\u00a0€"},
		{"en", 123456789, "USD", "$1,234,567.89"},
		{"en", 5, "GBP", "£0.05"},
		{"en", 500, "JPY", "JPY\u00a0500"},
		{"fr", 0, "SEK", "0,00\u00a0SEK"},
	} {
		if got := money(c.lang, c.minor, c.currency); got != c.want {
			t.Errorf("money(%s, %d, %s) = %q, want %q", c.lang, c.minor, c.currency, got, c.want)
		}
	}
}

// Whatever the amount, the digits shown are the amount's digits: no float,
// no lost cent, one sign.
func FuzzMoney(f *testing.F) {
	f.Add(int64(2495), "fr")
	f.Add(int64(-1), "en")
	f.Add(int64(-9223372036854775808), "en")
	f.Fuzz(func(t *testing.T, minor int64, lang string) {
		s := money(lang, minor, "EUR")
		digits := strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, s)
		want := strings.TrimPrefix(strconv.FormatInt(minor, 10), "-")
		for len(want) < 3 {
			want = "0" + want
		}
		if digits != want {
			t.Fatalf("money(%d) = %q: digits %s, want %s", minor, s, digits, want)
		}
		if (minor < 0) != strings.HasPrefix(s, "−") {
			t.Fatalf("money(%d) = %q: wrong sign", minor, s)
		}
	})
}

func TestDate(t *testing.T) {
	t.Parallel()
	paris, _ := time.LoadLocation("Europe/Paris")
	at := time.Date(2026, 11, 30, 23, 30, 0, 0, time.UTC) // already 1 December in Paris
	if got := date("fr", at, paris); got != "1er décembre 2026" {
		t.Errorf("fr = %q", got)
	}
	if got := date("en", at, paris); got != "1 December 2026" {
		t.Errorf("en = %q", got)
	}
	if got := date("en", at, time.UTC); got != "30 November 2026" {
		t.Errorf("UTC = %q", got)
	}
}

// Every English key has a French translation and the other way round, so
// a French page never falls back to English.
func TestTranslationsComplete(t *testing.T) {
	t.Parallel()
	for k := range en {
		if _, ok := fr[k]; !ok {
			t.Errorf("no French for %q", k)
		}
	}
	for k := range fr {
		if _, ok := en[k]; !ok {
			t.Errorf("no English for %q", k)
		}
	}
}

func TestThrottle(t *testing.T) {
	t.Parallel()
	th := newThrottle(3, time.Minute)
	t0 := time.Date(2026, 11, 16, 10, 0, 0, 0, time.UTC)
	for i := range 3 {
		if th.blocked("k", t0) {
			t.Fatalf("blocked after %d failures", i)
		}
		th.fail("k", t0.Add(time.Duration(i)*time.Second))
	}
	if !th.blocked("k", t0.Add(10*time.Second)) || th.blocked("other", t0) {
		t.Fatal("3 failures do not block k, or block another key")
	}
	if th.blocked("k", t0.Add(time.Minute+time.Second)) {
		t.Fatal("still blocked once the first failure left the window")
	}
	th.fail("k", t0)
	th.reset("k")
	if th.blocked("k", t0) {
		t.Fatal("reset kept the failures")
	}
}
