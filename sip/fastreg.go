package sip

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
)

// The REGISTER fast path. Most datagrams a registrar receives are
// REGISTERs of one plain shape (a phone's refresh, a challenge round
// trip). parseFast reads exactly that shape, and only the headers the
// registrar uses, as substrings of the datagram; the answer is written
// straight into the send buffer, echoing the request's Via, From, To,
// Call-ID and CSeq as received. Anything else (another method, folded
// lines, compact header names, a body, a Require, commas in Via or
// Contact, IPv6 literals with a zone or an embedded IPv4 address,
// escapes, quoted parameters other than plain Contact ones such as RFC
// 5626's +sip.instance, ...) is left to
// sipgo's parser and the same registration logic (register), so the fast
// path changes speed, not answers: FuzzParseFast checks that what it
// accepts sipgo reads the same way.

// regRequest is what the registrar reads of a REGISTER, from either
// parser.
type regRequest struct {
	complete             bool // To, From, Call-ID and CSeq present
	ruriScheme, ruriHost string
	toUser, toHost       string
	fromUser, fromHost   string
	callID               string
	cseq                 uint32
	cseqMethod           string
	auth                 []string // Authorization values, in order
	expires              string   // first Expires header value
	hasExpires           bool
	contacts             []regContact
	userAgent            string // first User-Agent value
	source               string // "ip:port" the request came from
	transport            string // "UDP", "TCP", "TLS"

	authBuf    [2]string
	contactBuf [2]regContact
}

// regContact is one Contact header value.
type regContact struct {
	bad        bool // not a Contact header sipgo could read
	wildcard   bool
	uri        string // as sipgo renders it
	host       string
	expires    string // the "expires" parameter
	hasExpires bool
	params     string // the other header parameters, ";k=v;..."
}

func (q *regRequest) reset() {
	*q = regRequest{}
	q.auth, q.contacts = q.authBuf[:0], q.contactBuf[:0]
}

// fromSipgo fills q from a request sipgo parsed.
func (q *regRequest) fromSipgo(req *sip.Request) {
	q.reset()
	q.ruriScheme, q.ruriHost = req.Recipient.Scheme, req.Recipient.Host
	q.source, q.transport = req.Source(), req.Transport()
	to, from, callID, cseq := req.To(), req.From(), req.CallID(), req.CSeq()
	q.complete = to != nil && from != nil && callID != nil && cseq != nil
	if !q.complete {
		return
	}
	q.toUser, q.toHost = to.Address.User, to.Address.Host
	q.fromUser, q.fromHost = from.Address.User, from.Address.Host
	q.callID, q.cseq, q.cseqMethod = callID.Value(), cseq.SeqNo, string(cseq.MethodName)
	for _, h := range req.Headers() {
		switch name := h.Name(); {
		case strings.EqualFold(name, "Authorization"):
			q.auth = append(q.auth, h.Value())
		case strings.EqualFold(name, "Expires"):
			if !q.hasExpires {
				q.expires, q.hasExpires = h.Value(), true
			}
		case strings.EqualFold(name, "User-Agent"):
			if q.userAgent == "" {
				q.userAgent = h.Value()
			}
		case strings.EqualFold(name, "Contact"):
			c, ok := h.(*sip.ContactHeader)
			if !ok {
				q.contacts = append(q.contacts, regContact{bad: true})
				continue
			}
			rc := regContact{wildcard: c.Address.Wildcard}
			if !rc.wildcard {
				rc.uri, rc.host, rc.params = c.Address.String(), c.Address.Host, contactParams(c)
				rc.expires, rc.hasExpires = c.Params.Get("expires")
			}
			q.contacts = append(q.contacts, rc)
		}
	}
}

// fastRequest is a REGISTER read by parseFast: the registrar's view plus
// the raw header values the answer echoes.
type fastRequest struct {
	regRequest
	vias      []string // raw values, top first
	from, to  string
	callIDRaw string
	cseqRaw   string
	toTag     bool
	branch    string
	rportAt   int // in vias[0], just after a valueless "rport"; -1: none

	viaBuf [2]string
}

