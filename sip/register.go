package sip

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emiago/sipgo/sip"

	"github.com/pbxd/pbxd/internal/throttle"
)

// dummy HA1 values hashed for unknown users, so that they cost the same as
// a wrong password.
const (
	dummyHA1MD5    = "00000000000000000000000000000000"
	dummyHA1SHA256 = "0000000000000000000000000000000000000000000000000000000000000000"
)

// maxExpiresValue caps what we parse from Expires values (RFC 3261 allows up
// to 2^32-1 seconds).
const maxExpiresValue = 1<<32 - 1

// serveTx answers a request sipgo received over TCP or TLS.
func (r *Registrar) serveTx(req *sip.Request, tx sip.ServerTransaction) {
	r.gate.RLock()
	defer r.gate.RUnlock()
	if r.closed {
		return
	}
	res := r.answer(req)
	if res == nil {
		return
	}
	if err := tx.Respond(res); err != nil {
		r.m.unsent.WithLabelValues("write_error").Inc()
		r.log.Debug("sip respond", "err", err)
	}
}

// allowed is the Allow header value: what the registrar serves.
const allowed = "REGISTER, OPTIONS"

// knownMethods are the RFC 3261 and extension methods answered 405 Method
// Not Allowed; anything else is 501 Not Implemented (RFC 3261 §21.4.6).
var knownMethods = map[sip.RequestMethod]bool{
	sip.INVITE: true, sip.CANCEL: true, sip.BYE: true, sip.SUBSCRIBE: true, sip.NOTIFY: true,
	sip.REFER: true, sip.INFO: true, sip.MESSAGE: true, sip.PRACK: true, sip.UPDATE: true, sip.PUBLISH: true,
}

// answer returns the single response to req, nil for none. It keeps no
// state for requests it does not serve: they are refused once, never with
// a retransmitting transaction.
func (r *Registrar) answer(req *sip.Request) *sip.Response {
	if req.IsAck() {
		return nil // never answer an ACK
	}
	if v := req.Via(); v == nil || v.Transport == "" || v.Host == "" ||
		req.CallID() == nil || req.CSeq() == nil || req.From() == nil || req.To() == nil {
		// No answer could be routed or matched (RFC 3261 §8.1.1): this is
		// noise, and silence costs least.
		r.m.dropped.WithLabelValues("malformed").Inc()
		return nil
	}
	if !strings.EqualFold(req.SipVersion, "SIP/2.0") {
		res := r.newResponse(req, sip.StatusVersionNotSupported, "Version Not Supported")
		res.SipVersion = "SIP/2.0"
		return res
	}
	if req.Method != sip.CANCEL {
		if hs := headersNamed(req, "Require"); len(hs) > 0 {
			// RFC 3261 §8.2.2.3: we support no extension a client could
			// require.
			res := r.newResponse(req, sip.StatusBadExtension, "Bad Extension")
			for _, h := range hs {
				res.AppendHeader(sip.NewHeader("Unsupported", h.Value()))
			}
			if req.Method == sip.REGISTER {
				r.m.registers.WithLabelValues(resultBadRequest).Inc()
			}
			return res
		}
	}
	switch req.Method {
	case sip.REGISTER:
		return r.handleRegister(req)
	case sip.OPTIONS:
		res := r.newResponse(req, sip.StatusOK, "OK")
		res.AppendHeader(sip.NewHeader("Allow", allowed))
		res.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
		return res
	}
	var res *sip.Response
	if knownMethods[req.Method] {
		res = r.newResponse(req, sip.StatusMethodNotAllowed, "Method Not Allowed")
	} else {
		res = r.newResponse(req, sip.StatusNotImplemented, "Not Implemented")
	}
	res.AppendHeader(sip.NewHeader("Allow", allowed))
	return res
}

