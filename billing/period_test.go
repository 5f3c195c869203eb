package billing

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

func d(s string) Date {
	x, err := ParseDate(s)
	if err != nil {
		panic(err)
	}
	return x
}

func TestDateArithmetic(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		from       string
		days       int
		want       string
		monthsFrom string
		months     int
		wantMonth  string
	}{
		{"2026-11-16", 15, "2026-12-01", "2026-11-01", 1, "2026-12-01"},
		{"2028-02-28", 1, "2028-02-29", "2026-03-01", 12, "2027-03-01"},
		{"2027-02-28", 1, "2027-03-01", "2026-12-01", 1, "2027-01-01"},
		{"2026-01-01", -1, "2025-12-31", "2026-01-01", -1, "2025-12-01"},
		{"2000-02-28", 1, "2000-02-29", "2026-01-01", -13, "2024-12-01"},
		{"1900-02-28", 1, "1900-03-01", "2026-05-01", 24, "2028-05-01"},
		{"2026-03-29", 365, "2027-03-29", "2026-12-01", 12, "2027-12-01"},
	} {
		if got := d(tc.from).AddDays(tc.days); got != d(tc.want) {
			t.Errorf("%s.AddDays(%d) = %v, want %s", tc.from, tc.days, got, tc.want)
		}
		if got := d(tc.want).DaysUntil(d(tc.from)); got != -tc.days {
			t.Errorf("%s.DaysUntil(%s) = %d, want %d", tc.want, tc.from, got, -tc.days)
		}
		if got := d(tc.monthsFrom).AddMonths(tc.months); got != d(tc.wantMonth) {
			t.Errorf("%s.AddMonths(%d) = %v, want %s", tc.monthsFrom, tc.months, got, tc.wantMonth)
		}
	}
	if got := NewDate(2026, 13, 32); got != d("2027-02-01") {
		t.Errorf("NewDate(2026, 13, 32) = %v", got)
	}
	if got := NewDate(2026, 0, 0); got != d("2025-11-30") {
		t.Errorf("NewDate(2026, 0, 0) = %v", got)
	}
}

// TestDateMatchesTime checks the civil-day arithmetic against package time.
func TestDateMatchesTime(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	base := time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)
	for range 20000 {
		n := r.IntN(400 * 366 * 2)
		k := r.IntN(2000) - 1000
		tm := base.AddDate(0, 0, n)
		dd := DateOf(tm, time.UTC)
		want := DateOf(tm.AddDate(0, 0, k), time.UTC)
		if got := dd.AddDays(k); got != want {
			t.Fatalf("%v.AddDays(%d) = %v, want %v", dd, k, got, want)
		}
		if got := dd.DaysUntil(want); got != k {
			t.Fatalf("%v.DaysUntil(%v) = %d, want %d", dd, want, got, k)
		}
		if got := dd.Compare(want); got != cmpInt(0, k) {
			t.Fatalf("%v.Compare(%v) = %d", dd, want, got)
		}
	}
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestParseDate(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"2026-02-29", "2026-13-01", "2026-1-01", "26-01-01", "", "2026-01-01T00:00:00Z"} {
		if _, err := ParseDate(s); !errors.Is(err, ErrInvalidDate) {
			t.Errorf("ParseDate(%q) err = %v, want ErrInvalidDate", s, err)
		}
	}
	var x Date
	if err := x.UnmarshalText([]byte("2028-02-29")); err != nil || x != (Date{2028, time.February, 29}) {
		t.Errorf("UnmarshalText = %v, %v", x, err)
	}
	if b, _ := x.MarshalText(); string(b) != "2028-02-29" {
		t.Errorf("MarshalText = %s", b)
	}
}

func TestParseCycle(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"monthly", "annual"} {
		if c, err := ParseCycle(s); err != nil || string(c) != s {
			t.Errorf("ParseCycle(%q) = %q, %v", s, c, err)
		}
	}
	for _, s := range []string{"", "Monthly", "yearly", "weekly"} {
		if _, err := ParseCycle(s); !errors.Is(err, ErrInvalidCycle) {
			t.Errorf("ParseCycle(%q) err = %v", s, err)
		}
	}
}

func TestPeriodDates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cycle             Cycle
		anchor, day       string
		wantStart, wantEn string
	}{
		{Monthly, "2026-11-16", "2026-11-16", "2026-11-01", "2026-12-01"},
		{Monthly, "2026-11-16", "2026-11-01", "2026-11-01", "2026-12-01"},
		{Monthly, "2026-11-16", "2026-11-30", "2026-11-01", "2026-12-01"},
		{Monthly, "2026-11-16", "2027-02-28", "2027-02-01", "2027-03-01"},
		{Monthly, "2026-11-16", "2026-10-31", "2026-10-01", "2026-11-01"},
		{Annual, "2026-03-15", "2026-11-16", "2026-03-01", "2027-03-01"},
		{Annual, "2026-03-15", "2027-02-28", "2026-03-01", "2027-03-01"},
		{Annual, "2026-03-15", "2027-03-01", "2027-03-01", "2028-03-01"},
		{Annual, "2026-03-15", "2030-07-04", "2030-03-01", "2031-03-01"},
		{Annual, "2026-03-15", "2026-02-28", "2025-03-01", "2026-03-01"},
		{Annual, "2026-01-31", "2026-12-31", "2026-01-01", "2027-01-01"},
	} {
		s, e := PeriodDates(tc.cycle, d(tc.anchor), d(tc.day))
		if s != d(tc.wantStart) || e != d(tc.wantEn) {
			t.Errorf("PeriodDates(%s, %s, %s) = [%v, %v), want [%s, %s)", tc.cycle, tc.anchor, tc.day, s, e, tc.wantStart, tc.wantEn)
		}
	}
}

