package billing

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalidSchedule means a dunning schedule is empty or not increasing.
var ErrInvalidSchedule = errors.New("billing: invalid dunning schedule")

// DunningSchedule lists when a failed payment is retried, each offset
// measured from the first failure (not from the previous retry), so the
// whole grace period is known up front — DESIGN's "+1, +3, +7 days" ends one
// week after the first failure — and a late or missed run cannot stretch it.
type DunningSchedule []time.Duration

// DefaultDunningSchedule retries 1, 3 and 7 days after the first failure.
// Offsets are exact durations, so across a DST change a retry lands an hour
// off the wall-clock time of the failure, which is harmless.
var DefaultDunningSchedule = DunningSchedule{24 * time.Hour, 72 * time.Hour, 168 * time.Hour}

// Validate checks that s is non-empty, positive and strictly increasing, so
// retries happen in order. Config loading should call it.
func (s DunningSchedule) Validate() error {
	if len(s) == 0 {
		return fmt.Errorf("%w: empty", ErrInvalidSchedule)
	}
	prev := time.Duration(0)
	for i, d := range s {
		if d <= prev {
			return fmt.Errorf("%w: offset %d (%v) not after %v", ErrInvalidSchedule, i, d, prev)
		}
		prev = d
	}
	return nil
}

// NextRetry says when to retry after failures failed attempts (the original
// charge counts as the first) that began at firstFailure. When every retry has
// failed it returns exhausted = true: the subscription goes inactive and its
// lines are suspended. failures < 1 means nothing failed: no retry, not
// exhausted.
func (s DunningSchedule) NextRetry(failures int, firstFailure time.Time) (at time.Time, exhausted bool) {
	if failures < 1 {
		return time.Time{}, false
	}
	if failures > len(s) {
		return time.Time{}, true
	}
	return firstFailure.Add(s[failures-1]), false
}