// newResponse builds a response with a short To tag (sipgo's UUID tag
// would make challenges larger than small requests, and UDP answers to
// unauthenticated sources may not exceed the request) and the Server header.
//
// It copies what sipgo's NewResponseFromRequest copies (RFC 3261 §8.2.6.2:
// the Vias, with received/rport for an empty rport (RFC 3581), From, To,
// Call-ID and CSeq; Record-Route for a 2xx to another method than
// REGISTER, §20 table 3) but shares the request's header values instead of
// cloning them: a request is answered and dropped, so the clones were
// garbage, and sipgo found the Vias by lower-casing every header name.
func (r *Registrar) newResponse(req *sip.Request, code int, reason string) *sip.Response {
	to := req.To()
	if to != nil && !to.Params.Has("tag") {
		// Every answer to this request carries the same tag.
		to.Params.Add("tag", strconv.FormatUint(rand.Uint64(), 36))
	}
	res := sip.NewResponse(code, reason)
	res.SipVersion = req.SipVersion
	copyRR := code >= 200 && code < 300 && req.Method != sip.REGISTER && !req.IsAck()
	var top *sip.ViaHeader
	for _, h := range req.Headers() {
		switch v := h.(type) {
		case *sip.ViaHeader:
			if top == nil {
				top = v
			}
			res.AppendHeader(v)
		case *sip.RecordRouteHeader:
			if copyRR {
				res.AppendHeader(v)
			}
		}
	}
	if h := req.From(); h != nil {
		res.AppendHeader(h)
	}
	if to != nil {
		res.AppendHeader(to)
	}
	if h := req.CallID(); h != nil {
		res.AppendHeader(h)
	}
	if h := req.CSeq(); h != nil {
		res.AppendHeader(h)
	}
	if top != nil {
		if v, ok := top.Params.Get("rport"); ok && v == "" {
			host, port, _ := net.SplitHostPort(req.Source())
			top.Params.Add("rport", port)
			top.Params.Add("received", host)
		}
	}
	res.SetBody(nil)
	res.SetTransport(req.Transport())
	res.SetDestination(req.Source())
	if r.cfg.UserAgent != "" {
		res.AppendHeader(sip.NewHeader("Server", r.cfg.UserAgent))
	}
	return res
}

// headersNamed returns m's headers called name (any case). sipgo's
// GetHeaders lower-cases every header name of the message on each call,
// allocating for most (e.g. "User-Agent"): a REGISTER looks up five names.
func headersNamed(m *sip.Request, name string) []sip.Header {
	var out []sip.Header
	for _, h := range m.Headers() {
		if strings.EqualFold(h.Name(), name) {
			out = append(out, h)
		}
	}
	return out
}

// headerNamed returns m's first header called name (any case), or nil.
func headerNamed(m *sip.Request, name string) sip.Header {
	for _, h := range m.Headers() {
		if strings.EqualFold(h.Name(), name) {
			return h
		}
	}
	return nil
}

// sourceIP returns the host part of a "host:port" source address.
func sourceIP(src string) string {
	if h, _, err := net.SplitHostPort(src); err == nil {
		return h
	}
	return src
}

// reply sets the answer's status and counts it.
func (r *Registrar) reply(a *regAnswer, code int, reason, result string) {
	r.m.result(result).Inc()
	a.code, a.reason = code, reason
}

// challenge answers 401 with one WWW-Authenticate per algorithm offered
// for realm, in the configured order (RFC 8760 lets the client take the
// first it supports).
func (r *Registrar) challenge(a *regAnswer, realm string, src netip.Addr, now time.Time, stale bool, result string) {
	r.reply(a, sip.StatusUnauthorized, "Unauthorized", result)
	a.nonce = r.nonces.appendMint(a.nonceBuf[:0], now, src, realm)
	a.realm, a.algs, a.stale = realm, r.algorithms(realm), stale
}

// algorithms returns the digest algorithms offered and accepted for realm.
func (r *Registrar) algorithms(realm string) []string {
	if algs, ok := r.domainAlgs[realm]; ok {
		return algs
	}
	return r.algs
}

