package billing

import (
	"errors"
	"testing"
	"time"
)

func TestNextRetry(t *testing.T) {
	t.Parallel()
	first := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	for _, tc := range []struct {
		failures  int
		at        time.Time
		exhausted bool
	}{
		{0, time.Time{}, false},
		{1, first.Add(day), false},
		{2, first.Add(3 * day), false},
		{3, first.Add(7 * day), false},
		{4, time.Time{}, true},
		{9, time.Time{}, true},
	} {
		at, exhausted := DefaultDunningSchedule.NextRetry(tc.failures, first)
		if !at.Equal(tc.at) || exhausted != tc.exhausted {
			t.Errorf("NextRetry(%d) = %v, %v; want %v, %v", tc.failures, at, exhausted, tc.at, tc.exhausted)
		}
	}
}

func TestDunningScheduleValidate(t *testing.T) {
	t.Parallel()
	if err := DefaultDunningSchedule.Validate(); err != nil {
		t.Errorf("default schedule: %v", err)
	}
	for _, s := range []DunningSchedule{nil, {0}, {-time.Hour}, {time.Hour, time.Hour}, {2 * time.Hour, time.Hour}} {
		if err := s.Validate(); !errors.Is(err, ErrInvalidSchedule) {
			t.Errorf("%v.Validate() = %v, want ErrInvalidSchedule", s, err)
		}
	}
}