// parseFast reads s as a REGISTER of the plain shape described above.
// It reports false, having read nothing reliable, for anything else. raw
// holds the same bytes as s (the datagram s was copied from): the
// byte-wise checks read it eight bytes at a time.
func parseFast(s string, raw []byte, q *fastRequest) bool {
	if len(raw) != len(s) {
		return false
	}
	q.reset()
	q.vias, q.rportAt, q.to, q.from, q.callIDRaw, q.cseqRaw, q.toTag, q.branch = q.viaBuf[:0], -1, "", "", "", "", false, ""
	eol := strings.Index(s, "\r\n")
	if eol < 0 {
		return false
	}
	line := s[:eol]
	const pre, post = "REGISTER ", " SIP/2.0"
	if !strings.HasPrefix(line, pre) || !strings.HasSuffix(line, post) || len(line) < len(pre)+len(post) {
		return false
	}
	scheme, _, host, _, ok := parsePlainURI(line[len(pre) : len(line)-len(post)])
	if !ok {
		return false
	}
	q.ruriScheme, q.ruriHost = scheme, host
	rest := s[eol+2:]
	for {
		eol = strings.Index(rest, "\r\n")
		if eol < 0 {
			return false
		}
		lineOff := len(s) - len(rest)
		line, rest = rest[:eol], rest[eol+2:]
		if line == "" {
			break
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return false
		}
		name, value := line[:colon], trimLWS(line[colon+1:])
		valueOff := lineOff + colon + 1 + len(line[colon+1:]) - len(trimLWSLeft(line[colon+1:]))
		if !plainValue(raw[valueOff : valueOff+len(value)]) {
			return false
		}
		switch headerOf(name) {
		case hVia:
			if len(q.vias) == len(q.viaBuf) || !q.parseVia(value, len(q.vias) == 0) {
				return false
			}
			q.vias = append(q.vias, value)
		case hFrom:
			user, host, _, ok := parseNameAddr(value)
			if !ok || q.from != "" {
				return false
			}
			q.from, q.fromUser, q.fromHost = value, user, host
		case hTo:
			user, host, tag, ok := parseNameAddr(value)
			if !ok || q.to != "" {
				return false
			}
			q.to, q.toUser, q.toHost, q.toTag = value, user, host, tag
		case hCallID:
			if q.callIDRaw != "" || value == "" || strings.ContainsAny(value, " \t") {
				return false
			}
			q.callIDRaw, q.callID = value, value
		case hCSeq:
			num, method, ok := strings.Cut(value, " ")
			if q.cseqRaw != "" || !ok || method != "REGISTER" {
				return false
			}
			n, ok := parseUint32(num)
			if !ok || n > 1<<31-1 { // sipgo's bound (RFC 3261 §8.1.1.5)
				return false
			}
			q.cseqRaw, q.cseq, q.cseqMethod = value, n, method
		case hAuthorization:
			if len(q.auth) == len(q.authBuf) {
				return false
			}
			q.auth = append(q.auth, value)
		case hContact:
			if len(q.contacts) == len(q.contactBuf) {
				return false
			}
			c, ok := parseContact(value)
			if !ok {
				return false
			}
			q.contacts = append(q.contacts, c)
		case hExpires:
			if !q.hasExpires {
				q.expires, q.hasExpires = value, true
			}
		case hUserAgent:
			if q.userAgent == "" {
				q.userAgent = value
			}
		case hContentLength:
			if value != "0" {
				return false
			}
		case hMaxForwards: // sipgo refuses a message whose value is not a number
			if _, ok := parseUint32(value); !ok {
				return false
			}
		case hOther:
			if len(name) == 1 {
				return false // a compact form
			}
		default: // Require (answered 420 by the general path), Route, ...
			return false
		}
	}
	if rest != "" || len(q.vias) == 0 || q.from == "" || q.to == "" || q.callIDRaw == "" || q.cseqRaw == "" {
		return false
	}
	q.complete, q.transport = true, "UDP"
	return true
}

// Header names parseFast tells apart.
const (
	hOther = iota
	hVia
	hFrom
	hTo
	hCallID
	hCSeq
	hAuthorization
	hContact
	hExpires
	hUserAgent
	hContentLength
	hMaxForwards
	hRefused // Require, and the headers sipgo parses that we do not read
)

