package phones

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// zone is what templates need to know about a device's time zone. Phones
// have no IANA database: each vendor wants the zone's offset and daylight
// saving rule in its own shape, so they are derived here, once per request,
// from the rules Go's time package holds for the zone.
type zone struct {
	Name   string // IANA name, e.g. Europe/Paris
	Offset int    // standard (winter) offset east of UTC, seconds
	// DST reports that the zone observes daylight saving time with a yearly
	// rule (the nth or last weekday of a month) that phones can repeat.
	// Zones whose changes follow no such rule are served their standard
	// offset only.
	DST       bool
	DSTOffset int        // offset east of UTC during DST, seconds; Offset when !DST
	Start     transition // when DST starts; zero when !DST
	End       transition // when DST ends; zero when !DST
	// POSIX is the TZ rule string (CET-1CEST,M3.5.0,M10.5.0/3) that
	// Grandstream and other Linux-based firmwares read.
	POSIX string
	// Snom is the Snom firmware's code (FRA+1) of a zone with the same
	// offset and rule, or "" when Snom has none.
	Snom string
}

// transition is one yearly DST change: the week'th weekday of month, at
// the wall-clock time in effect just before the change. That is how every
// vendor here words it (POSIX, Yealink, Polycom, Cisco).
type transition struct {
	Month   int          // 1..12
	Week    int          // 1..4, or 5 for the last one in the month
	Weekday time.Weekday // Sunday = 0
	Hour    int
	Minute  int
}

// Hours is the standard offset as Yealink writes it: +1, -3, +5:30.
func (z zone) Hours() string {
	sign, o := "+", z.Offset
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
	sign, o := "+", z.Offset
	if o < 0 {
		sign, o = "-", -o
	}
	return fmt.Sprintf("GMT%s%02d:%02d", sign, o/3600, o%3600/60)
}

// SaveMinutes is how far clocks go forward in DST (Yealink offset_time).
func (z zone) SaveMinutes() int { return (z.DSTOffset - z.Offset) / 60 }

// CiscoRule is the Daylight_Saving_Time_Rule of Cisco SPA and MPP firmware:
// start=3/-1/7/2;end=10/-1/7/3;save=1.
func (z zone) CiscoRule() string {
	if !z.DST {
		return ""
	}
	save := strconv.Itoa(z.SaveMinutes() / 60)
	if m := z.SaveMinutes() % 60; m != 0 {
		save += fmt.Sprintf(":%02d", m)
	}
	return "start=" + z.Start.Cisco() + ";end=" + z.End.Cisco() + ";save=" + save
}

// Cisco writes t as month/day/weekday/HH[:mm]: day 1, 8, 15, 22 means the
// weekday on or after that date, -1 the last one in the month; weekday
// 1 = Monday … 7 = Sunday.
func (t transition) Cisco() string {
	day := "-1"
	if t.Week < 5 {
		day = strconv.Itoa((t.Week-1)*7 + 1)
	}
	return fmt.Sprintf("%d/%s/%d/%s", t.Month, day, isoWeekday(t.Weekday), t.clock())
}

// Yealink writes t as month/week/weekday/hour (DST by week): week 5 is the
// last, weekday 1 = Monday … 7 = Sunday. Yealink takes whole hours only.
func (t transition) Yealink() string {
	return fmt.Sprintf("%d/%d/%d/%d", t.Month, t.Week, isoWeekday(t.Weekday), t.Hour)
}

// PolycomDate is Polycom's start.date / stop.date with fixedDayEnable 0:
// 1, 8, 15 or 22 for the first to fourth weekday; ignored when Last.
func (t transition) PolycomDate() int { return (min(t.Week, 4)-1)*7 + 1 }

// PolycomDayOfWeek counts 1 = Sunday … 7 = Saturday.
func (t transition) PolycomDayOfWeek() int { return int(t.Weekday) + 1 }

// Last reports a "last weekday of the month" rule.
func (t transition) Last() bool { return t.Week == 5 }

// posix is the Mm.w.d[/time] form; POSIX's default time is 02:00.
func (t transition) posix() string {
	r := fmt.Sprintf("M%d.%d.%d", t.Month, t.Week, int(t.Weekday))
	if t.Hour != 2 || t.Minute != 0 {
		r += "/" + t.clock()
	}
	return r
}

func (t transition) clock() string {
	if t.Minute != 0 {
		return fmt.Sprintf("%d:%02d", t.Hour, t.Minute)
	}
	return strconv.Itoa(t.Hour)
}

// isoWeekday numbers Monday 1 … Sunday 7.
func isoWeekday(d time.Weekday) int {
	if d == time.Sunday {
		return 7
	}
	return int(d)
}

