package sip

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Digest algorithms offered in challenges (RFC 7616 §3.3, RFC 8760).
const (
	algMD5    = "MD5"
	algSHA256 = "SHA-256"
)

// maxAuthHeaderLen bounds the Authorization header we are willing to parse.
const maxAuthHeaderLen = 4096

var errBadAuthHeader = errors.New("malformed Authorization header")

// credentials are the parameters of a Digest Authorization header.
type credentials struct {
	Username  string
	Realm     string
	Nonce     string
	URI       string
	Response  string
	Algorithm string
	Cnonce    string
	Opaque    string
	QOP       string
	NC        string
	Userhash  string
}

// parseAuthorization parses a Digest credentials header value (RFC 7616
// §3.4, RFC 3261 §25 grammar): the scheme, then comma-separated
// name=token or name="quoted string" pairs. Unknown parameters are ignored;
// a duplicated known parameter is an error, so two parties cannot read one
// header differently.
func parseAuthorization(v string) (credentials, error) {
	var c credentials
	if len(v) > maxAuthHeaderLen {
		return c, errBadAuthHeader
	}
	v = trimLWSLeft(v)
	if len(v) < 7 || !strings.EqualFold(v[:6], "digest") || (v[6] != ' ' && v[6] != '\t') {
		return c, errBadAuthHeader
	}
	s := v[7:]
	seen := 0
	for {
		s = trimLWSLeft(s)
		if s == "" {
			break
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return c, errBadAuthHeader
		}
		name := trimLWS(s[:eq])
		if !isToken(name) {
			return c, errBadAuthHeader
		}
		s = trimLWSLeft(s[eq+1:])
		var val string
		var ok bool
		if strings.HasPrefix(s, `"`) {
			val, s, ok = quotedValue(s)
		} else {
			val, s, ok = tokenValue(s)
		}
		if !ok {
			return c, errBadAuthHeader
		}
		s = trimLWSLeft(s)
		if s != "" {
			if s[0] != ',' {
				return c, errBadAuthHeader
			}
			s = s[1:]
		}
		dst, bit := c.field(name)
		if dst == nil {
			continue
		}
		if seen&bit != 0 {
			return c, errBadAuthHeader
		}
		seen |= bit
		*dst = val
	}
	if c.Username == "" || c.Nonce == "" || c.Response == "" || c.URI == "" {
		return c, errBadAuthHeader
	}
	return c, nil
}

// quotedValue reads the quoted-string s starts with: its content without
// the quotes and backslash escapes, and what follows it.
func quotedValue(s string) (val, rest string, ok bool) {
	i, closed, escaped := 1, false, false
	if q := strings.IndexByte(s[1:], '"'); q >= 0 && strings.IndexByte(s[1:1+q], '\\') < 0 {
		i, closed = 1+q, true // no escapes: the first quote closes it
	}
	for !closed && i < len(s) {
		ch := s[i]
		if ch == '\\' && i+1 < len(s) {
			escaped = true
			i += 2
			continue
		}
		if ch == '"' {
			closed = true
			break
		}
		i++
	}
	if !closed {
		return "", "", false
	}
	val, rest = s[1:i], s[i+1:]
	if escaped { // rare: copy without the backslashes
		var b strings.Builder
		for j := 0; j < len(val); j++ {
			if val[j] == '\\' && j+1 < len(val) {
				j++
			}
			b.WriteByte(val[j])
		}
		val = b.String()
	}
	return val, rest, true
}

// tokenValue reads the token s starts with (up to a comma or white space)
// and what follows it.
func tokenValue(s string) (val, rest string, ok bool) {
	end := 0 // strings.IndexAny(s, ", \t") builds a set per call
	for end < len(s) && s[end] != ',' && s[end] != ' ' && s[end] != '\t' {
		end++
	}
	val, rest = s[:end], s[end:]
	return val, rest, val != "" && isToken(val)
}

// field returns where the Authorization parameter name goes and its bit
// in parseAuthorization's seen set, or nil for a parameter we ignore.
// Candidates are picked by length and first letter.
func (c *credentials) field(name string) (*string, int) {
	if name == "" {
		return nil, 0
	}
	is := func(want string) bool { return name == want || strings.EqualFold(name, want) }
	switch l := name[0] | 0x20; len(name) {
	case 2:
		if l == 'n' && is("nc") {
			return &c.NC, 512
		}
	case 3:
		switch {
		case l == 'u' && is("uri"):
			return &c.URI, 8
		case l == 'q' && is("qop"):
			return &c.QOP, 256
		}
	case 5:
		switch {
		case l == 'r' && is("realm"):
			return &c.Realm, 2
		case l == 'n' && is("nonce"):
			return &c.Nonce, 4
		}
	case 6:
		switch {
		case l == 'c' && is("cnonce"):
			return &c.Cnonce, 64
		case l == 'o' && is("opaque"):
			return &c.Opaque, 128
		}
	case 8:
		switch {
		case l == 'u' && is("username"):
			return &c.Username, 1
		case l == 'r' && is("response"):
			return &c.Response, 16
		case l == 'u' && is("userhash"):
			return &c.Userhash, 1024
		}
	case 9:
		if l == 'a' && is("algorithm") {
			return &c.Algorithm, 32
		}
	}
	return nil, 0
}