// headerOf classifies a header name: the candidates are picked by length
// and first letter, so a name is compared with at most two of them.
func headerOf(name string) int {
	if len(name) < 2 {
		return hOther
	}
	// Phones write the names as RFC 3261 does: try that case first.
	is := func(want string) bool { return name == want || strings.EqualFold(name, want) }
	switch c := name[0] | 0x20; len(name) {
	case 2:
		if c == 't' && is("To") {
			return hTo
		}
	case 3:
		if c == 'v' && is("Via") {
			return hVia
		}
	case 4:
		switch {
		case c == 'f' && is("From"):
			return hFrom
		case c == 'c' && is("CSeq"):
			return hCSeq
		}
	case 5:
		if c == 'r' && is("Route") {
			return hRefused
		}
	case 7:
		switch {
		case c == 'c' && is("Call-ID"):
			return hCallID
		case c == 'c' && is("Contact"):
			return hContact
		case c == 'e' && is("Expires"):
			return hExpires
		case c == 'r' && is("Require"):
			return hRefused
		}
	case 8:
		if c == 'r' && is("Refer-To") {
			return hRefused
		}
	case 10:
		if c == 'u' && is("User-Agent") {
			return hUserAgent
		}
	case 11:
		if c == 'r' && is("Referred-By") {
			return hRefused
		}
	case 12:
		switch {
		case c == 'm' && is("Max-Forwards"):
			return hMaxForwards
		case c == 'c' && is("Content-Type"):
			return hRefused
		case c == 'r' && is("Record-Route"):
			return hRefused
		}
	case 13:
		if c == 'a' && is("Authorization") {
			return hAuthorization
		}
	case 14:
		if c == 'c' && is("Content-Length") {
			return hContentLength
		}
	}
	return hOther
}

// plainValue reports a header value without control characters and
// without UTF-8 (both legal in places, both left to sipgo): every byte in
// 0x20..0x7e. Eight bytes are checked at a time.
func plainValue(v []byte) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(v); i += 8 {
		x := binary.LittleEndian.Uint64(v[i:])
		// A high bit in (x - 0x20…) &^ x: some byte < 0x20; in
		// (x + 0x01…) | x: some byte >= 0x7f.
		if ((x-0x20*ones)&^x|(x+ones)|x)&highs != 0 {
			return false
		}
	}
	for ; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// trimLWS trims spaces and tabs (strings.Trim builds a set per call).
func trimLWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// parseUint32 parses a decimal without sign or leading zeros.
func parseUint32(s string) (uint32, bool) {
	if s == "" || len(s) > 10 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	v := uint64(0)
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		v = v*10 + uint64(s[i]-'0')
	}
	if v > 1<<32-1 {
		return 0, false
	}
	return uint32(v), true
}

// parseVia reads "SIP/2.0/UDP host[:port][;k[=v]]...". For the top Via it
// notes the branch and where a valueless rport ends.
func (q *fastRequest) parseVia(v string, top bool) bool {
	rest, ok := strings.CutPrefix(v, "SIP/2.0/")
	if !ok {
		return false
	}
	sp := strings.IndexByte(rest, ' ')
	if sp <= 0 || !isToken(rest[:sp]) {
		return false
	}
	rest = rest[sp+1:]
	end := strings.IndexByte(rest, ';')
	if end < 0 {
		end = len(rest)
	}
	if !plainHostPort(rest[:end]) {
		return false
	}
	params := rest[end:]
	base := len(v) - len(params)
	return eachParam(params, func(k, val string, endAt int) bool {
		if !top {
			return true
		}
		switch k {
		case "branch":
			q.branch = val
		case "rport":
			if val == "" {
				q.rportAt = base + endAt
			}
		case "received":
			return false // sipgo's path overwrites it in place
		}
		return true
	})
}

// eachParam walks ";k[=v]..." (tokens, no spaces, no repeated key),
// calling f with each key, value and the offset just after it. It
// reports false for anything else or when f does. eachParam reads only
// token values; eachContactParam also reads plain quoted strings.
func eachParam(s string, f func(k, v string, end int) bool) bool {
	return walkParams(s, false, f)
}