// authFailed answers a failed authentication exactly like a first
// challenge. proven failures (the request echoed a nonce issued to its
// source, so the source receives our answers and is not spoofed) count
// against source+user and, with a higher ceiling for scanners trying many
// users, against the source alone; others cannot lock anyone out.
func (r *Registrar) authFailed(a *regAnswer, realm, ip string, src netip.Addr, user, why string, proven bool, now time.Time) {
	r.m.authFailures.Inc()
	if proven {
		if r.thrUser.Fail(r.thrUser.SourceKey(ip, realm, user), now) {
			r.m.throttled.Inc()
			r.log.Warn("sip source blocked for a user after repeated authentication failures",
				"source", ip, "user", user, "realm", realm, "block", r.cfg.ThrottleBlock)
		}
		if r.thrSrc.Fail(r.thrSrc.SourceKey(ip), now) {
			r.m.throttled.Inc()
			r.log.Warn("sip source blocked after repeated authentication failures",
				"source", ip, "block", r.cfg.ThrottleBlock, "last_user", user, "realm", realm)
		}
	}
	r.log.Debug("sip authentication failed", "source", ip, "user", user, "realm", realm, "reason", why, "counted", proven)
	r.challenge(a, realm, src, now, false, resultUnauthorized)
}

// handleRegister answers a REGISTER sipgo parsed (TCP, TLS, and UDP
// requests the fast path leaves to sipgo).
func (r *Registrar) handleRegister(req *sip.Request) *sip.Response {
	var q regRequest
	q.fromSipgo(req)
	var a regAnswer
	a.reset()
	r.register(&q, &a)
	return r.sipgoResponse(req, &a)
}

// register processes one REGISTER into a: it checks the request and its
// source, authenticates it against the line of the account, and applies it.
func (r *Registrar) register(q *regRequest, a *regAnswer) {
	now := r.clock.Now()
	t, ok := r.registerTarget(q, a, now)
	if !ok {
		return
	}
	ln, ok := r.authenticate(q, a, &t, now)
	if !ok {
		return
	}
	if ln.suspended {
		r.log.Debug("sip register refused: line suspended", "line", ln.id, "source", t.ip)
		r.reply(a, sip.StatusForbidden, "Forbidden", resultForbidden)
		return
	}
	maxContacts := ln.maxContacts
	if maxContacts <= 0 {
		maxContacts = r.cfg.MaxContacts
	}
	r.updateBindings(q, a, ln.l, ln.id, maxContacts, now)
}

// regTarget is the account a REGISTER addresses and the source it came from.
type regTarget struct {
	user, realm string
	uriHost     string // what the digest-uri must name
	ip          string
	src         netip.Addr
}

// registerTarget checks the request's shape and names its account; a
// malformed request, a third-party registration when those are not
// allowed, or a throttled source is answered here (ok false).
func (r *Registrar) registerTarget(q *regRequest, a *regAnswer, now time.Time) (t regTarget, ok bool) {
	if !q.complete || q.cseqMethod != string(sip.REGISTER) ||
		q.ruriHost == "" || (q.ruriScheme != "" && q.ruriScheme != "sip" && q.ruriScheme != "sips") {
		r.reply(a, sip.StatusBadRequest, "Bad Request", resultBadRequest)
		return t, false
	}
	t.user = q.toUser
	if t.user == "" {
		r.reply(a, sip.StatusBadRequest, "Bad Request (To without user)", resultBadRequest)
		return t, false
	}
	t.ip = sourceIP(q.source)
	t.src = throttle.Source(t.ip)
	t.realm = strings.ToLower(q.ruriHost)
	t.uriHost = t.realm
	if r.isOurAddress(t.realm) && q.toHost != "" {
		// A phone configured with the registrar's address: the account
		// is the To domain (RFC 3261 §10.3 step 1 leaves the domain to
		// the registrar).
		t.realm = strings.ToLower(q.toHost)
	}
	if !r.cfg.AllowThirdParty && (q.fromUser != t.user || !strings.EqualFold(q.fromHost, q.toHost)) {
		r.reply(a, sip.StatusForbidden, "Forbidden (third-party registration)", resultForbidden)
		return t, false
	}
	if r.thrSrc.Blocked(r.thrSrc.SourceKeyOf(t.src, t.ip), now) || r.thrUser.Blocked(r.thrUser.SourceKeyOf(t.src, t.ip, t.realm, t.user), now) {
		r.reply(a, sip.StatusForbidden, "Forbidden", resultThrottled)
		return t, false
	}
	return t, true
}

