// Package throttle blocks clients that fail too often (wrong passwords,
// probed MACs) in fixed memory and constant time per request, whatever
// the number of sources: the SIP registrar and the phone provisioning
// server both use it.
//
// Keys are 64-bit hashes (seeded per Limiter, so nobody can aim collisions
// at a victim) kept in a sharded table of fixed capacity with
// least-recently-used eviction. A flood of new sources therefore evicts
// the sources idle the longest, never grows memory and never scans: every
// operation locks one shard for a few map and list operations. A source
// that keeps hammering while blocked keeps its entry fresh, so the flood
// it takes part in cannot evict its own block.
package throttle

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"time"
)

// Config sets a Limiter's policy.
type Config struct {
	// Limit failures of one key within Window block it for Block. 0
	// disables the Limiter: nothing is ever blocked.
	Limit  int
	Window time.Duration
	Block  time.Duration
	// Size bounds the keys tracked (memory is about 100 bytes a key);
	// beyond it the least recently seen key is forgotten. 0 means 100,000.
	Size int
}

// Key identifies what failures are counted against (a source, a source and
// a username). Make one with Limiter.Key or Limiter.SourceKey.
type Key uint64

const numShards = 64

// Limiter counts failures per key and blocks keys that fail too often. It
// is safe for concurrent use.
type Limiter struct {
	cfg    Config
	seed   maphash.Seed
	shards [numShards]shard
	ring   blockRing
}

type shard struct {
	mu   sync.Mutex
	idx  map[Key]int32
	ents []entry
	cap  int
	head int32 // most recently used, -1 when empty
	tail int32 // least recently used
}

type entry struct {
	key          Key
	windowStart  int64 // unix ns
	blockedUntil int64 // unix ns
	failures     int32
	prev, next   int32
}

// New returns a Limiter for cfg. Tables are allocated as keys arrive, up
// to Size.
func New(cfg Config) *Limiter {
	if cfg.Size <= 0 {
		cfg.Size = 100_000
	}
	l := &Limiter{cfg: cfg, seed: maphash.MakeSeed()}
	per := (cfg.Size + numShards - 1) / numShards
	for i := range l.shards {
		l.shards[i] = shard{idx: make(map[Key]int32), cap: per, head: -1, tail: -1}
	}
	l.ring.width = max(cfg.Block/ringBuckets, time.Millisecond)
	l.ring.block = cfg.Block
	return l
}

// Config returns the policy the Limiter was built with (Size defaulted).
func (l *Limiter) Config() Config { return l.cfg }

// Key hashes parts (separated, so ("ab","c") and ("a","bc") differ).
func (l *Limiter) Key(parts ...string) Key {
	var h maphash.Hash
	h.SetSeed(l.seed)
	for _, p := range parts {
		h.WriteString(p)
		h.WriteByte(0)
	}
	return Key(h.Sum64())
}

// SourceKey hashes the source address ip (grouped as Source does) and
// extra parts, e.g. a username.
func (l *Limiter) SourceKey(ip string, extra ...string) Key {
	return l.SourceKeyOf(Source(ip), ip, extra...)
}

// SourceKeyOf is SourceKey for a caller that already has src =
// Source(ip): the address is not parsed again.
func (l *Limiter) SourceKeyOf(src netip.Addr, ip string, extra ...string) Key {
	var h maphash.Hash
	h.SetSeed(l.seed)
	if a := src; a.IsValid() {
		b := a.As16()
		h.Write(b[:])
	} else {
		h.WriteString(ip)
	}
	h.WriteByte(0)
	for _, p := range extra {
		h.WriteString(p)
		h.WriteByte(0)
	}
	return Key(h.Sum64())
}

