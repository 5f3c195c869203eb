package throttle

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 16, 10, 0, 0, 0, time.UTC)

func TestBlockWindowExpiry(t *testing.T) {
	t.Parallel()
	l := New(Config{Limit: 3, Window: time.Minute, Block: 10 * time.Minute})
	k := l.Key("192.0.2.1")
	if l.Fail(k, t0) || l.Fail(k, t0.Add(time.Second)) {
		t.Fatal("blocked before the limit")
	}
	if l.Blocked(k, t0) {
		t.Fatal("blocked after 2 failures")
	}
	if !l.Fail(k, t0.Add(2*time.Second)) {
		t.Fatal("third failure did not block")
	}
	until, ok := l.BlockedUntil(k, t0.Add(3*time.Second))
	if !ok || !until.Equal(t0.Add(2*time.Second+10*time.Minute)) {
		t.Fatalf("blocked until %v %v", until, ok)
	}
	if l.Fail(k, t0.Add(time.Minute)) {
		t.Fatal("failure while blocked started another block")
	}
	if got := l.BlockedCount(t0.Add(time.Minute)); got != 1 {
		t.Fatalf("blocked count %d", got)
	}
	end := t0.Add(2*time.Second + 10*time.Minute)
	if l.Blocked(k, end) || l.BlockedCount(end) != 0 {
		t.Fatal("block outlived its duration")
	}
	if l.Blocked(l.Key("192.0.2.2"), t0) {
		t.Fatal("other key blocked")
	}
	// Failures spread wider than the window never block.
	k2 := l.Key("192.0.2.3")
	for i := range 10 {
		if l.Fail(k2, t0.Add(time.Duration(i)*40*time.Second)) {
			t.Fatal("slow failures blocked")
		}
	}
}

func TestDisabled(t *testing.T) {
	t.Parallel()
	l := New(Config{})
	k := l.Key("x")
	for range 100 {
		if l.Fail(k, t0) {
			t.Fatal("disabled limiter blocked")
		}
	}
	if l.Blocked(k, t0) || l.BlockedCount(t0) != 0 {
		t.Fatal("disabled limiter reports a block")
	}
}

// A flood of new sources past the table size neither grows memory nor stops
// new offenders from being blocked, and a blocked source that keeps
// sending keeps its block.
func TestFixedMemoryUnderFlood(t *testing.T) {
	t.Parallel()
	const size = 1024
	l := New(Config{Limit: 2, Window: time.Minute, Block: time.Hour, Size: size})
	scanner := l.Key("scanner")
	l.Fail(scanner, t0)
	if !l.Fail(scanner, t0) {
		t.Fatal("scanner not blocked")
	}
	for i := range 200_000 {
		k := l.Key(strconv.Itoa(i))
		now := t0.Add(time.Duration(i) * time.Microsecond)
		l.Fail(k, now)
		if i%100 == 0 && !l.Blocked(scanner, now) {
			t.Fatalf("scanner's block evicted after %d sources", i)
		}
	}
	total := 0
	for i := range l.shards {
		s := &l.shards[i]
		if len(s.ents) > s.cap || len(s.idx) > s.cap {
			t.Fatalf("shard %d holds %d entries, cap %d", i, len(s.ents), s.cap)
		}
		total += len(s.ents)
	}
	if total > size+numShards {
		t.Fatalf("%d entries tracked, size %d", total, size)
	}
	// A new offender is still blocked although the table is full.
	late := l.Key("late")
	l.Fail(late, t0.Add(time.Second))
	if !l.Fail(late, t0.Add(time.Second)) {
		t.Fatal("new offender not blocked with a full table")
	}
}

// BlockedCount never waits for the tables: it answers while every shard is
// locked (as if traffic held them).
func TestBlockedCountTakesNoShardLock(t *testing.T) {
	t.Parallel()
	l := New(Config{Limit: 1, Window: time.Minute, Block: time.Minute})
	l.Fail(l.Key("a"), t0)
	for i := range l.shards {
		l.shards[i].mu.Lock()
	}
	done := make(chan int)
	go func() { done <- l.BlockedCount(t0) }()
	select {
	case n := <-done:
		if n != 1 {
			t.Errorf("count %d", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("BlockedCount waited for a shard lock")
	}
	for i := range l.shards {
		l.shards[i].mu.Unlock()
	}
}

func TestSourceGrouping(t *testing.T) {
	t.Parallel()
	l := New(Config{Limit: 1, Window: time.Minute, Block: time.Minute})
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true},
		{"2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"::ffff:192.0.2.1", "192.0.2.1", true},
		{"fe80::1%eth0", "fe80::2", true},
		{"192.0.2.1", "192.0.2.2", false},
	} {
		if got := l.SourceKey(c.a) == l.SourceKey(c.b); got != c.same {
			t.Errorf("SourceKey(%s) == SourceKey(%s): %v", c.a, c.b, got)
		}
		if got := Prefix(c.a) == Prefix(c.b); got != c.same {
			t.Errorf("Prefix(%s)=%s Prefix(%s)=%s", c.a, Prefix(c.a), c.b, Prefix(c.b))
		}
	}
	if l.SourceKey("192.0.2.1", "alice") == l.SourceKey("192.0.2.1", "bob") ||
		l.SourceKey("192.0.2.1", "alice") == l.SourceKey("192.0.2.1") {
		t.Error("extra parts ignored")
	}
	if Prefix("2001:db8:1:2::1") != "2001:db8:1:2::/64" || Prefix("junk") != "junk" {
		t.Errorf("prefix text %s %s", Prefix("2001:db8:1:2::1"), Prefix("junk"))
	}
	if l.Key("ab", "c") == l.Key("a", "bc") {
		t.Error("key parts run together")
	}
}

func BenchmarkFailDistinctSources(b *testing.B) {
	l := New(Config{Limit: 10, Window: time.Minute, Block: time.Minute})
	keys := make([]Key, 1<<20)
	for i := range keys {
		keys[i] = l.SourceKey(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.Fail(keys[i&(len(keys)-1)], t0)
			i++
		}
	})
}

func BenchmarkBlockedSourceKey(b *testing.B) {
	l := New(Config{Limit: 10, Window: time.Minute, Block: time.Minute})
	b.ReportAllocs()
	for b.Loop() {
		l.Blocked(l.SourceKey("2001:db8::1", "alice"), t0)
	}
}