// authenticate checks the request's digest credentials for t and returns
// the line they prove; a missing, stale or wrong credential is answered
// here (ok false), with a challenge or as a counted failure.
func (r *Registrar) authenticate(q *regRequest, a *regAnswer, t *regTarget, now time.Time) (_ regLine, ok bool) {
	cred, issued, ok := r.presentedCredentials(q, a, t, now)
	if !ok {
		return regLine{}, false
	}
	alg := algMD5 // RFC 7616 §3.4: absent means MD5
	if cred.Algorithm != "" {
		alg = canonicalAlg(cred.Algorithm)
	}
	if alg == "" || !slices.Contains(r.algorithms(t.realm), alg) {
		r.authFailed(a, t.realm, t.ip, t.src, t.user, "algorithm", true, now)
		return regLine{}, false
	}
	nc, ncOK := parseNC(cred.NC)
	if !strings.EqualFold(cred.QOP, "auth") || !ncOK || cred.Cnonce == "" ||
		(cred.Userhash != "" && !strings.EqualFold(cred.Userhash, "false")) {
		r.authFailed(a, t.realm, t.ip, t.src, t.user, "digest parameters", true, now)
		return regLine{}, false
	}
	ln := r.lineFor(t.realm, t.user, alg)
	var wantBuf [64]byte // a hex SHA-256
	want := appendDigestResponse(wantBuf[:0], alg, strings.ToLower(ln.ha1), string(sip.REGISTER), cred.URI, cred.Nonce, cred.NC, cred.Cnonce, cred.QOP)
	if !ln.ok || !equalHexBytes(want, cred.Response) || cred.Username != t.user || !digestURIMatches(cred.URI, t.uriHost) {
		r.authFailed(a, t.realm, t.ip, t.src, t.user, "credentials", true, now)
		return regLine{}, false
	}
	ok, stale := r.nc.use(cred.Nonce, issued, nc, now)
	if stale {
		r.challenge(a, t.realm, t.src, now, true, resultStale)
		return regLine{}, false
	}
	if !ok {
		r.authFailed(a, t.realm, t.ip, t.src, t.user, "nonce count replay", true, now)
		return regLine{}, false
	}
	return ln, true
}

// presentedCredentials returns the request's credentials for t's realm
// and when their nonce was issued. A request without them is challenged;
// an unparsable Authorization, or a stale or invalid nonce, is answered
// (ok false).
func (r *Registrar) presentedCredentials(q *regRequest, a *regAnswer, t *regTarget, now time.Time) (_ credentials, issued time.Time, ok bool) {
	var cred credentials
	found := false
	for _, h := range q.auth {
		c, err := parseAuthorization(h)
		if err != nil {
			r.reply(a, sip.StatusBadRequest, "Bad Request (Authorization)", resultBadRequest)
			return cred, issued, false
		}
		if strings.EqualFold(c.Realm, t.realm) {
			cred, found = c, true
			break
		}
	}
	if !found {
		r.challenge(a, t.realm, t.src, now, false, resultChallenge)
		return cred, issued, false
	}
	status, issued := r.nonces.check(now, cred.Nonce, t.src, t.realm)
	switch status {
	case nonceStale:
		r.challenge(a, t.realm, t.src, now, true, resultStale)
		return cred, issued, false
	case nonceInvalid: // forged, or issued to another address: proves nothing
		r.authFailed(a, t.realm, t.ip, t.src, t.user, "nonce", false, now)
		return cred, issued, false
	}
	return cred, issued, true
}

// regLine is what authentication read from an account's line.
type regLine struct {
	l           *line // nil for an unknown account
	ok          bool  // the line exists and has a secret for the algorithm
	ha1         string
	id          string
	suspended   bool
	maxContacts int
}

