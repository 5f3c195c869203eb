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

// reply builds a response and counts it.
func (r *Registrar) reply(req *sip.Request, code int, reason, result string) *sip.Response {
	r.m.registers.WithLabelValues(result).Inc()
	return r.newResponse(req, code, reason)
}

// challenge answers 401 with one WWW-Authenticate per algorithm offered
// for realm, in the configured order (RFC 8760 lets the client take the
// first it supports).
func (r *Registrar) challenge(req *sip.Request, realm string, src netip.Addr, now time.Time, stale bool, result string) *sip.Response {
	res := r.reply(req, sip.StatusUnauthorized, "Unauthorized", result)
	nonce := r.nonces.mint(now, src, realm)
	q := quote(realm)
	st := ""
	if stale {
		st = ", stale=true"
	}
	for _, alg := range r.algorithms(realm) {
		res.AppendHeader(sip.NewHeader("WWW-Authenticate", `Digest realm=`+q+`, nonce="`+nonce+`", algorithm=`+alg+`, qop="auth"`+st))
	}
	return res
}

// algorithms returns the digest algorithms offered and accepted for realm.
func (r *Registrar) algorithms(realm string) []string {
	if algs, ok := r.domainAlgs[realm]; ok {
		return algs
	}
	return r.algs
}

// quote makes a quoted-string.
func quote(s string) string {
	if !strings.ContainsAny(s, `"\`) {
		return `"` + s + `"`
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// authFailed answers a failed authentication exactly like a first
// challenge. proven failures (the request echoed a nonce issued to its
// source, so the source receives our answers and is not spoofed) count
// against source+user and, with a higher ceiling for scanners trying many
// users, against the source alone; others cannot lock anyone out.
func (r *Registrar) authFailed(req *sip.Request, realm, ip string, src netip.Addr, user, why string, proven bool, now time.Time) *sip.Response {
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
	return r.challenge(req, realm, src, now, false, resultUnauthorized)
}

// handleRegister processes one REGISTER and returns the response to send.
func (r *Registrar) handleRegister(req *sip.Request) *sip.Response {
	now := r.clock.Now()
	to, from, callID, cseq := req.To(), req.From(), req.CallID(), req.CSeq()
	if to == nil || from == nil || callID == nil || cseq == nil || cseq.MethodName != sip.REGISTER ||
		req.Recipient.Host == "" || (req.Recipient.Scheme != "" && req.Recipient.Scheme != "sip" && req.Recipient.Scheme != "sips") {
		return r.reply(req, sip.StatusBadRequest, "Bad Request", resultBadRequest)
	}
	user := to.Address.User
	if user == "" {
		return r.reply(req, sip.StatusBadRequest, "Bad Request (To without user)", resultBadRequest)
	}
	src := req.Source()
	ip := sourceIP(src)
	srcAddr := throttle.Source(ip)
	realm := strings.ToLower(req.Recipient.Host)
	uriHost := realm // what the digest-uri must name
	if r.isOurAddress(realm) && to.Address.Host != "" {
		// A phone configured with the registrar's address: the account
		// is the To domain (RFC 3261 §10.3 step 1 leaves the domain to
		// the registrar).
		realm = strings.ToLower(to.Address.Host)
	}
	if !r.cfg.AllowThirdParty && (from.Address.User != user || !strings.EqualFold(from.Address.Host, to.Address.Host)) {
		return r.reply(req, sip.StatusForbidden, "Forbidden (third-party registration)", resultForbidden)
	}
	if r.thrSrc.Blocked(r.thrSrc.SourceKey(ip), now) || r.thrUser.Blocked(r.thrUser.SourceKey(ip, realm, user), now) {
		return r.reply(req, sip.StatusForbidden, "Forbidden", resultThrottled)
	}

	// Credentials for our realm, if any.
	var cred credentials
	found := false
	for _, h := range headersNamed(req, "Authorization") {
		c, err := parseAuthorization(h.Value())
		if err != nil {
			return r.reply(req, sip.StatusBadRequest, "Bad Request (Authorization)", resultBadRequest)
		}
		if strings.EqualFold(c.Realm, realm) {
			cred, found = c, true
			break
		}
	}
	if !found {
		return r.challenge(req, realm, srcAddr, now, false, resultChallenge)
	}

	status, issued := r.nonces.check(now, cred.Nonce, srcAddr, realm)
	switch status {
	case nonceStale:
		return r.challenge(req, realm, srcAddr, now, true, resultStale)
	case nonceInvalid: // forged, or issued to another address: proves nothing
		return r.authFailed(req, realm, ip, srcAddr, user, "nonce", false, now)
	}

	alg := algMD5 // RFC 7616 §3.4: absent means MD5
	if cred.Algorithm != "" {
		alg = canonicalAlg(cred.Algorithm)
	}
	if alg == "" || !slices.Contains(r.algorithms(realm), alg) {
		return r.authFailed(req, realm, ip, srcAddr, user, "algorithm", true, now)
	}
	nc, ncOK := parseNC(cred.NC)
	if !strings.EqualFold(cred.QOP, "auth") || !ncOK || cred.Cnonce == "" ||
		(cred.Userhash != "" && !strings.EqualFold(cred.Userhash, "false")) {
		return r.authFailed(req, realm, ip, srcAddr, user, "digest parameters", true, now)
	}

	// Look the line up; unknown users cost the same hashing as known ones.
	r.tableMu.RLock()
	l := r.byAOR[aorKey(realm, user)]
	r.tableMu.RUnlock()
	ha1, lineOK := "", false
	var suspended bool
	var lineID string
	var maxContacts int
	if l != nil {
		l.mu.Lock()
		if c := l.cfg; c != nil {
			lineOK = true
			lineID, suspended, maxContacts = c.ID, c.Suspended, c.MaxContacts
			if alg == algSHA256 {
				ha1 = c.HA1SHA256
			} else {
				ha1 = c.HA1MD5
			}
		}
		l.mu.Unlock()
	}
	if ha1 == "" {
		lineOK = false
		ha1 = dummyHA1MD5
		if alg == algSHA256 {
			ha1 = dummyHA1SHA256
		}
	}
	want := digestResponse(alg, strings.ToLower(ha1), string(req.Method), cred.URI, cred.Nonce, cred.NC, cred.Cnonce, cred.QOP)
	if !lineOK || !equalHex(want, cred.Response) || cred.Username != user || !digestURIMatches(cred.URI, uriHost) {
		return r.authFailed(req, realm, ip, srcAddr, user, "credentials", true, now)
	}
	ok, stale := r.nc.use(cred.Nonce, issued, nc, now)
	if stale {
		return r.challenge(req, realm, srcAddr, now, true, resultStale)
	}
	if !ok {
		return r.authFailed(req, realm, ip, srcAddr, user, "nonce count replay", true, now)
	}
	if suspended {
		r.log.Debug("sip register refused: line suspended", "line", lineID, "source", ip)
		return r.reply(req, sip.StatusForbidden, "Forbidden", resultForbidden)
	}
	if maxContacts <= 0 {
		maxContacts = r.cfg.MaxContacts
	}
	return r.updateBindings(req, l, lineID, maxContacts, src, now)
}

// digestURIMatches checks the digest-uri against the request's domain. Only
// the host is compared: phones differ in whether they add a port or
// parameters, and the response hash already binds the exact string.
func digestURIMatches(uri, realm string) bool {
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
func (r *Registrar) contactChanges(req *sip.Request) (changes []contactChange, wildcard bool, code int, reason string) {
	hdrExpires := int64(-1)
	if h := headerNamed(req, "Expires"); h != nil {
		v, ok := parseExpires(h.Value())
		if !ok {
			return nil, false, sip.StatusBadRequest, "Bad Request (Expires)"
		}
		hdrExpires = int64(v)
	}
	hs := headersNamed(req, "Contact")
	for _, h := range hs {
		c, ok := h.(*sip.ContactHeader)
		if !ok {
			return nil, false, sip.StatusBadRequest, "Bad Request (Contact)"
		}
		if c.Address.Wildcard {
			if len(hs) != 1 || hdrExpires != 0 {
				return nil, false, sip.StatusBadRequest, "Bad Request (Contact: * needs Expires: 0 alone)"
			}
			return nil, true, 0, ""
		}
		if c.Address.Host == "" {
			return nil, false, sip.StatusBadRequest, "Bad Request (Contact)"
		}
		exp := hdrExpires
		if v, has := c.Params.Get("expires"); has {
			e, ok := parseExpires(v)
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
		uri, params := c.Address.String(), contactParams(c)
		if !storable(uri, maxContactLen) || !storable(params, maxContactLen) {
			return nil, false, sip.StatusBadRequest, "Bad Request (Contact)"
		}
		dup := false
		for i := range changes {
			if changes[i].uri == uri {
				changes[i].expires, changes[i].params, dup = d, params, true
			}
		}
		if !dup {
			changes = append(changes, contactChange{uri: uri, params: params, expires: d})
		}
	}
	return changes, false, 0, ""
}

// updateBindings applies an authenticated REGISTER to the line.
func (r *Registrar) updateBindings(req *sip.Request, l *line, lineID string, maxContacts int, src string, now time.Time) *sip.Response {
	changes, wildcard, code, reason := r.contactChanges(req)
	switch code {
	case 0:
	case sip.StatusIntervalToBrief:
		res := r.reply(req, code, reason, resultIntervalTooBrief)
		res.AppendHeader(sip.NewHeader("Min-Expires", strconv.Itoa(int(r.cfg.MinExpires/time.Second))))
		return res
	default:
		return r.reply(req, code, reason, resultBadRequest)
	}
	callID := req.CallID().Value()
	cseq := req.CSeq().SeqNo
	ua := ""
	if h := headerNamed(req, "User-Agent"); h != nil {
		ua = h.Value()
	}
	if !storable(callID, maxCallIDLen) {
		return r.reply(req, sip.StatusBadRequest, "Bad Request (Call-ID)", resultBadRequest)
	}
	if !storable(ua, maxUserAgentLen) {
		return r.reply(req, sip.StatusBadRequest, "Bad Request (User-Agent)", resultBadRequest)
	}
	source := strings.ToLower(req.Transport()) + ":" + src

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cfg == nil || l.cfg.ID != lineID || l.cfg.Suspended {
		// removed or suspended while we were authenticating
		return r.reply(req, sip.StatusForbidden, "Forbidden", resultForbidden)
	}
	// RFC 3261 §10.3 step 7: a same-Call-ID request must have a higher CSeq
	// than every binding it touches, or the whole update is aborted.
	outOfOrder := func(b *Binding) bool { return b.CallID == callID && cseq <= b.CSeq }
	if wildcard {
		for i := range l.contacts {
			if outOfOrder(&l.contacts[i]) {
				return r.reply(req, sip.StatusInternalServerError, "Out of order CSeq", resultOutOfOrder)
			}
		}
	} else {
		adds := 0
		for _, c := range changes {
			if i := l.find(c.uri); i >= 0 && outOfOrder(&l.contacts[i]) {
				return r.reply(req, sip.StatusInternalServerError, "Out of order CSeq", resultOutOfOrder)
			}
			if c.expires > 0 {
				adds++
			}
		}
		if adds > maxContacts {
			return r.reply(req, sip.StatusForbidden, "Too Many Contacts", resultForbidden)
		}
	}

	changed := false
	if wildcard {
		if len(l.contacts) > 0 {
			r.active.Add(-int64(len(l.contacts)))
			l.contacts = nil
			r.wb.removeLine(lineID)
			changed = true
		}
	} else {
		for _, c := range changes {
			i := l.find(c.uri)
			if c.expires == 0 {
				if i >= 0 {
					l.contacts = append(l.contacts[:i], l.contacts[i+1:]...)
					r.active.Add(-1)
					r.wb.remove(lineID, c.uri)
					changed = true
				}
				continue
			}
			b := Binding{
				LineID: lineID, ContactURI: strings.Clone(c.uri), Params: c.params, Source: source, UserAgent: strings.Clone(ua),
				CallID: strings.Clone(callID), CSeq: cseq, ExpiresAt: now.Add(c.expires), UpdatedAt: now,
			}
			if i >= 0 {
				if l.contacts[i].UserAgent == ua {
					b.UserAgent = l.contacts[i].UserAgent // share the string
				}
				l.contacts[i] = b
			} else {
				if len(l.contacts) >= maxContacts {
					r.evictOldestLocked(l, lineID, changes, maxContacts-1)
				}
				l.contacts = append(l.contacts, b)
				r.active.Add(1)
			}
			r.wb.save(b)
			changed = true
		}
	}
	if changed {
		r.emitLocked(lineID, l, now)
	}

	res := r.reply(req, sip.StatusOK, "OK", resultOK)
	for _, b := range l.contacts {
		secs := int(b.ExpiresAt.Sub(now).Round(time.Second) / time.Second)
		res.AppendHeader(sip.NewHeader("Contact", "<"+b.ContactURI+">"+b.Params+";expires="+strconv.Itoa(max(secs, 0))))
	}
	res.AppendHeader(sip.NewHeader("Date", now.UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT")))
	return res
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