// eachContactParam is eachParam for Contact header parameters, where RFC
// 5626 phones send +sip.instance="<urn:uuid:...>": a quoted value
// without spaces, escapes, ';' or ',' is read too, quotes included (as
// sipgo keeps them).
func eachContactParam(s string, f func(k, v string, end int) bool) bool {
	return walkParams(s, true, f)
}

// plainQuoted reports a quoted string eachContactParam reads.
func plainQuoted(v string) bool {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return false
	}
	return !strings.ContainsAny(v[1:len(v)-1], "\"\\;, \t")
}

func walkParams(s string, quoted bool, f func(k, v string, end int) bool) bool {
	var seen [8]string
	n := 0
	for off := 0; off < len(s); {
		if s[off] != ';' {
			return false
		}
		p := s[off+1:]
		if i := strings.IndexByte(p, ';'); i >= 0 {
			p = p[:i]
		}
		k, v, hasV := strings.Cut(p, "=")
		if !isToken(k) || (hasV && !isToken(v) && (!quoted || !plainQuoted(v))) || n == len(seen) {
			return false
		}
		for _, o := range seen[:n] {
			if strings.EqualFold(o, k) {
				return false
			}
		}
		seen[n] = k
		n++
		off += 1 + len(p)
		if f != nil && !f(k, v, off) {
			return false
		}
	}
	return true
}

// plainHostPort reports a host name, an IPv4 address or a bracketed IPv6
// address with an optional decimal port.
func plainHostPort(s string) bool {
	_, ok := splitPlainHostPort(s)
	return ok
}

// splitPlainHostPort returns the host of a plainHostPort (an IPv6
// address with its brackets, as sipgo keeps it in a URI).
func splitPlainHostPort(s string) (string, bool) {
	var host, port string
	hasPort := false
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 || !plainIPv6(s[1:end]) {
			return "", false
		}
		host, port = s[:end+1], s[end+1:]
		if port != "" {
			if port[0] != ':' {
				return "", false
			}
			port, hasPort = port[1:], true
		}
	} else {
		host, port, hasPort = strings.Cut(s, ":")
		if host == "" || !plainHost(host) {
			return "", false
		}
	}
	if hasPort {
		n, ok := parseUint32(port)
		return host, ok && n > 0 && n < 65536
	}
	return host, true
}

// plainIPv6 reports an IPv6 address in hex and colons only: no zone, no
// embedded IPv4.
func plainIPv6(s string) bool {
	for i := 0; i < len(s); i++ {
		if !ipv6Chars[s[i]] {
			return false
		}
	}
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is6()
}

func plainHost(s string) bool {
	for i := 0; i < len(s); i++ {
		if !hostChars[s[i]] {
			return false
		}
	}
	return s[0] != '.' && s[0] != '-'
}

// hostChars and userChars are the bytes plainHost and plainUser accept;
// ipv6Chars those of plainIPv6 (hex digits and colons).
var hostChars, userChars = charSet("-."), charSet("-_.!~*'()&=+$")

var ipv6Chars = func() (t [256]bool) {
	for _, c := range []byte("0123456789abcdefABCDEF:") {
		t[c] = true
	}
	return t
}()

// charSet is the ASCII letters and digits and the bytes of extra.
func charSet(extra string) (t [256]bool) {
	for c := range 256 {
		t[c] = isAlnum(byte(c)) || strings.IndexByte(extra, byte(c)) >= 0
	}
	return t
}

// isAlnum reports an ASCII letter or digit.
func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// plainUser reports a URI user part of unreserved characters only.
func plainUser(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !userChars[s[i]] {
			return false
		}
	}
	return true
}

// parsePlainURI reads "sip:" or "sips:", an optional plain user and "@",
// a plain host[:port] and optional token parameters.
func parsePlainURI(s string) (scheme, user, host, rendered string, ok bool) {
	switch {
	case strings.HasPrefix(s, "sip:"):
		scheme = "sip"
	case strings.HasPrefix(s, "sips:"):
		scheme = "sips"
	default:
		return "", "", "", "", false
	}
	rest := s[len(scheme)+1:]
	if at := strings.IndexByte(rest, '@'); at >= 0 {
		user, rest = rest[:at], rest[at+1:]
		if !plainUser(user) {
			return "", "", "", "", false
		}
	}
	end := strings.IndexByte(rest, ';')
	if end < 0 {
		end = len(rest)
	}
	host, ok = splitPlainHostPort(rest[:end])
	if !ok || !eachParam(rest[end:], nil) {
		return "", "", "", "", false
	}
	return scheme, user, host, s, true
}