func TestPeriodContainingTimeZone(t *testing.T) {
	t.Parallel()
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	anchor := time.Date(2026, 3, 10, 12, 0, 0, 0, paris)
	for _, tc := range []struct {
		name      string
		cycle     Cycle
		loc       *time.Location
		anchor, t time.Time
		start     time.Time
		end       time.Time
	}{
		{
			// 23:30 UTC on 30 November is already 1 December in Paris.
			"new month in Paris before UTC", Monthly, paris, anchor,
			time.Date(2026, 11, 30, 23, 30, 0, 0, time.UTC),
			time.Date(2026, 12, 1, 0, 0, 0, 0, paris), time.Date(2027, 1, 1, 0, 0, 0, 0, paris),
		},
		{
			"same instant in New York is still November", Monthly, ny, anchor,
			time.Date(2026, 11, 30, 23, 30, 0, 0, time.UTC),
			time.Date(2026, 11, 1, 0, 0, 0, 0, ny), time.Date(2026, 12, 1, 0, 0, 0, 0, ny),
		},
		{
			// The period spanning the DST change (29 March 2026) is 31 days
			// but 743 hours long; starts stay on local midnight.
			"DST month", Monthly, paris, anchor,
			time.Date(2026, 3, 29, 12, 0, 0, 0, paris),
			time.Date(2026, 3, 1, 0, 0, 0, 0, paris), time.Date(2026, 4, 1, 0, 0, 0, 0, paris),
		},
		{
			"annual from the anchor's month", Annual, paris, anchor,
			time.Date(2027, 2, 28, 23, 59, 59, 0, paris),
			time.Date(2026, 3, 1, 0, 0, 0, 0, paris), time.Date(2027, 3, 1, 0, 0, 0, 0, paris),
		},
		{
			"annual boundary is local midnight", Annual, paris, anchor,
			time.Date(2027, 2, 28, 23, 0, 0, 0, time.UTC),
			time.Date(2027, 3, 1, 0, 0, 0, 0, paris), time.Date(2028, 3, 1, 0, 0, 0, 0, paris),
		},
	} {
		s, e := PeriodContaining(tc.cycle, tc.anchor, tc.t, tc.loc)
		if !s.Equal(tc.start) || !e.Equal(tc.end) {
			t.Errorf("%s: PeriodContaining = [%v, %v), want [%v, %v)", tc.name, s, e, tc.start, tc.end)
		}
		if tc.t.Before(s) || !tc.t.Before(e) {
			t.Errorf("%s: %v not in [%v, %v)", tc.name, tc.t, s, e)
		}
	}
}

func TestNextPeriod(t *testing.T) {
	t.Parallel()
	paris, _ := time.LoadLocation("Europe/Paris")
	for _, tc := range []struct {
		cycle       Cycle
		start       time.Time
		next, after time.Time
	}{
		{Monthly, time.Date(2026, 11, 1, 0, 0, 0, 0, paris), time.Date(2026, 12, 1, 0, 0, 0, 0, paris), time.Date(2027, 1, 1, 0, 0, 0, 0, paris)},
		{Monthly, time.Date(2026, 12, 1, 0, 0, 0, 0, paris), time.Date(2027, 1, 1, 0, 0, 0, 0, paris), time.Date(2027, 2, 1, 0, 0, 0, 0, paris)},
		{Annual, time.Date(2026, 3, 1, 0, 0, 0, 0, paris), time.Date(2027, 3, 1, 0, 0, 0, 0, paris), time.Date(2028, 3, 1, 0, 0, 0, 0, paris)},
	} {
		s, e := NextPeriod(tc.cycle, tc.start, paris)
		if !s.Equal(tc.next) || !e.Equal(tc.after) {
			t.Errorf("NextPeriod(%s, %v) = [%v, %v), want [%v, %v)", tc.cycle, tc.start, s, e, tc.next, tc.after)
		}
		// The next period is the one containing its own start.
		ps, pe := PeriodContaining(tc.cycle, tc.start, s, paris)
		if !ps.Equal(s) || !pe.Equal(e) {
			t.Errorf("PeriodContaining(next start) = [%v, %v), want [%v, %v)", ps, pe, s, e)
		}
	}
}

func TestInvalidCyclePanics(t *testing.T) {
	t.Parallel()
	defer func() {
		if r := recover(); r == nil {
			t.Error("PeriodDates with an invalid cycle did not panic")
		}
	}()
	PeriodDates("weekly", d("2026-01-01"), d("2026-01-02"))
}
