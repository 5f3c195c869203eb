package billing

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalidDate means a string is not a valid YYYY-MM-DD calendar date.
var ErrInvalidDate = errors.New("billing: invalid date")

// Date is a civil calendar day with no time zone. Proration counts days, and
// a day only exists relative to the account's time zone: convert an instant
// with DateOf(t, loc) once, then do all day arithmetic on Dates, which cannot
// be skewed by DST or by the server's zone.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// NewDate returns the normalised date (like time.Date: 2026-13-01 is 2027-01-01).
func NewDate(year int, month time.Month, day int) Date {
	return Date{Year: year, Month: time.January, Day: 1}.addMonths(int(month) - 1).AddDays(day - 1)
}

// DateOf returns the calendar day t falls on in loc: an order placed at
// 23:30 UTC on 15 November is on 16 November for a Paris account.
func DateOf(t time.Time, loc *time.Location) Date {
	y, m, d := t.In(loc).Date()
	return Date{Year: y, Month: m, Day: d}
}

// ParseDate parses the ISO 8601 form "2026-11-16" used by the API and vectors.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, fmt.Errorf("%w: %q", ErrInvalidDate, s)
	}
	return DateOf(t, time.UTC), nil
}

// String formats d as "2026-11-16".
func (d Date) String() string {
	return fmt.Sprintf("%04d-%02d-%02d", d.Year, int(d.Month), d.Day)
}

// MarshalText makes Date encode as "2026-11-16" in JSON.
func (d Date) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText is the inverse of MarshalText.
func (d *Date) UnmarshalText(b []byte) error {
	p, err := ParseDate(string(b))
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// IsZero reports whether d is the zero Date (no date set).
func (d Date) IsZero() bool { return d == Date{} }

// Start returns midnight at the start of d in loc: the instant a period
// beginning on d begins for that account.
func (d Date) Start(loc *time.Location) time.Time {
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, loc)
}

// AddDays returns d shifted by n days.
func (d Date) AddDays(n int) Date { return dateFromDays(d.days() + int64(n)) }

// AddMonths returns d shifted by n calendar months. The day must exist in the
// target month (true for the 1st, which is all periods use); otherwise it
// overflows as time.Date does.
func (d Date) AddMonths(n int) Date { return d.addMonths(n) }

func (d Date) addMonths(n int) Date {
	m := int(d.Month) - 1 + n
	y := d.Year + floorDiv(m, 12)
	m = m - floorDiv(m, 12)*12
	return dateFromDays(daysFromCivil(y, time.Month(m+1), 1) + int64(d.Day-1))
}

// DaysUntil returns the number of days from d to e (negative if e is before d).
func (d Date) DaysUntil(e Date) int { return int(e.days() - d.days()) }

// Compare returns −1, 0 or +1 as d is before, equal to or after e.
func (d Date) Compare(e Date) int {
	a, b := d.days(), e.days()
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Before reports whether d is before e.
func (d Date) Before(e Date) bool { return d.Compare(e) < 0 }

// After reports whether d is after e.
func (d Date) After(e Date) bool { return d.Compare(e) > 0 }

// days is the number of days since 1970-01-01 (proleptic Gregorian).
func (d Date) days() int64 { return daysFromCivil(d.Year, d.Month, d.Day) }

// daysFromCivil is Howard Hinnant's days_from_civil, valid for any year and
// tolerant of day overflow (it is linear in the day).
func daysFromCivil(year int, month time.Month, day int) int64 {
	y := int64(year)
	m := int64(month)
	if m <= 2 {
		y--
	}
	era := floorDiv64(y, 400)
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + int64(day) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

func dateFromDays(z int64) Date {
	z += 719468
	era := floorDiv64(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return Date{Year: int(y), Month: time.Month(m), Day: int(d)}
}

func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func floorDiv64(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
