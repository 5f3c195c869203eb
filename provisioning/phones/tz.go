package phones

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// zone is what templates need to know about a device's time zone. Phones
// have no IANA database, each vendor wants the zone in its own shape, so all
// shapes are precomputed here once.
type zone struct {
	Name   string // IANA name, e.g. Europe/Paris
	Offset int    // standard (winter) offset east of UTC, seconds
	DST    bool   // the zone observes daylight saving time
	// POSIX is the TZ rule string (CET-1CEST,M3.5.0,M10.5.0/3) understood by
	// Grandstream and other Linux-based firmwares; without DST rules when
	// they could not be derived.
	POSIX string
}

// Hours is the standard offset as Yealink writes it: +1, -3, +5:30.
func (z zone) Hours() string {
	sign := "+"
	o := z.Offset
	if o < 0 {
		sign, o = "-", -o
	}
	h, m := o/3600, o%3600/60
	if m == 0 {
		return sign + strconv.Itoa(h)
	}
	return fmt.Sprintf("%s%d:%02d", sign, h, m)
}

// GMT is the standard offset as Cisco writes it: GMT+01:00.
func (z zone) GMT() string {
	sign := "+"
	o := z.Offset
	if o < 0 {
		sign, o = "-", -o
	}
	return fmt.Sprintf("GMT%s%02d:%02d", sign, o/3600, o%3600/60)
}

// loadZone resolves an IANA name. The reference year anchors the DST rule
// derivation; the rules of the current year are the ones phones need.
func loadZone(name string, now time.Time) (zone, error) {
	if name == "" {
		name = "UTC"
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return zone{}, fmt.Errorf("time zone %q: %w", name, err)
	}
	year := now.In(loc).Year()
	jan := time.Date(year, time.January, 1, 12, 0, 0, 0, loc)
	jul := time.Date(year, time.July, 1, 12, 0, 0, 0, loc)
	janName, janOff := jan.Zone()
	julName, julOff := jul.Zone()
	z := zone{Name: name, Offset: min(janOff, julOff), DST: janOff != julOff}
	stdName, dstName := janName, julName
	if julOff < janOff { // southern hemisphere: winter is in July
		stdName, dstName = julName, janName
	}
	z.POSIX = posixName(stdName, z.Offset) + posixOffset(z.Offset)
	if z.DST {
		start, end, ok := dstRules(loc, year)
		if ok {
			dstOff := max(janOff, julOff)
			z.POSIX += posixName(dstName, dstOff)
			if dstOff-z.Offset != 3600 {
				z.POSIX += posixOffset(dstOff)
			}
			z.POSIX += "," + start + "," + end
		}
	}
	return z, nil
}

// posixName quotes an abbreviation unless it is plain letters, as POSIX
// requires for numeric ones such as "+03".
func posixName(abbr string, off int) string {
	plain := len(abbr) >= 3
	for _, r := range abbr {
		if r < 'A' || r > 'Z' && r < 'a' || r > 'z' {
			plain = false
		}
	}
	if plain {
		return abbr
	}
	h := strings.TrimPrefix(zone{Offset: off}.GMT(), "GMT")
	return "<" + strings.ReplaceAll(strings.TrimSuffix(h, ":00"), ":", "") + ">"
}

// posixOffset is the POSIX offset: hours west of UTC, so the sign is
// inverted.
func posixOffset(off int) string {
	west := -off
	sign := ""
	if west < 0 {
		sign, west = "-", -west
	}
	s := sign + strconv.Itoa(west/3600)
	if m := west % 3600 / 60; m != 0 {
		s += fmt.Sprintf(":%02d", m)
	}
	return s
}

// dstRules finds the year's two offset changes and expresses each as a
// POSIX Mm.w.d/time rule. It gives up (ok false) for zones whose
// transitions do not look like a yearly rule.
func dstRules(loc *time.Location, year int) (start, end string, ok bool) {
	from := time.Date(year, time.January, 1, 0, 0, 0, 0, loc)
	_, janOff := from.Zone()
	var changes []time.Time
	prevOff := janOff
	// Step a day at a time, then bisect to the minute: cheap, and exact for
	// every zone (changes happen on whole minutes).
	for t := from; t.Year() == year && len(changes) < 3; t = t.Add(24 * time.Hour) {
		if _, off := t.Zone(); off != prevOff {
			lo, hi := t.Add(-24*time.Hour), t // offset prevOff at lo, off at hi
			for hi.Sub(lo) > time.Minute {
				mid := lo.Add(hi.Sub(lo) / 2).Truncate(time.Minute)
				if !mid.After(lo) {
					break
				}
				if _, o := mid.Zone(); o == prevOff {
					lo = mid
				} else {
					hi = mid
				}
			}
			changes = append(changes, hi)
			prevOff = off
		}
	}
	if len(changes) != 2 {
		return "", "", false
	}
	rule := func(c time.Time, before int) string {
		// Local wall-clock time of the change, in the offset before it.
		local := c.UTC().Add(time.Duration(before) * time.Second)
		week := (local.Day()-1)/7 + 1
		if local.Day()+7 > daysIn(local.Month(), local.Year()) {
			week = 5 // "last" weekday of the month
		}
		r := fmt.Sprintf("M%d.%d.%d", int(local.Month()), week, int(local.Weekday()))
		secs := local.Hour()*3600 + local.Minute()*60
		if secs != 7200 {
			r += "/" + strconv.Itoa(secs/3600)
			if m := secs % 3600 / 60; m != 0 {
				r += fmt.Sprintf(":%02d", m)
			}
		}
		return r
	}
	_, off0 := changes[0].Add(-time.Minute).Zone()
	_, off1 := changes[1].Add(-time.Minute).Zone()
	first, second := rule(changes[0], off0), rule(changes[1], off1)
	_, afterFirst := changes[0].Zone()
	if afterFirst > off0 { // first change of the year starts DST
		return first, second, true
	}
	return second, first, true // southern hemisphere
}

func daysIn(m time.Month, year int) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