// lineFor looks up the line of realm and user and its HA1 for alg. An
// unknown user gets a dummy HA1, so that it costs the same hashing as a
// known one.
func (r *Registrar) lineFor(realm, user, alg string) regLine {
	var kb [128]byte
	key := append(append(append(kb[:0], realm...), 0), user...) // aorKey, without allocating
	r.tableMu.RLock()
	l := r.byAOR[string(key)]
	r.tableMu.RUnlock()
	ln := regLine{l: l}
	if l != nil {
		l.mu.Lock()
		if c := l.cfg; c != nil {
			ln.ok = true
			ln.id, ln.suspended, ln.maxContacts = c.ID, c.Suspended, c.MaxContacts
			if alg == algSHA256 {
				ln.ha1 = c.HA1SHA256
			} else {
				ln.ha1 = c.HA1MD5
			}
		}
		l.mu.Unlock()
	}
	if ln.ha1 == "" {
		ln.ok = false
		ln.ha1 = dummyHA1MD5
		if alg == algSHA256 {
			ln.ha1 = dummyHA1SHA256
		}
	}
	return ln
}

// digestURIMatches checks the digest-uri against the request's domain. Only
// the host is compared: phones differ in whether they add a port or
// parameters, and the response hash already binds the exact string.
func digestURIMatches(uri, realm string) bool {
	if _, _, host, _, ok := parsePlainURI(uri); ok {
		return strings.EqualFold(host, realm) // the common shape, without sipgo's allocations
	}
	var u sip.Uri
	if err := sip.ParseUri(uri, &u); err != nil {
		return false
	}
	return strings.EqualFold(u.Host, realm)
}

// Bounds of the values a binding stores (bytes).
const (
	maxContactLen   = 2048 // push-notification contacts run to a few hundred
	maxCallIDLen    = 256
	maxUserAgentLen = 512
)