// parseNameAddr reads [display-name] "<" plain URI ">" [;k[=v]]... and
// reports whether a tag parameter is present.
func parseNameAddr(v string) (user, host string, tag, ok bool) {
	uri, params, ok := splitNameAddr(v)
	if !ok {
		return "", "", false, false
	}
	_, user, host, _, ok = parsePlainURI(uri)
	if !ok {
		return "", "", false, false
	}
	ok = eachParam(params, func(k, _ string, _ int) bool {
		tag = tag || k == "tag"
		return true
	})
	return user, host, tag, ok
}

// splitNameAddr splits a name-addr into the URI between the angle
// brackets and the parameters after them. The display name, if any, is a
// plain quoted string or tokens.
func splitNameAddr(v string) (uri, params string, ok bool) {
	lt := strings.IndexByte(v, '<')
	if lt < 0 {
		return "", "", false
	}
	if d := trimLWS(v[:lt]); d != "" {
		if d[0] == '"' {
			if len(d) < 2 || d[len(d)-1] != '"' || strings.ContainsAny(d[1:len(d)-1], "\"\\") {
				return "", "", false
			}
		} else {
			for _, w := range strings.Fields(d) {
				if !isToken(w) {
					return "", "", false
				}
			}
		}
	}
	gt := strings.IndexByte(v[lt:], '>')
	if gt < 0 {
		return "", "", false
	}
	return v[lt+1 : lt+gt], v[lt+gt+1:], true
}

// parseContact reads "*" or a name-addr Contact with token parameters.
func parseContact(v string) (regContact, bool) {
	if v == "*" {
		return regContact{wildcard: true}, true
	}
	if strings.IndexByte(v, ',') >= 0 {
		return regContact{}, false // several contacts on one line
	}
	uri, params, ok := splitNameAddr(v)
	if !ok {
		return regContact{}, false
	}
	_, _, host, rendered, ok := parsePlainURI(uri)
	if !ok {
		return regContact{}, false
	}
	c := regContact{uri: rendered, host: host, params: params}
	other := false // an expires parameter in another case
	ok = eachContactParam(params, func(k, val string, _ int) bool {
		if k == "expires" {
			c.expires, c.hasExpires = val, true
		} else if strings.EqualFold(k, "expires") {
			other = true
		}
		return true
	})
	if !ok {
		return regContact{}, false
	}
	if c.hasExpires || other { // echo the parameters but expires
		var b strings.Builder
		_ = eachContactParam(params, func(k, val string, _ int) bool {
			if !strings.EqualFold(k, "expires") {
				b.WriteString(";" + k)
				if val != "" {
					b.WriteString("=" + val)
				}
			}
			return true
		})
		c.params = b.String()
	}
	return c, true
}

// regAnswer is the registrar's answer to a REGISTER, before it is
// written: the status and the headers it adds to those every response
// copies from the request.
type regAnswer struct {
	code   int
	reason string
	// 401: one challenge per algorithm.
	nonce []byte // in nonceBuf
	realm string
	algs  []string
	stale bool
	// 423
	minExpires int
	// 200: the bindings after the update, and Date.
	contacts []contactOut
	date     time.Time

	contactBuf [4]contactOut
	nonceBuf   [nonceLen]byte
}

type contactOut struct {
	uri, params string
	secs        int
}

func (a *regAnswer) reset() {
	*a = regAnswer{}
	a.contacts = a.contactBuf[:0]
}