// zoneCache holds what deriving zones costs to repeat: per year, the rule
// signature of every Snom code's zone (some fifty LoadLocation calls). Each
// Renderer has its own, so two daemons in one process share nothing. The
// zero value is ready for use.
type zoneCache struct {
	snomRules sync.Map // int (year) → map[zoneRule]string
}

// loadZone resolves an IANA name; empty means UTC. The rules derived are
// those of now's year in the zone, the ones phones need until their next
// fetch.
func (c *zoneCache) loadZone(name string, now time.Time) (zone, error) {
	if name == "" {
		name = "UTC"
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return zone{}, fmt.Errorf("time zone %q: %w", name, err)
	}
	year := now.In(loc).Year()
	z, stdName, dstName := deriveZone(loc, year)
	z.Name = name
	z.POSIX = posixName(stdName, z.Offset) + posixOffset(z.Offset)
	if z.DST {
		z.POSIX += posixName(dstName, z.DSTOffset)
		if z.SaveMinutes() != 60 {
			z.POSIX += posixOffset(z.DSTOffset)
		}
		z.POSIX += "," + z.Start.posix() + "," + z.End.posix()
	}
	z.Snom = c.snomCode(z, year)
	return z, nil
}

// deriveZone reads loc's offsets and DST changes in year, with the
// abbreviations of its standard and daylight time.
func deriveZone(loc *time.Location, year int) (z zone, stdName, dstName string) {
	jan := time.Date(year, time.January, 1, 12, 0, 0, 0, loc)
	jul := time.Date(year, time.July, 1, 12, 0, 0, 0, loc)
	janName, janOff := jan.Zone()
	julName, julOff := jul.Zone()
	z = zone{Offset: min(janOff, julOff), DSTOffset: min(janOff, julOff)}
	stdName, dstName = janName, julName
	if julOff < janOff { // southern hemisphere: winter is in July
		stdName, dstName = julName, janName
	}
	if janOff == julOff {
		return z, stdName, ""
	}
	if start, end, ok := dstRules(loc, year); ok {
		z.DST, z.DSTOffset, z.Start, z.End = true, max(janOff, julOff), start, end
	}
	return z, stdName, dstName
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
// yearly rule. It gives up (ok false) for zones whose changes do not look
// like one, such as a third change in the year.
func dstRules(loc *time.Location, year int) (start, end transition, ok bool) {
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
		return start, end, false
	}
	rule := func(c time.Time) transition {
		// Local wall-clock time of the change, in the offset before it.
		_, before := c.Add(-time.Minute).Zone()
		local := c.UTC().Add(time.Duration(before) * time.Second)
		week := (local.Day()-1)/7 + 1
		if local.Day()+7 > daysIn(local.Month(), local.Year()) {
			week = 5 // the last such weekday of the month
		}
		return transition{Month: int(local.Month()), Week: week, Weekday: local.Weekday(),
			Hour: local.Hour(), Minute: local.Minute()}
	}
	first, second := rule(changes[0]), rule(changes[1])
	_, before := changes[0].Add(-time.Minute).Zone()
	if _, after := changes[0].Zone(); after > before { // the first change of the year starts DST
		return first, second, true
	}
	return second, first, true // southern hemisphere
}