// Source returns the address failures of ip are counted against: the
// address itself for IPv4 (IPv4-mapped IPv6 unmapped), the /64 prefix for
// IPv6 (the block one subscriber gets; otherwise a scanner could rotate
// through 2^64 addresses). The zero Addr if ip does not parse.
func Source(ip string) netip.Addr {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.Addr{}
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// Prefix is Source as text for logs and map keys: "192.0.2.1",
// "2001:db8:1:2::/64"; ip unchanged if it does not parse.
func Prefix(ip string) string {
	a := Source(ip)
	switch {
	case !a.IsValid():
		return ip
	case a.Is6():
		return netip.PrefixFrom(a, 64).String()
	}
	return a.String()
}

func (l *Limiter) shard(k Key) *shard { return &l.shards[uint64(k)%numShards] }

// Blocked reports whether k is blocked at now.
func (l *Limiter) Blocked(k Key, now time.Time) bool {
	_, b := l.BlockedUntil(k, now)
	return b
}

// BlockedUntil reports whether k is blocked at now, and until when.
func (l *Limiter) BlockedUntil(k Key, now time.Time) (time.Time, bool) {
	if l.cfg.Limit <= 0 {
		return time.Time{}, false
	}
	s := l.shard(k)
	s.mu.Lock()
	i, ok := s.idx[k]
	var until int64
	if ok {
		s.touch(i)
		until = s.ents[i].blockedUntil
	}
	s.mu.Unlock()
	if !ok || now.UnixNano() >= until {
		return time.Time{}, false
	}
	return time.Unix(0, until), true
}

// Fail records a failure of k at now and reports whether it started a
// block. Failures while blocked do not extend the block.
func (l *Limiter) Fail(k Key, now time.Time) bool {
	if l.cfg.Limit <= 0 {
		return false
	}
	t := now.UnixNano()
	s := l.shard(k)
	s.mu.Lock()
	i, ok := s.idx[k]
	if ok {
		s.touch(i)
	} else {
		i = s.insert(k, t)
	}
	e := &s.ents[i]
	started := false
	switch {
	case t < e.blockedUntil:
	default:
		if t-e.windowStart > int64(l.cfg.Window) {
			e.windowStart, e.failures = t, 0
		}
		e.failures++
		if int(e.failures) >= l.cfg.Limit {
			e.blockedUntil = t + int64(l.cfg.Block)
			e.windowStart, e.failures = e.blockedUntil, 0
			started = true
		}
	}
	s.mu.Unlock()
	if started {
		l.ring.add(now)
	}
	return started
}

// BlockedCount is the number of keys blocked at now, for a gauge: the
// blocks started within the last Block, to 1/64 of Block (keys forgotten
// under memory pressure still count until their block would end). It
// never touches the tables, so a scrape never waits for traffic.
func (l *Limiter) BlockedCount(now time.Time) int {
	if l.cfg.Limit <= 0 {
		return 0
	}
	return l.ring.count(now)
}

// touch moves entry i to the front of the LRU list. s.mu held.
func (s *shard) touch(i int32) {
	if s.head == i {
		return
	}
	s.unlink(i)
	s.pushFront(i)
}

func (s *shard) unlink(i int32) {
	e := &s.ents[i]
	if e.prev >= 0 {
		s.ents[e.prev].next = e.next
	} else {
		s.head = e.next
	}
	if e.next >= 0 {
		s.ents[e.next].prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = -1, -1
}

func (s *shard) pushFront(i int32) {
	e := &s.ents[i]
	e.prev, e.next = -1, s.head
	if s.head >= 0 {
		s.ents[s.head].prev = i
	}
	s.head = i
	if s.tail < 0 {
		s.tail = i
	}
}

// insert adds k, evicting the least recently used key when full. s.mu held.
func (s *shard) insert(k Key, now int64) int32 {
	var i int32
	if len(s.ents) < s.cap {
		i = int32(len(s.ents))
		s.ents = append(s.ents, entry{prev: -1, next: -1})
	} else {
		i = s.tail
		s.unlink(i)
		delete(s.idx, s.ents[i].key)
	}
	s.ents[i] = entry{key: k, windowStart: now, prev: -1, next: -1}
	s.idx[k] = i
	s.pushFront(i)
	return i
}

// ringBuckets is the resolution of BlockedCount.
const ringBuckets = 64

// blockRing counts block starts in time buckets covering one Block.
type blockRing struct {
	width, block time.Duration
	mu           sync.Mutex
	epoch        [ringBuckets]int64
	n            [ringBuckets]int
}

func (r *blockRing) add(now time.Time) {
	e := now.UnixNano() / int64(r.width)
	b := e % ringBuckets
	r.mu.Lock()
	if r.epoch[b] != e {
		r.epoch[b], r.n[b] = e, 0
	}
	r.n[b]++
	r.mu.Unlock()
}

func (r *blockRing) count(now time.Time) int {
	t := now.UnixNano()
	r.mu.Lock()
	defer r.mu.Unlock()
	total := 0
	for b := range ringBuckets {
		if start := r.epoch[b] * int64(r.width); r.n[b] > 0 && start+int64(r.block) > t && start <= t {
			total += r.n[b]
		}
	}
	return total
}
