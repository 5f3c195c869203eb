package billing

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalidCycle means a billing cycle name is not monthly, quarterly,
// semiannual or annual.
var ErrInvalidCycle = errors.New("billing: invalid billing cycle")

// Cycle is how often a subscription renews. Its string value is the API's
// "cycle" field.
type Cycle string

// The billing cycles pbxd offers. Periods are whole calendar months so that
// every customer's bill lines up on the 1st, whatever day they signed up.
const (
	// Monthly periods run from the 1st of a month to the 1st of the next.
	Monthly Cycle = "monthly"
	// Annual periods are twelve calendar months starting on the 1st of the
	// month the subscription began.
	Annual Cycle = "annual"
	// Quarterly and Semiannual periods are three and six calendar months,
	// anchored like Annual.
	Quarterly  Cycle = "quarterly"
	Semiannual Cycle = "semiannual"
)

// Cycles lists every cycle, shortest first.
var Cycles = []Cycle{Monthly, Quarterly, Semiannual, Annual}

// ParseCycle validates an API or catalog cycle name.
func ParseCycle(s string) (Cycle, error) {
	switch c := Cycle(s); c {
	case Monthly, Quarterly, Semiannual, Annual:
		return c, nil
	}
	return "", fmt.Errorf("%w: %q", ErrInvalidCycle, s)
}

// Months is the period length in calendar months, or 0 for an invalid cycle.
func (c Cycle) Months() int {
	switch c {
	case Monthly:
		return 1
	case Quarterly:
		return 3
	case Semiannual:
		return 6
	case Annual:
		return 12
	}
	return 0
}

func (c Cycle) mustMonths() int {
	n := c.Months()
	if n == 0 {
		panic(fmt.Errorf("%w: %q", ErrInvalidCycle, string(c)))
	}
	return n
}

// PeriodDates returns the period [start, end) of cycle c that contains day d,
// for a subscription whose first period began in anchor's month (anchor's day
// is ignored: periods always start on the 1st). Days before the anchor get the
// period they would have had, so the function is total. It panics on an
// invalid cycle, a programming error that ParseCycle keeps out of the API.
func PeriodDates(c Cycle, anchor, d Date) (start, end Date) {
	n := c.mustMonths()
	first := Date{Year: anchor.Year, Month: anchor.Month, Day: 1}
	offset := monthIndex(d) - monthIndex(first)
	start = first.AddMonths(floorDiv(offset, n) * n)
	return start, start.AddMonths(n)
}

// PeriodContaining returns the period [start, end) of cycle c containing the
// instant t, as instants at local midnight in the account's zone loc. anchor
// is the start of the subscription's first period (any instant in that local
// month works). Local days are taken in loc, never in the server's zone.
func PeriodContaining(c Cycle, anchor, t time.Time, loc *time.Location) (start, end time.Time) {
	s, e := PeriodDates(c, DateOf(anchor, loc), DateOf(t, loc))
	return s.Start(loc), e.Start(loc)
}

// NextPeriod returns the period that follows the one starting at start: what
// a renewal invoices in advance. start is the current period's start instant.
func NextPeriod(c Cycle, start time.Time, loc *time.Location) (nextStart, nextEnd time.Time) {
	n := c.mustMonths()
	d := DateOf(start, loc)
	s := Date{Year: d.Year, Month: d.Month, Day: 1}.AddMonths(n)
	return s.Start(loc), s.AddMonths(n).Start(loc)
}

func monthIndex(d Date) int { return d.Year*12 + int(d.Month) - 1 }