// trimLWSLeft trims leading spaces and tabs.
func trimLWSLeft(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	return s
}

// isToken reports whether s is a non-empty RFC 3261 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChars[s[i]] {
			return false
		}
	}
	return true
}

// tokenChars are the bytes of an RFC 3261 token.
var tokenChars = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-.!%*_+`'~", byte(c)) >= 0
	}
	return t
}()

// nonce layout: 8 bytes issue time (unix ns), 4 bytes issuer tag, 4 bytes
// counter, 16 bytes HMAC-SHA256(secret, time|tag|counter|source|realm)
// truncated; base64url. The tag is random per registrar start: every
// instance sharing the secret recognises the nonce as genuine, but only its
// issuer, which alone tracks its nonce counts, accepts it (see check). source is the address the challenge was sent to (grouped as
// throttle.Source does), so a nonce echoed from elsewhere is not ours: only
// a client that receives our answers at an address can make failures count
// against it (spoofed one-way packets cannot lock a victim out).
const (
	nonceRawLen = 32
	nonceMACLen = 16
	nonceLen    = 43 // base64.RawURLEncoding.EncodedLen(nonceRawLen)
)

// nonceStatus is the outcome of checking a nonce.
type nonceStatus int

const (
	nonceValid   nonceStatus = iota
	nonceStale               // genuine but too old
	nonceInvalid             // not ours, or for another realm
)

// noncer mints and checks stateless nonces.
type noncer struct {
	secret   []byte
	lifetime time.Duration
	tag      uint32 // this registrar's, in every nonce it mints
	ctr      atomic.Uint32
	macs     sync.Pool // of *macState
}

// macState is a keyed HMAC and the bytes it hashes, reused: hashing
// through the hash.Hash interface would move stack buffers to the heap.
type macState struct {
	h   hash.Hash
	in  []byte
	sum []byte
}

// newNoncer keys nonces with secret; seed's high half is the issuer tag,
// its low half the first counter value.
func newNoncer(secret []byte, lifetime time.Duration, seed uint64) *noncer {
	n := &noncer{secret: append([]byte(nil), secret...), lifetime: lifetime, tag: uint32(seed >> 32)}
	n.ctr.Store(uint32(seed))
	n.macs.New = func() any {
		return &macState{h: hmac.New(sha256.New, n.secret), in: make([]byte, 0, 128), sum: make([]byte, 0, sha256.Size)}
	}
	return n
}

func (n *noncer) mac(dst []byte, head []byte, src netip.Addr, realm string) {
	m := n.macs.Get().(*macState)
	a := src.As16() // zero Addr: all zeros
	m.in = append(append(append(m.in[:0], head...), a[:]...), realm...)
	m.h.Reset()
	m.h.Write(m.in)
	m.sum = m.h.Sum(m.sum[:0])
	copy(dst, m.sum[:nonceMACLen])
	n.macs.Put(m)
}

// mint returns a fresh nonce for realm, issued at now to src.
func (n *noncer) mint(now time.Time, src netip.Addr, realm string) string {
	var b [nonceLen]byte
	return string(n.appendMint(b[:0], now, src, realm))
}

// appendMint appends a fresh nonce (nonceLen bytes) to dst.
func (n *noncer) appendMint(dst []byte, now time.Time, src netip.Addr, realm string) []byte {
	var raw [nonceRawLen]byte
	binary.BigEndian.PutUint64(raw[0:8], uint64(now.UnixNano()))
	binary.BigEndian.PutUint32(raw[8:12], n.tag)
	binary.BigEndian.PutUint32(raw[12:16], n.ctr.Add(1))
	n.mac(raw[16:], raw[:16], src, realm)
	return base64.RawURLEncoding.AppendEncode(dst, raw[:])
}

// check verifies that nonce was minted by us for realm and src and is not
// older than the lifetime; it returns the issue time. A genuine nonce
// minted by another registrar sharing the secret (another pbxd instance,
// or this one before a restart) is stale: its nonce counts were tracked
// there, so accepting it here would let a captured request be replayed.
// The phone retries at once with a fresh nonce, without failing.
func (n *noncer) check(now time.Time, nonce string, src netip.Addr, realm string) (nonceStatus, time.Time) {
	if len(nonce) != nonceLen {
		return nonceInvalid, time.Time{}
	}
	var raw [nonceRawLen]byte
	var enc [nonceLen]byte
	copy(enc[:], nonce) // on the stack, unlike []byte(nonce)
	if k, err := base64.RawURLEncoding.Decode(raw[:], enc[:]); err != nil || k != nonceRawLen {
		return nonceInvalid, time.Time{}
	}
	var want [nonceMACLen]byte
	n.mac(want[:], raw[:16], src, realm)
	if !hmac.Equal(want[:], raw[16:]) {
		return nonceInvalid, time.Time{}
	}
	issued := time.Unix(0, int64(binary.BigEndian.Uint64(raw[0:8])))
	if binary.BigEndian.Uint32(raw[8:12]) != n.tag {
		return nonceStale, issued
	}
	age := now.Sub(issued)
	if age < -time.Minute { // from the future: clock stepped back a lot
		return nonceStale, issued
	}
	if age > n.lifetime {
		return nonceStale, issued
	}
	return nonceValid, issued
}

// digestResponse computes the RFC 7616 qop=auth response from the stored
// hex HA1. alg is algMD5 or algSHA256.
func digestResponse(alg, ha1, method, uri, nonce, nc, cnonce, qop string) string {
	var out [sha256.Size * 2]byte
	return string(appendDigestResponse(out[:0], alg, ha1, method, uri, nonce, nc, cnonce, qop))
}

// appendDigestResponse appends digestResponse's hex digest to dst.
func appendDigestResponse(dst []byte, alg, ha1, method, uri, nonce, nc, cnonce, qop string) []byte {
	// On the stack for ordinary requests: this runs for every
	// authenticated REGISTER (and for failures, to cost the same).
	var buf [512]byte
	b := append(append(append(buf[:0], method...), ':'), uri...)
	var ha2 [64]byte
	ha2Hex := appendDigestHex(ha2[:0], alg, b)
	b = buf[:0]
	for _, p := range [...]string{ha1, nonce, nc, cnonce, qop} {
		b = append(append(b, p...), ':')
	}
	b = append(b, ha2Hex...)
	return appendDigestHex(dst, alg, b)
}

// appendDigestHex appends the hex digest of b with alg (algMD5 or
// algSHA256).
func appendDigestHex(dst []byte, alg string, b []byte) []byte {
	if alg == algSHA256 {
		s := sha256.Sum256(b)
		return hex.AppendEncode(dst, s[:])
	}
	s := md5.Sum(b)
	return hex.AppendEncode(dst, s[:])
}

// equalHexBytes compares the lower-case hex digest want with got in
// constant time, ignoring got's case, without allocating.
func equalHexBytes(want []byte, got string) bool {
	if len(want) != len(got) {
		return false
	}
	var diff byte
	for i := range want {
		diff |= lowerASCII(want[i]) ^ lowerASCII(got[i])
	}
	return subtle.ConstantTimeByteEq(diff, 0) == 1
}

// lowerASCII lower-cases c without branching on it.
func lowerASCII(c byte) byte {
	isUpper := byte(subtle.ConstantTimeLessOrEq(int('A'), int(c)) & subtle.ConstantTimeLessOrEq(int(c), int('Z')))
	return c | isUpper<<5
}

// parseNC parses the 8-hex-digit nonce count.
func parseNC(s string) (uint32, bool) {
	if len(s) != 8 {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil || v == 0 {
		return 0, false
	}
	return uint32(v), true
}

// ncTracker remembers the highest nonce count seen per nonce so a captured
// Authorization header cannot be replayed. It is bounded: each shard keeps
// two generations and drops the older one when the newer fills up. A nonce
// issued before the dropped generation started is then refused as stale,
// because its earlier uses may have been forgotten.
type ncTracker struct {
	shards [32]ncShard
	perGen int
}

type ncShard struct {
	mu        sync.Mutex
	cur, prev map[string]uint32
	since     time.Time // uses since this time are all remembered
	curStart  time.Time
}

func newNCTracker(size int, now time.Time) *ncTracker {
	t := &ncTracker{}
	t.perGen = max(size/(2*len(t.shards)), 16)
	for i := range t.shards {
		s := &t.shards[i]
		s.cur = make(map[string]uint32)
		s.prev = make(map[string]uint32)
		s.since = now
		s.curStart = now
	}
	return t
}

func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// use records nc for nonce (issued at issued) and reports whether it is
// acceptable: higher than any count seen before for this nonce. stale is
// set when the nonce is too old to be judged.
func (t *ncTracker) use(nonce string, issued time.Time, nc uint32, now time.Time) (ok, stale bool) {
	s := &t.shards[fnv32(nonce)%uint32(len(t.shards))]
	s.mu.Lock()
	defer s.mu.Unlock()
	last, found := s.cur[nonce]
	if !found {
		last, found = s.prev[nonce]
	}
	if !found && issued.Before(s.since) {
		return false, true
	}
	if found && nc <= last {
		return false, false
	}
	if len(s.cur) >= t.perGen {
		s.prev, s.cur = s.cur, make(map[string]uint32, t.perGen)
		s.since, s.curStart = s.curStart, now
	}
	s.cur[strings.Clone(nonce)] = nc
	return true, false
}
