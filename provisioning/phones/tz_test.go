package phones

import (
	"testing"
	"time"
	_ "time/tzdata" // tests must not depend on the host's zoneinfo
)

func TestLoadZone(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 16, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, posix, hours, gmt string
		offset                  int
		dst                     bool
	}{
		{"", "UTC0", "+0", "GMT+00:00", 0, false},
		{"Europe/Paris", "CET-1CEST,M3.5.0,M10.5.0/3", "+1", "GMT+01:00", 3600, true},
		{"America/New_York", "EST5EDT,M3.2.0,M11.1.0", "-5", "GMT-05:00", -18000, true},
		{"Australia/Sydney", "AEST-10AEDT,M10.1.0,M4.1.0/3", "+10", "GMT+10:00", 36000, true},
		{"Asia/Kolkata", "IST-5:30", "+5:30", "GMT+05:30", 19800, false},
		{"America/Sao_Paulo", "<-03>3", "-3", "GMT-03:00", -10800, false},
	} {
		z, err := loadZone(tc.name, now)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if z.POSIX != tc.posix || z.Hours() != tc.hours || z.GMT() != tc.gmt || z.Offset != tc.offset || z.DST != tc.dst {
			t.Errorf("%s: got %+v hours %s gmt %s; want %s %s %s %d %v",
				tc.name, z, z.Hours(), z.GMT(), tc.posix, tc.hours, tc.gmt, tc.offset, tc.dst)
		}
	}
	if _, err := loadZone("Mars/Olympus", now); err == nil {
		t.Error("unknown zone accepted")
	}
}
