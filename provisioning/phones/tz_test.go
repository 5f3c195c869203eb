package phones

import (
	"fmt"
	"testing"
	"time"
	_ "time/tzdata" // tests must not depend on the host's zoneinfo
)

func TestLoadZone(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 16, 10, 0, 0, 0, time.UTC)
	var zones zoneCache
	for _, tc := range []struct {
		name, posix, hours, gmt, snom string
		offset, dstOffset             int
		dst                           bool
	}{
		{"", "UTC0", "+0", "GMT+00:00", "", 0, 0, false},
		{"Europe/Paris", "CET-1CEST,M3.5.0,M10.5.0/3", "+1", "GMT+01:00", "FRA+1", 3600, 7200, true},
		{"America/New_York", "EST5EDT,M3.2.0,M11.1.0", "-5", "GMT-05:00", "USA-5", -18000, -14400, true},
		{"Australia/Sydney", "AEST-10AEDT,M10.1.0,M4.1.0/3", "+10", "GMT+10:00", "AUS+10", 36000, 39600, true},
		{"Asia/Kolkata", "IST-5:30", "+5:30", "GMT+05:30", "IND+5.5", 19800, 19800, false},
		{"America/Sao_Paulo", "<-03>3", "-3", "GMT-03:00", "BRA2-3", -10800, -10800, false},
		// Not in Snom's list: the code of a zone with the same rules.
		{"Europe/Ljubljana", "CET-1CEST,M3.5.0,M10.5.0/3", "+1", "GMT+01:00", "GER+1", 3600, 7200, true},
		// Half-hour DST (Lord Howe): no Snom code has it.
		{"Australia/Lord_Howe", "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", "+10:30", "GMT+10:30", "", 37800, 39600, true},
	} {
		z, err := zones.loadZone(tc.name, now)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if z.POSIX != tc.posix || z.Hours() != tc.hours || z.GMT() != tc.gmt || z.Offset != tc.offset ||
			z.DSTOffset != tc.dstOffset || z.DST != tc.dst || z.Snom != tc.snom {
			t.Errorf("%s: got %+v hours %s gmt %s; want %s %s %s %s %d %d %v",
				tc.name, z, z.Hours(), z.GMT(), tc.posix, tc.hours, tc.gmt, tc.snom, tc.offset, tc.dstOffset, tc.dst)
		}
	}
	if _, err := zones.loadZone("Mars/Olympus", now); err == nil {
		t.Error("unknown zone accepted")
	}
}

// TestZoneVendorForms checks each vendor's DST representation against the
// formats their documents give (see the template comments).
func TestZoneVendorForms(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 16, 10, 0, 0, 0, time.UTC)
	type polycom struct{ month, date, dow, last, hour int }
	var zones zoneCache
	for _, tc := range []struct {
		name                   string
		yealinkStart, yealinkE string
		save                   int
		cisco                  string
		pStart, pStop          polycom
	}{
		{"Europe/Paris", "3/5/7/2", "10/5/7/3", 60, "start=3/-1/7/2;end=10/-1/7/3;save=1",
			polycom{3, 22, 1, 1, 2}, polycom{10, 22, 1, 1, 3}},
		{"America/New_York", "3/2/7/2", "11/1/7/2", 60, "start=3/8/7/2;end=11/1/7/2;save=1",
			polycom{3, 8, 1, 0, 2}, polycom{11, 1, 1, 0, 2}},
		{"Australia/Sydney", "10/1/7/2", "4/1/7/3", 60, "start=10/1/7/2;end=4/1/7/3;save=1",
			polycom{10, 1, 1, 0, 2}, polycom{4, 1, 1, 0, 3}},
		{"Asia/Kolkata", "", "", 0, "", polycom{}, polycom{}},
		{"Australia/Lord_Howe", "10/1/7/2", "4/1/7/2", 30, "start=10/1/7/2;end=4/1/7/2;save=0:30",
			polycom{10, 1, 1, 0, 2}, polycom{4, 1, 1, 0, 2}},
	} {
		z, err := zones.loadZone(tc.name, now)
		if err != nil {
			t.Fatal(err)
		}
		if !z.DST {
			if tc.cisco != "" || z.CiscoRule() != "" || z.SaveMinutes() != 0 {
				t.Errorf("%s: no DST expected, got %+v rule %q", tc.name, z, z.CiscoRule())
			}
			continue
		}
		pol := func(tr transition) polycom {
			last := 0
			if tr.Last() {
				last = 1
			}
			return polycom{tr.Month, tr.PolycomDate(), tr.PolycomDayOfWeek(), last, tr.Hour}
		}
		if z.Start.Yealink() != tc.yealinkStart || z.End.Yealink() != tc.yealinkE || z.SaveMinutes() != tc.save ||
			z.CiscoRule() != tc.cisco || pol(z.Start) != tc.pStart || pol(z.End) != tc.pStop {
			t.Errorf("%s: yealink %s %s save %d, cisco %s, polycom %+v %+v", tc.name, z.Start.Yealink(),
				z.End.Yealink(), z.SaveMinutes(), z.CiscoRule(), pol(z.Start), pol(z.End))
		}
	}
}

