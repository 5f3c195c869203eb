package clock

import (
	"errors"
	"testing"
	"time"
)

func TestTestClockOnlyMovesForward(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 11, 16, 10, 0, 0, 0, time.UTC)
	c := NewTest(start)
	if err := c.Advance(time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := c.Now(); !got.Equal(start.Add(time.Hour)) {
		t.Fatalf("Now = %v", got)
	}
	if err := c.Set(start); !errors.Is(err, ErrBackwards) {
		t.Fatalf("Set backwards: err = %v, want ErrBackwards", err)
	}
	if err := c.Advance(-time.Second); !errors.Is(err, ErrBackwards) {
		t.Fatalf("Advance negative: err = %v", err)
	}
	if got := c.Now(); !got.Equal(start.Add(time.Hour)) {
		t.Fatalf("a refused move changed the clock: %v", got)
	}
}
