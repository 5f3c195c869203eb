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
	v = strings.TrimLeft(v, " \t")
	if len(v) < 7 || !strings.EqualFold(v[:6], "digest") || (v[6] != ' ' && v[6] != '\t') {
		return c, errBadAuthHeader
	}
	s := v[7:]
	seen := 0
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			break
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return c, errBadAuthHeader
		}
		name := strings.TrimRight(s[:eq], " \t")
		if !isToken(name) {
			return c, errBadAuthHeader
		}
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			i, closed := 1, false
			for i < len(s) {
				ch := s[i]
				if ch == '\\' && i+1 < len(s) {
					b.WriteByte(s[i+1])
					i += 2
					continue
				}
				if ch == '"' {
					closed = true
					i++
					break
				}
				b.WriteByte(ch)
				i++
			}
			if !closed {
				return c, errBadAuthHeader
			}
			val, s = b.String(), s[i:]
		} else {
			end := strings.IndexAny(s, ", \t")
			if end < 0 {
				end = len(s)
			}
			val, s = s[:end], s[end:]
			if val == "" || !isToken(val) {
				return c, errBadAuthHeader
			}
		}
		s = strings.TrimLeft(s, " \t")
		if s != "" {
			if s[0] != ',' {
				return c, errBadAuthHeader
			}
			s = s[1:]
		}
		var dst *string
		var bit int
		switch strings.ToLower(name) {
		case "username":
			dst, bit = &c.Username, 1
		case "realm":
			dst, bit = &c.Realm, 2
		case "nonce":
			dst, bit = &c.Nonce, 4
		case "uri":
			dst, bit = &c.URI, 8
		case "response":
			dst, bit = &c.Response, 16
		case "algorithm":
			dst, bit = &c.Algorithm, 32
		case "cnonce":
			dst, bit = &c.Cnonce, 64
		case "opaque":
			dst, bit = &c.Opaque, 128
		case "qop":
			dst, bit = &c.QOP, 256
		case "nc":
			dst, bit = &c.NC, 512
		case "userhash":
			dst, bit = &c.Userhash, 1024
		default:
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

// isToken reports whether s is a non-empty RFC 3261 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9':
		case strings.IndexByte("-.!%*_+`'~", ch) >= 0:
		default:
			return false
		}
	}
	return true
}

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
	macs     sync.Pool
}

// newNoncer keys nonces with secret; seed's high half is the issuer tag,
// its low half the first counter value.
func newNoncer(secret []byte, lifetime time.Duration, seed uint64) *noncer {
	n := &noncer{secret: append([]byte(nil), secret...), lifetime: lifetime, tag: uint32(seed >> 32)}
	n.ctr.Store(uint32(seed))
	n.macs.New = func() any { return hmac.New(sha256.New, n.secret) }
	return n
}

func (n *noncer) mac(dst []byte, head []byte, src netip.Addr, realm string) {
	m := n.macs.Get().(hash.Hash)
	m.Reset()
	m.Write(head)
	a := src.As16() // zero Addr: all zeros
	m.Write(a[:])
	m.Write([]byte(realm))
	var sum [sha256.Size]byte
	copy(dst, m.Sum(sum[:0])[:nonceMACLen])
	n.macs.Put(m)
}

// mint returns a fresh nonce for realm, issued at now to src.
func (n *noncer) mint(now time.Time, src netip.Addr, realm string) string {
	var raw [nonceRawLen]byte
	binary.BigEndian.PutUint64(raw[0:8], uint64(now.UnixNano()))
	binary.BigEndian.PutUint32(raw[8:12], n.tag)
	binary.BigEndian.PutUint32(raw[12:16], n.ctr.Add(1))
	n.mac(raw[16:], raw[:16], src, realm)
	return base64.RawURLEncoding.EncodeToString(raw[:])
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
	if k, err := base64.RawURLEncoding.Decode(raw[:], []byte(nonce)); err != nil || k != nonceRawLen {
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
	// On the stack for ordinary requests: this runs for every
	// authenticated REGISTER (and for failures, to cost the same).
	var buf [512]byte
	b := append(append(append(buf[:0], method...), ':'), uri...)
	var ha2 [64]byte
	ha2Hex := hex.AppendEncode(ha2[:0], digestSum(alg, b))
	b = buf[:0]
	for _, p := range [...]string{ha1, nonce, nc, cnonce, qop} {
		b = append(append(b, p...), ':')
	}
	b = append(b, ha2Hex...)
	return hex.EncodeToString(digestSum(alg, b))
}

// digestSum hashes b with alg (algMD5 or algSHA256).
func digestSum(alg string, b []byte) []byte {
	if alg == algSHA256 {
		s := sha256.Sum256(b)
		return s[:]
	}
	s := md5.Sum(b)
	return s[:]
}

// equalHex compares two hex digests in constant time, ignoring case.
func equalHex(a, b string) bool {
	return len(a) == len(b) && subtle.ConstantTimeCompare([]byte(strings.ToLower(a)), []byte(strings.ToLower(b))) == 1
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
