// Package clock is the one notion of "now" in pbxd. Every time-dependent
// piece of code reads it, so a test clock can move the whole daemon through
// months of billing in seconds.
package clock

import (
	"errors"
	"sync"
	"time"
)

// Clock tells the time.
type Clock interface {
	Now() time.Time
}

// Real is the wall clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// ErrBackwards is returned when a test clock is asked to go back in time:
// billing periods and invoices already issued cannot be undone.
var ErrBackwards = errors.New("the test clock only moves forward")

// Test is a clock set by hand, for development and tests. It never advances
// on its own.
type Test struct {
	mu  sync.Mutex
	now time.Time
}

// NewTest returns a test clock starting at start.
func NewTest(start time.Time) *Test { return &Test{now: start} }

// Now returns the time last set.
func (c *Test) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t, which must not be before the current time.
func (c *Test) Set(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.Before(c.now) {
		return ErrBackwards
	}
	c.now = t
	return nil
}

// Advance moves the clock forward by d.
func (c *Test) Advance(d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d < 0 {
		return ErrBackwards
	}
	c.now = c.now.Add(d)
	return nil
}