// The derived rules must reproduce the zone's real changes in other years
// too: a phone keeps the rule until its next fetch, possibly a year later.
func TestZoneRulesMatchTransitions(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"Europe/Paris", "America/New_York", "Australia/Sydney", "Europe/London",
		"America/Chicago", "Pacific/Auckland", "Europe/Helsinki", "America/Halifax"} {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		var zones zoneCache
		z, err := zones.loadZone(name, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
		if err != nil || !z.DST {
			t.Fatalf("%s: %+v %v", name, z, err)
		}
		for year := 2026; year <= 2030; year++ {
			for _, tr := range []struct {
				t             transition
				before, after int
				what          string
			}{{z.Start, z.Offset, z.DSTOffset, "start"}, {z.End, z.DSTOffset, z.Offset, "end"}} {
				local := tr.t.date(year)
				// The instant the rule names, read in the offset before it.
				instant := local.Add(-time.Duration(tr.before) * time.Second)
				_, got1 := instant.Add(-time.Second).In(loc).Zone()
				_, got2 := instant.In(loc).Zone()
				if got1 != tr.before || got2 != tr.after {
					t.Errorf("%s %d %s %s: offsets around %v are %d → %d, want %d → %d",
						name, year, tr.what, fmt.Sprint(tr.t), instant, got1, got2, tr.before, tr.after)
				}
			}
		}
	}
}

// date is the rule's wall-clock time in year, as a UTC-labelled time.
func (t transition) date(year int) time.Time {
	first := time.Date(year, time.Month(t.Month), 1, t.Hour, t.Minute, 0, 0, time.UTC)
	d := first.AddDate(0, 0, (int(t.Weekday)-int(first.Weekday())+7)%7)
	if t.Week < 5 {
		return d.AddDate(0, 0, 7*(t.Week-1))
	}
	for d.AddDate(0, 0, 7).Month() == first.Month() {
		d = d.AddDate(0, 0, 7)
	}
	return d
}

func BenchmarkLoadZone(b *testing.B) {
	now := time.Date(2026, 11, 16, 10, 0, 0, 0, time.UTC)
	var zones zoneCache
	for b.Loop() {
		if _, err := zones.loadZone("Europe/Ljubljana", now); err != nil {
			b.Fatal(err)
		}
	}
}

// Each renderer caches Snom's rules for itself: two daemons in one process
// share nothing, and a renderer's template reloads keep its cache.
func TestZoneCachePerRenderer(t *testing.T) {
	t.Parallel()
	cached := func(r *Renderer) bool {
		_, ok := r.zones.snomRules.Load(testNow.Year())
		return ok
	}
	r1, r2 := newTestRenderer(t, testSettings()), newTestRenderer(t, testSettings())
	if r1.cur.Load().zones != &r1.zones || r2.cur.Load().zones != &r2.zones {
		t.Fatal("a template set does not use its renderer's zone cache")
	}
	if cached(r1) || cached(r2) { // the dry runs' zones are in Snom's list
		t.Fatal("a new renderer has Snom's rules cached")
	}
	dev := testDevice(Snom)
	dev.TimeZone = "Europe/Ljubljana" // not in Snom's list: its rules are looked up
	if _, err := r1.Render(File{Kind: KindSnom, MAC: dev.MAC}, dev); err != nil {
		t.Fatal(err)
	}
	if !cached(r1) || cached(r2) {
		t.Errorf("after r1 rendered: r1 cached %v, r2 cached %v; want true, false", cached(r1), cached(r2))
	}
	if err := r1.Reload(); err != nil {
		t.Fatal(err)
	}
	if !cached(r1) {
		t.Error("reload dropped the renderer's zone cache")
	}
}