// storable reports whether s may be stored and shown as is: at most limit
// bytes of valid UTF-8 without control characters (tab aside). A value
// PostgreSQL would refuse (NUL, invalid UTF-8) must be refused before the
// REGISTER is acknowledged, not fail in the write-behind queue after.
func storable(s string, limit int) bool {
	if len(s) > limit {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return utf8.ValidString(s)
}

// parseExpires parses a delta-seconds value.
func parseExpires(s string) (uint32, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 10 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > maxExpiresValue {
		return 0, false
	}
	return uint32(v), true
}

// contactChange is one Contact of a REGISTER after validation.
type contactChange struct {
	uri     string
	params  string        // header parameters but expires, ";k=v;..."
	expires time.Duration // 0: remove
}

// contactParams returns the Contact header parameters to echo (RFC 5626
// §6: +sip.instance and reg-id; RFC 3840 feature tags), expires aside.
func contactParams(c *sip.ContactHeader) string {
	if len(c.Params) == 0 || (len(c.Params) == 1 && c.Params.Has("expires")) {
		return ""
	}
	var b strings.Builder
	for _, kv := range c.Params {
		if strings.EqualFold(kv.K, "expires") {
			continue
		}
		b.WriteByte(';')
		b.WriteString(kv.K)
		if kv.V != "" {
			b.WriteByte('=')
			b.WriteString(kv.V)
		}
	}
	return b.String()
}

// contactChanges validates the Contact and Expires headers. It returns the
// changes, whether Contact was "*", and an error response code (0 if fine).
func (r *Registrar) contactChanges(q *regRequest, changes []contactChange) (_ []contactChange, wildcard bool, code int, reason string) {
	hdrExpires := int64(-1)
	if q.hasExpires {
		v, ok := parseExpires(q.expires)
		if !ok {
			return nil, false, sip.StatusBadRequest, "Bad Request (Expires)"
		}
		hdrExpires = int64(v)
	}
	for _, c := range q.contacts {
		if c.bad {
			return nil, false, sip.StatusBadRequest, "Bad Request (Contact)"
		}
		if c.wildcard {
			if len(q.contacts) != 1 || hdrExpires != 0 {
				return nil, false, sip.StatusBadRequest, "Bad Request (Contact: * needs Expires: 0 alone)"
			}
			return nil, true, 0, ""
		}
		if c.host == "" {
			return nil, false, sip.StatusBadRequest, "Bad Request (Contact)"
		}
		exp := hdrExpires
		if c.hasExpires {
			e, ok := parseExpires(c.expires)
			if !ok {
				return nil, false, sip.StatusBadRequest, "Bad Request (Contact expires)"
			}
			exp = int64(e)
		}
		d := r.cfg.DefaultExpires
		if exp >= 0 {
			d = time.Duration(exp) * time.Second
		}
		if d != 0 && d < r.cfg.MinExpires {
			return nil, false, sip.StatusIntervalToBrief, "Interval Too Brief"
		}
		d = min(d, r.cfg.MaxExpires)
		if !storable(c.uri, maxContactLen) || !storable(c.params, maxContactLen) {
			return nil, false, sip.StatusBadRequest, "Bad Request (Contact)"
		}
		dup := false
		for i := range changes {
			if changes[i].uri == c.uri {
				changes[i].expires, changes[i].params, dup = d, c.params, true
			}
		}
		if !dup {
			changes = append(changes, contactChange{uri: c.uri, params: c.params, expires: d})
		}
	}
	return changes, false, 0, ""
}

// updateBindings applies an authenticated REGISTER to the line.
func (r *Registrar) updateBindings(q *regRequest, a *regAnswer, l *line, lineID string, maxContacts int, now time.Time) {
	var buf [2]contactChange // room for a phone's contacts without allocating
	changes, wildcard, code, reason := r.contactChanges(q, buf[:0])
	switch code {
	case 0:
	case sip.StatusIntervalToBrief:
		r.reply(a, code, reason, resultIntervalTooBrief)
		a.minExpires = int(r.cfg.MinExpires / time.Second)
		return
	default:
		r.reply(a, code, reason, resultBadRequest)
		return
	}
	if !storable(q.callID, maxCallIDLen) {
		r.reply(a, sip.StatusBadRequest, "Bad Request (Call-ID)", resultBadRequest)
		return
	}
	if !storable(q.userAgent, maxUserAgentLen) {
		r.reply(a, sip.StatusBadRequest, "Bad Request (User-Agent)", resultBadRequest)
		return
	}
	u := bindingUpdate{q: q, lineID: lineID, wildcard: wildcard, maxContacts: maxContacts, now: now}

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cfg == nil || l.cfg.ID != lineID || l.cfg.Suspended {
		// removed or suspended while we were authenticating
		r.reply(a, sip.StatusForbidden, "Forbidden", resultForbidden)
		return
	}
	if code, reason, result := u.refusalLocked(l, changes); code != 0 {
		r.reply(a, code, reason, result)
		return
	}
	if r.applyLocked(l, &u, changes) {
		r.emitLocked(lineID, l, now)
	}

	r.reply(a, sip.StatusOK, "OK", resultOK)
	for _, b := range l.contacts {
		secs := int(b.ExpiresAt.Sub(now).Round(time.Second) / time.Second)
		a.contacts = append(a.contacts, contactOut{uri: b.ContactURI, params: b.Params, secs: max(secs, 0)})
	}
	a.date = now
}

// bindingUpdate is a validated REGISTER's change to a line's bindings,
// but the contact changes: a binding keeps lineID, and the escape analysis
// would move the changes' stack buffer to the heap with it.
type bindingUpdate struct {
	q           *regRequest
	lineID      string
	wildcard    bool // Contact: *, which removes every binding
	maxContacts int
	now         time.Time
}

// refusalLocked returns why u and changes may not be applied to l, code 0
// if they may.
// RFC 3261 §10.3 step 7: a same-Call-ID request must have a higher CSeq
// than every binding it touches, or the whole update is aborted.
func (u *bindingUpdate) refusalLocked(l *line, changes []contactChange) (code int, reason, result string) {
	outOfOrder := func(b *Binding) bool { return b.CallID == u.q.callID && u.q.cseq <= b.CSeq }
	if u.wildcard {
		for i := range l.contacts {
			if outOfOrder(&l.contacts[i]) {
				return sip.StatusInternalServerError, "Out of order CSeq", resultOutOfOrder
			}
		}
		return 0, "", ""
	}
	adds := 0
	for _, c := range changes {
		if i := l.find(c.uri); i >= 0 && outOfOrder(&l.contacts[i]) {
			return sip.StatusInternalServerError, "Out of order CSeq", resultOutOfOrder
		}
		if c.expires > 0 {
			adds++
		}
	}
	if adds > u.maxContacts {
		return sip.StatusForbidden, "Too Many Contacts", resultForbidden
	}
	return 0, "", ""
}

// applyLocked applies u and changes to l's bindings and reports whether
// it changed them.
func (r *Registrar) applyLocked(l *line, u *bindingUpdate, changes []contactChange) (changed bool) {
	if u.wildcard {
		if len(l.contacts) == 0 {
			return false
		}
		r.active.Add(-int64(len(l.contacts)))
		l.contacts = nil
		r.wb.removeLine(u.lineID)
		return true
	}
	for _, c := range changes {
		i := l.find(c.uri)
		if c.expires == 0 {
			if i >= 0 {
				l.contacts = append(l.contacts[:i], l.contacts[i+1:]...)
				r.active.Add(-1)
				r.wb.remove(u.lineID, c.uri)
				changed = true
			}
			continue
		}
		r.bindLocked(l, i, u, c, changes)
		changed = true
	}
	return changed
}

// bindLocked stores the binding of c: it refreshes l.contacts[i], or adds
// a binding (i < 0), evicting the oldest when the line has too many.
func (r *Registrar) bindLocked(l *line, i int, u *bindingUpdate, c contactChange, changes []contactChange) {
	q := u.q
	// The request's strings may share the datagram's memory: a binding
	// keeps copies, or the strings of the binding it refreshes when they
	// are equal.
	b := Binding{LineID: u.lineID, CSeq: q.cseq, ExpiresAt: u.now.Add(c.expires), UpdatedAt: u.now}
	var none Binding
	old := &none
	if i >= 0 {
		old = &l.contacts[i]
	}
	b.ContactURI = reuse(old.ContactURI, c.uri)
	b.Params = reuse(old.Params, c.params)
	b.UserAgent = reuse(old.UserAgent, q.userAgent)
	b.CallID = reuse(old.CallID, q.callID)
	if old.Source != "" && sourceIs(old.Source, q.transport, q.source) {
		b.Source = old.Source
	} else {
		b.Source = strings.ToLower(q.transport) + ":" + q.source
	}
	if i >= 0 {
		l.contacts[i] = b
	} else {
		if len(l.contacts) >= u.maxContacts {
			r.evictOldestLocked(l, u.lineID, changes, u.maxContacts-1)
		}
		l.contacts = append(l.contacts, b)
		r.active.Add(1)
	}
	r.wb.save(b)
}

// reuse returns old if it equals s, else a copy of s.
func reuse(old, s string) string {
	if old == s {
		return old
	}
	return strings.Clone(s)
}

// sourceIs reports whether source is lower(transport) + ":" + src.
func sourceIs(source, transport, src string) bool {
	return len(source) == len(transport)+1+len(src) && strings.EqualFold(source[:len(transport)], transport) &&
		source[len(transport)] == ':' && source[len(transport)+1:] == src
}

// evictOldestLocked drops the least recently refreshed bindings not named in
// this request until at most keep remain.
func (r *Registrar) evictOldestLocked(l *line, lineID string, changes []contactChange, keep int) {
	inRequest := func(uri string) bool {
		for _, c := range changes {
			if c.uri == uri {
				return true
			}
		}
		return false
	}
	for len(l.contacts) > keep {
		oldest := -1
		for i := range l.contacts {
			if inRequest(l.contacts[i].ContactURI) {
				continue
			}
			if oldest < 0 || l.contacts[i].UpdatedAt.Before(l.contacts[oldest].UpdatedAt) {
				oldest = i
			}
		}
		if oldest < 0 {
			return
		}
		r.wb.remove(lineID, l.contacts[oldest].ContactURI)
		l.contacts = append(l.contacts[:oldest], l.contacts[oldest+1:]...)
		r.active.Add(-1)
	}
}