// appendHeaders appends the answer's own header lines. compact leaves
// out the challenges after the preferred one (the amplification limit).
func (a *regAnswer) appendHeaders(b []byte, compact bool, dates *dateCache) []byte {
	switch {
	case len(a.nonce) > 0:
		for i, alg := range a.algs {
			if compact && i > 0 {
				break
			}
			b = append(b, "WWW-Authenticate: Digest realm="...)
			b = appendQuoted(b, a.realm)
			b = append(append(append(b, `, nonce="`...), a.nonce...), `", algorithm=`...)
			b = append(append(b, alg...), `, qop="auth"`...)
			if a.stale {
				b = append(b, ", stale=true"...)
			}
			b = append(b, "\r\n"...)
		}
	case a.minExpires > 0:
		b = strconv.AppendInt(append(b, "Min-Expires: "...), int64(a.minExpires), 10)
		b = append(b, "\r\n"...)
	}
	for _, c := range a.contacts {
		b = append(append(append(append(b, "Contact: <"...), c.uri...), '>'), c.params...)
		b = strconv.AppendInt(append(b, ";expires="...), int64(c.secs), 10)
		b = append(b, "\r\n"...)
	}
	if !a.date.IsZero() {
		b = dates.appendDate(append(b, "Date: "...), a.date)
		b = append(b, "\r\n"...)
	}
	return b
}

// dateCache holds the last second appendDate formatted: every 200 in that
// second shares it (formatting costs more than the rest of the header
// block). Each registrar has its own.
type dateCache struct{ last atomic.Pointer[formattedDate] }

type formattedDate struct {
	sec  int64
	text string
}

// appendDate appends t as an RFC 3261 §20.17 Date (RFC 1123, GMT).
func (c *dateCache) appendDate(b []byte, t time.Time) []byte {
	sec := t.Unix()
	if d := c.last.Load(); d != nil && d.sec == sec {
		return append(b, d.text...)
	}
	d := &formattedDate{sec: sec, text: t.UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT")}
	c.last.Store(d)
	return append(b, d.text...)
}

// appendQuoted appends s as a quoted-string.
func appendQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

// appendFast writes the whole answer to q: the status line, the Vias
// (the top one with received and rport filled in as RFC 3581 asks, as
// sipgo's path does), From, To with our tag if it had none, Call-ID,
// CSeq, Server unless compact, the answer's headers and an empty body.
func (r *Registrar) appendFast(b []byte, q *fastRequest, a *regAnswer, tag uint64, compact bool) []byte {
	b = strconv.AppendInt(append(b, "SIP/2.0 "...), int64(a.code), 10)
	b = append(append(append(b, ' '), a.reason...), "\r\n"...)
	for i, v := range q.vias {
		b = append(b, "Via: "...)
		if i == 0 && q.rportAt >= 0 {
			host, port := splitHostPort(q.source)
			b = append(append(append(b, v[:q.rportAt]...), '='), port...)
			b = append(append(append(b, v[q.rportAt:]...), ";received="...), host...)
		} else {
			b = append(b, v...)
		}
		b = append(b, "\r\n"...)
	}
	b = append(append(append(b, "From: "...), q.from...), "\r\n"...)
	b = append(append(b, "To: "...), q.to...)
	if !q.toTag {
		b = strconv.AppendUint(append(b, ";tag="...), tag, 36)
	}
	b = append(append(append(b, "\r\nCall-ID: "...), q.callIDRaw...), "\r\n"...)
	b = append(append(append(b, "CSeq: "...), q.cseqRaw...), "\r\n"...)
	if !compact && r.cfg.UserAgent != "" {
		b = append(append(append(b, "Server: "...), r.cfg.UserAgent...), "\r\n"...)
	}
	b = a.appendHeaders(b, compact, &r.dates)
	return append(b, "Content-Length: 0\r\n\r\n"...)
}

// splitHostPort splits "host:port" or "[v6]:port" without allocating.
func splitHostPort(s string) (host, port string) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return s, ""
	}
	return strings.Trim(s[:i], "[]"), s[i+1:]
}

// sipgoResponse renders a for sipgo's transports.
func (r *Registrar) sipgoResponse(req *sip.Request, a *regAnswer) *sip.Response {
	res := r.newResponse(req, a.code, a.reason)
	hs := string(a.appendHeaders(nil, false, &r.dates))
	for hs != "" {
		line, rest, _ := strings.Cut(hs, "\r\n")
		name, value, _ := strings.Cut(line, ": ")
		res.AppendHeader(sip.NewHeader(name, value))
		hs = rest
	}
	return res
}

// toTag is a short random To tag (sipgo's UUID would make challenges
// larger than small requests).
func toTag() uint64 { return rand.Uint64() }