func daysIn(m time.Month, year int) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// snomZones lists Snom's time zone codes, each with a zone that follows the
// rules the code stands for, in the order codes are preferred when several
// fit. Source: the "timezone" setting's value list of Snom firmware
// (service.snom.com/display/wiki/timezone); codes whose region no longer
// follows a single IANA zone are left out.
var snomZones = []struct{ code, zone string }{
	{"USA-9", "America/Anchorage"}, {"USA-8", "America/Los_Angeles"}, {"CAN-8", "America/Vancouver"},
	{"MEX-8", "America/Tijuana"}, {"USA-7", "America/Denver"}, {"CAN-7", "America/Edmonton"},
	{"USA2-7", "America/Phoenix"}, {"USA-6", "America/Chicago"}, {"CAN-6", "America/Winnipeg"},
	{"MEX-6", "America/Mexico_City"}, {"USA-5", "America/New_York"}, {"CAN-5", "America/Toronto"},
	{"BHS-5", "America/Nassau"}, {"COL-5", "America/Bogota"}, {"CUB-5", "America/Havana"},
	{"CAN-4", "America/Halifax"}, {"CHL-4", "America/Santiago"}, {"PRY-4", "America/Asuncion"},
	{"BMU-4", "Atlantic/Bermuda"}, {"TTB-4", "America/Port_of_Spain"}, {"CAN-3.5", "America/St_Johns"},
	{"ARG-3", "America/Argentina/Buenos_Aires"}, {"BRA2-3", "America/Sao_Paulo"}, {"BRA-2", "America/Noronha"},
	{"PRT-1", "Atlantic/Azores"}, {"GBR-0", "Europe/London"}, {"IRL-0", "Europe/Dublin"},
	{"PRT-0", "Europe/Lisbon"}, {"ESP-0", "Atlantic/Canary"}, {"FRO-0", "Atlantic/Faroe"},
	{"GER+1", "Europe/Berlin"}, {"FRA+1", "Europe/Paris"}, {"AUT+1", "Europe/Vienna"},
	{"BEL+1", "Europe/Brussels"}, {"HRV+1", "Europe/Zagreb"}, {"CZE+1", "Europe/Prague"},
	{"DNK+1", "Europe/Copenhagen"}, {"HUN+1", "Europe/Budapest"}, {"ITA+1", "Europe/Rome"},
	{"LUX+1", "Europe/Luxembourg"}, {"MAK+1", "Europe/Skopje"}, {"NLD+1", "Europe/Amsterdam"},
	{"NOR+1", "Europe/Oslo"}, {"POL+1", "Europe/Warsaw"}, {"SVK+1", "Europe/Bratislava"},
	{"ESP+1", "Europe/Madrid"}, {"SWE+1", "Europe/Stockholm"}, {"CHE+1", "Europe/Zurich"},
	{"GIB+1", "Europe/Gibraltar"}, {"YUG+1", "Europe/Belgrade"}, {"ALB+1", "Europe/Tirane"},
	{"WAT+1", "Africa/Lagos"}, {"BGR+2", "Europe/Sofia"}, {"CYP+2", "Asia/Nicosia"},
	{"CAT+2", "Africa/Maputo"}, {"EGY+2", "Africa/Cairo"}, {"EST+2", "Europe/Tallinn"},
	{"FIN+2", "Europe/Helsinki"}, {"GRC+2", "Europe/Athens"}, {"ISR+2", "Asia/Jerusalem"},
	{"LVA+2", "Europe/Riga"}, {"LTU+2", "Europe/Vilnius"}, {"LBN+2", "Asia/Beirut"},
	{"MDA+2", "Europe/Chisinau"}, {"RUS+2", "Europe/Kaliningrad"}, {"ROU+2", "Europe/Bucharest"},
	{"UKR+2", "Europe/Kyiv"}, {"EAT+3", "Africa/Nairobi"}, {"IRQ+3", "Asia/Baghdad"},
	{"RUS+3", "Europe/Moscow"}, {"TUR+3", "Europe/Istanbul"}, {"IRN+3.5", "Asia/Tehran"},
	{"ARM+4", "Asia/Yerevan"}, {"AZE+4", "Asia/Baku"}, {"GEO+4", "Asia/Tbilisi"},
	{"UAE+4", "Asia/Dubai"}, {"PAK+5", "Asia/Karachi"}, {"IND+5.5", "Asia/Kolkata"},
	{"THA+7", "Asia/Bangkok"}, {"CHN+8", "Asia/Shanghai"}, {"SGP+8", "Asia/Singapore"},
	{"AUS+8", "Australia/Perth"}, {"KOR+9", "Asia/Seoul"}, {"JPN+9", "Asia/Tokyo"},
	{"AUS+9.5", "Australia/Adelaide"}, {"AUS2+9.5", "Australia/Darwin"}, {"AUS+10", "Australia/Sydney"},
	{"AUS2+10", "Australia/Brisbane"}, {"AUS3+10", "Australia/Hobart"}, {"RUS+10", "Asia/Vladivostok"},
	{"NCL+11", "Pacific/Noumea"}, {"NZL+12", "Pacific/Auckland"}, {"TON+13", "Pacific/Tongatapu"},
}

// zoneRule is what makes two zones show the same local time all year.
type zoneRule struct {
	offset, dstOffset int
	dst               bool
	start, end        transition
}

func (z zone) rule() zoneRule { return zoneRule{z.Offset, z.DSTOffset, z.DST, z.Start, z.End} }

// snomCode picks the Snom code of z's own zone if Snom lists it, else the
// first code whose zone has z's offsets and rules this year.
func (c *zoneCache) snomCode(z zone, year int) string {
	for _, s := range snomZones {
		if s.zone == z.Name {
			return s.code
		}
	}
	m, ok := c.snomRules.Load(year)
	if !ok {
		rules := make(map[zoneRule]string, len(snomZones))
		for i := len(snomZones) - 1; i >= 0; i-- { // earlier entries win
			loc, err := time.LoadLocation(snomZones[i].zone)
			if err != nil {
				continue // an old zoneinfo lacks it
			}
			r, _, _ := deriveZone(loc, year)
			rules[r.rule()] = snomZones[i].code
		}
		m, _ = c.snomRules.LoadOrStore(year, rules)
	}
	return m.(map[zoneRule]string)[z.rule()]
}
