package sip

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// sippRegister is a REGISTER as sipp's benchmark scenario sends it.
const sippRegister = "REGISTER sip:bench.example SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 127.0.0.1:5072;branch=z9hG4bK-1-2;rport\r\n" +
	"Max-Forwards: 70\r\n" +
	"From: <sip:100000@bench.example>;tag=1-100000\r\n" +
	"To: <sip:100000@bench.example>\r\n" +
	"Call-ID: 1-100000@127.0.0.1\r\n" +
	"CSeq: 1 REGISTER\r\n" +
	"Contact: <sip:100000@127.0.0.1:5072;transport=UDP>\r\n" +
	"Expires: 3600\r\n" +
	"User-Agent: sipp-register-bench\r\n" +
	"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, MESSAGE, NOTIFY, REFER, UPDATE\r\n" +
	"Supported: path, gruu, outbound\r\n" +
	"Content-Length: 0\r\n\r\n"

// ipv6Register is a REGISTER from a phone on IPv6 (addresses in Via and
// Contact).
var ipv6Register = strings.NewReplacer("Via: SIP/2.0/UDP 127.0.0.1:5072;", "Via: SIP/2.0/UDP [2001:db8::10]:5060;",
	"Contact: <sip:100000@127.0.0.1:5072;transport=UDP>", "Contact: <sip:100000@[2001:db8::10]:5060>").Replace(sippRegister)

// rfc5626Contact is the Contact of a phone using SIP outbound (RFC 5626).
const rfc5626Contact = `Contact: <sip:100@192.0.2.10:5060;transport=udp;ob>;reg-id=1;+sip.instance="<urn:uuid:00000000-0000-1000-8000-000B82E1A2B3>"`

// FuzzParseFast checks the fast path against sipgo: every datagram
// parseFast accepts, sipgo parses too, as a REGISTER the general path
// would not drop, and both give the registrar the same request (so
// register answers it the same way); the answer written for it is a
// response sipgo reads, echoing the request's Call-ID, CSeq, From, To
// and Vias, with received and rport where sipgo's path puts them.
func FuzzParseFast(f *testing.F) {
	p := newPhone("100", "pw", "acme.example")
	for _, s := range []string{
		sippRegister,
		p.raw("Contact: <sip:100@192.0.2.10:5060>;expires=60;reg-id=1", "Expires: 600"),
		p.raw(rfc5626Contact, "Expires: 600"),
		ipv6Register,
		strings.Replace(ipv6Register, "sip:acme.example SIP", "sip:[2001:DB8::1]:5060 SIP", 1),
		strings.Replace(ipv6Register, "[2001:db8::10]:5060;branch", "[::1];branch", 1),
		p.raw(`Contact: <sip:100@192.0.2.10:5060;ob>;+sip.instance="<urn:uuid:1>";expires=60;reg-id=2`),
		p.raw(`Contact: <sip:100@192.0.2.10:5060>;+sip.instance="";x="=;"`),
		p.raw("Contact: \"Desk\" <sips:100@phone.example;transport=tls>;q=0.5;Expires=30", "Authorization: Digest username=\"100\""),
		p.raw("Contact: *", "Expires: 0"),
		strings.Replace(sippRegister, "To: <sip:100000@bench.example>", "To: Bob <sip:100000@bench.example>;tag=x", 1),
		strings.Replace(sippRegister, "Via: SIP/2.0/UDP 127.0.0.1:5072;branch=z9hG4bK-1-2;rport\r\n",
			"Via: SIP/2.0/UDP 127.0.0.1:5072;rport;branch=z9hG4bK-1-2\r\nVia: SIP/2.0/TCP proxy.example;branch=z9hG4bK-9\r\n", 1),
		strings.Replace(sippRegister, "CSeq: 1 REGISTER", "CSeq: 2147483647 REGISTER", 1),
		strings.Replace(sippRegister, ";rport\r\n", ";received=192.0.2.1;rport\r\n", 1),
		strings.Replace(sippRegister, "sip:bench.example SIP", "sip:bench.example:5060;transport=udp SIP", 1),
	} {
		f.Add(s)
	}
	r := setup(f, nil).r
	f.Fuzz(func(t *testing.T, s string) {
		var q fastRequest
		if !parseFast(s, []byte(s), &q) {
			return
		}
		q.source = "192.0.2.10:5060"
		m, err := sip.ParseMessage([]byte(s))
		if err != nil {
			t.Fatalf("fast path accepted what sipgo refuses (%v): %q", err, s)
		}
		req, ok := m.(*sip.Request)
		if !ok || req.Method != sip.REGISTER || req.SipVersion != "SIP/2.0" {
			t.Fatalf("fast path accepted a non-REGISTER: %q", s)
		}
		req.SetSource(q.source)
		req.SetTransport("UDP")
		v := req.Via()
		if v == nil || v.Transport == "" || v.Host == "" || len(headersNamed(req, "Require")) > 0 {
			t.Fatalf("fast path accepted what the general path drops or refuses: %q", s)
		}
		var want regRequest
		want.fromSipgo(req)
		if d := diffRequests(&q.regRequest, &want); d != "" {
			t.Fatalf("%s for %q", d, s)
		}
		branch, _ := v.Params.Get("branch")
		rport, hasRport := v.Params.Get("rport")
		if q.branch != branch || (q.rportAt >= 0) != (hasRport && rport == "") || q.toTag != req.To().Params.Has("tag") {
			t.Fatalf("Via/To parameters: fast %q %d %v, sipgo %q %q %v for %q", q.branch, q.rportAt, q.toTag, branch, rport, req.To().Params.Has("tag"), s)
		}
		if n := len(req.GetHeaders("Via")); n != len(q.vias) {
			t.Fatalf("%d Vias, sipgo %d", len(q.vias), n)
		}

		// Both renderings of one answer read alike.
		var a regAnswer
		a.reset()
		a.code, a.reason = 200, "OK"
		a.contacts = append(a.contacts, contactOut{uri: "sip:100@192.0.2.10:5060", params: ";reg-id=1", secs: 60})
		a.date = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
		out := r.appendFast(nil, &q, &a, 12345, false)
		fast, err := sip.ParseMessage(out)
		if err != nil {
			t.Fatalf("our answer does not parse: %v", err)
		}
		got := fast.(*sip.Response)
		ref := r.sipgoResponse(req, &a)
		if got.CallID().Value() != ref.CallID().Value() || got.CSeq().Value() != ref.CSeq().Value() ||
			got.From().Address.String() != ref.From().Address.String() || got.From().Params.String() != ref.From().Params.String() ||
			got.To().Address.String() != ref.To().Address.String() || got.To().Params.Has("tag") != ref.To().Params.Has("tag") {
			t.Fatalf("answers differ:\n%s\n%s", got, ref)
		}
		gv, rv := got.GetHeaders("Via"), ref.GetHeaders("Via")
		if len(gv) != len(rv) {
			t.Fatalf("Vias differ:\n%s\n%s", got, ref)
		}
		// The top Via as written, not only as sipgo reads it back (which
		// would hide a repeated parameter).
		if top := viaLine(out); top != rv[0].Value() {
			t.Fatalf("top Via %q, sipgo's path %q", top, rv[0].Value())
		}
		for i := range gv {
			g, w := gv[i].(*sip.ViaHeader), rv[i].(*sip.ViaHeader)
			if g.Host != w.Host || g.Port != w.Port || g.Transport != w.Transport || g.Params.String() != w.Params.String() {
				t.Fatalf("Via %d differs: %q, sipgo's path %q", i, g.Value(), w.Value())
			}
		}
		for _, name := range []string{"Contact", "Date", "Server"} {
			gh, rh := got.GetHeader(name), ref.GetHeader(name)
			if (gh == nil) != (rh == nil) || (gh != nil && gh.Value() != rh.Value()) {
				t.Fatalf("%s differs:\n%s\n%s", name, got, ref)
			}
		}
	})
}

// viaLine returns the value of the first Via line of a message.
func viaLine(msg []byte) string {
	_, rest, _ := strings.Cut(string(msg), "\r\nVia: ")
	v, _, _ := strings.Cut(rest, "\r\n")
	return v
}

// diffRequests describes how two views of a request differ, "" if not.
func diffRequests(got, want *regRequest) string {
	switch g, w := sprintReq(got), sprintReq(want); {
	case g != w:
		return "fast " + g + ", sipgo " + w
	case !slices.Equal(got.auth, want.auth):
		return "Authorization differs: " + strings.Join(got.auth, "|") + " / " + strings.Join(want.auth, "|")
	case !slices.Equal(got.contacts, want.contacts):
		return "Contacts differ: " + sprintContacts(got.contacts) + " / " + sprintContacts(want.contacts)
	}
	return ""
}

func sprintReq(q *regRequest) string {
	return fmt.Sprintf("%v|%q|%q|%q|%q|%q|%q|%q|%d|%q|%q|%v|%q|%q|%q", q.complete, q.ruriScheme, q.ruriHost, q.toUser, q.toHost,
		q.fromUser, q.fromHost, q.callID, q.cseq, q.cseqMethod, q.expires, q.hasExpires, q.userAgent, q.source, q.transport)
}

func sprintContacts(cs []regContact) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "%+v; ", c)
	}
	return b.String()
}

// TestFastPathTaken checks that the shapes real phones and sipp send take
// the fast path, and that a few others are left to sipgo.
func TestFastPathTaken(t *testing.T) {
	p := newPhone("100", "pw", "acme.example")
	for _, s := range []string{
		sippRegister,
		p.raw("Contact: <sip:100@192.0.2.10:5060>;expires=60", "Expires: 600"),
		p.raw("Contact: *", "Expires: 0"),
		p.raw(p.authHeader("n", 1), "Contact: <sip:100@192.0.2.10:5060>"),
		p.raw(rfc5626Contact, "Expires: 600"), // RFC 5626 outbound
		ipv6Register,                          // an IPv6 phone
	} {
		var q fastRequest
		if !parseFast(s, []byte(s), &q) {
			t.Errorf("not on the fast path: %q", s)
		}
	}
	for _, s := range []string{
		strings.Replace(sippRegister, "REGISTER sip:", "OPTIONS sip:", 1),
		strings.Replace(sippRegister, "Contact:", "m:", 1),                           // compact form
		strings.Replace(sippRegister, "User-Agent: sipp", "User-Agent:\r\n sipp", 1), // folded
		strings.Replace(sippRegister, "Content-Length: 0\r\n\r\n", "Content-Length: 2\r\n\r\nhi", 1),
		strings.Replace(sippRegister, "Supported:", "Require: gruu\r\nSupported:", 1),
		strings.Replace(sippRegister, "SIP/2.0\r\n", "SIP/3.0\r\n", 1),
		p.raw(`Contact: <sip:100@192.0.2.10:5060>;+sip.instance="<urn:uuid:a b>"`),           // space in a quoted value
		p.raw(`Contact: <sip:100@192.0.2.10:5060>;+sip.instance="<urn:\"x>"`),                // escape
		p.raw(`Contact: <sip:100@192.0.2.10:5060>;+sip.instance="<urn;x>"`),                  // ';' in a quoted value
		strings.Replace(ipv6Register, "[2001:db8::10]:5060>", "[fe80::1%25eth0]:5060>", 1),   // a zone
		strings.Replace(ipv6Register, "[2001:db8::10]:5060>", "[::ffff:192.0.2.1]:5060>", 1), // embedded IPv4
	} {
		var q fastRequest
		if parseFast(s, []byte(s), &q) {
			t.Errorf("on the fast path: %q", s)
		}
	}
}

// TestFastAndSipgoAnswerAlike runs the same registration through the
// fast path and through sipgo's (a REGISTER the fast path refuses only
// for a compact header name) and compares the answers.
func TestFastAndSipgoAnswerAlike(t *testing.T) {
	for _, compact := range []bool{false, true} {
		b := setup(t, nil)
		_ = b.r.Apply(t.Context(), lineCfg("L1", "100", "acme.example", "pw"))
		p := newPhone("100", "pw", "acme.example")
		src := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 10), Port: 5060}
		send := func(raw string) string {
			if compact {
				raw = strings.Replace(raw, "\r\nCall-ID:", "\r\ni:", 1)
			}
			var q fastRequest
			if parseFast(raw, []byte(raw), &q) == compact {
				t.Fatalf("fast path %v for %q", !compact, raw)
			}
			c := &lastWrite{}
			var s udpScratch
			b.r.handleDatagram(c, []byte(raw), src, &s)
			return string(c.b)
		}
		hs := []string{"Contact: <sip:100@192.0.2.10:5060;transport=udp>;reg-id=1", "Expires: 600", "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, MESSAGE, NOTIFY"}
		res := send(p.raw(hs...))
		if !strings.HasPrefix(res, "SIP/2.0 401 Unauthorized\r\n") {
			t.Fatalf("compact=%v: %q", compact, res)
		}
		nonce := nonceRE.FindStringSubmatch(res)[1]
		res = send(p.raw(append([]string{p.authHeader(nonce, 1)}, hs...)...))
		m, err := sip.ParseMessage([]byte(res))
		if err != nil {
			t.Fatal(err)
		}
		ok := m.(*sip.Response)
		if ok.StatusCode != 200 || ok.GetHeader("Contact").Value() != "<sip:100@192.0.2.10:5060;transport=udp>;reg-id=1;expires=600" {
			t.Fatalf("compact=%v: %s", compact, ok)
		}
		bs := b.r.Contacts("L1")
		if len(bs) != 1 || bs[0].ContactURI != "sip:100@192.0.2.10:5060;transport=udp" || bs[0].Params != ";reg-id=1" ||
			bs[0].Source != "udp:192.0.2.10:5060" || bs[0].UserAgent != "testphone" || bs[0].CallID != "call-100" {
			t.Fatalf("compact=%v: bindings %+v", compact, bs)
		}
		// 423 from either path.
		res = send(p.raw(p.authHeader(nonce, 2), "Contact: <sip:100@192.0.2.10:5060>", "Expires: 5"))
		if !strings.HasPrefix(res, "SIP/2.0 423 Interval Too Brief\r\n") || !strings.Contains(res, "\r\nMin-Expires: ") {
			t.Fatalf("compact=%v: %q", compact, res)
		}
	}
}

func TestSourceString(t *testing.T) {
	for _, a := range []*net.UDPAddr{
		{IP: net.IPv4(192, 0, 2, 1), Port: 5060},
		{IP: net.IPv4(192, 0, 2, 1).To4(), Port: 1},
		{IP: net.ParseIP("2001:db8::1"), Port: 5060},
		{IP: net.ParseIP("fe80::1"), Port: 5060, Zone: "eth0"},
	} {
		if got, want := sourceString(a), a.String(); got != want {
			t.Errorf("sourceString(%v) = %q, want %q", a, got, want)
		}
	}
}

// headerKinds are the header names parseFast tells apart.
var headerKinds = [...]struct {
	name string
	kind int
}{
	{"Via", hVia}, {"From", hFrom}, {"To", hTo}, {"Call-ID", hCallID}, {"CSeq", hCSeq},
	{"Authorization", hAuthorization}, {"Contact", hContact}, {"Expires", hExpires},
	{"User-Agent", hUserAgent}, {"Content-Length", hContentLength}, {"Max-Forwards", hMaxForwards},
	{"Require", hRefused}, {"Content-Type", hRefused}, {"Route", hRefused}, {"Record-Route", hRefused},
	{"Refer-To", hRefused}, {"Referred-By", hRefused},
}

func TestHeaderOf(t *testing.T) {
	for _, h := range headerKinds {
		for _, name := range []string{h.name, strings.ToLower(h.name), strings.ToUpper(h.name)} {
			if got := headerOf(name); got != h.kind {
				t.Errorf("headerOf(%q) = %d, want %d", name, got, h.kind)
			}
		}
	}
	for _, name := range []string{"", "T", "v", "Vi", "Vian", "Allow", "Supported", "Contact2", "Kontact", "Call-IF", "Xo", "Content-Lengths"} {
		if got := headerOf(name); got != hOther {
			t.Errorf("headerOf(%q) = %d, want other", name, got)
		}
	}
}

func TestPlainValue(t *testing.T) {
	naive := func(v string) bool {
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] >= 0x7f {
				return false
			}
		}
		return true
	}
	base := []byte("Digest username=\"100000\", realm=x")
	for pos := range base {
		for c := range 256 {
			b := slices.Clone(base)
			b[pos] = byte(c)
			for _, v := range []string{string(b), string(b[pos:]), string(b[:pos+1])} {
				if got, want := plainValue([]byte(v)), naive(v); got != want {
					t.Fatalf("plainValue(%q) = %v, want %v", v, got, want)
				}
			}
		}
	}
}

func TestAppendDate(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 400, time.FixedZone("CET", 3600))
	var c dateCache
	for _, at := range []time.Time{t0, t0.Add(100 * time.Millisecond), t0.Add(time.Second), t0.Add(-time.Hour), t0} {
		want := at.UTC().Format("Mon, 02 Jan 2006 15:04:05") + " GMT"
		if got := string(c.appendDate([]byte("x"), at)); got != "x"+want {
			t.Errorf("appendDate(%v) = %q, want %q", at, got, "x"+want)
		}
	}
}

// TestContactsFastAndSipgo registers an RFC 5626 phone (+sip.instance,
// reg-id, ;ob) and an IPv6 phone once on the fast path and once through
// sipgo (a compact Call-ID header): same 200 Contact, same binding.
func TestContactsFastAndSipgo(t *testing.T) {
	for contact, want := range map[string]string{
		rfc5626Contact: `<sip:100@192.0.2.10:5060;transport=udp;ob>;reg-id=1;+sip.instance="<urn:uuid:00000000-0000-1000-8000-000B82E1A2B3>";expires=600`,
		"Contact: <sip:100@[2001:db8::10]:5060;transport=udp>;reg-id=1": "<sip:100@[2001:db8::10]:5060;transport=udp>;reg-id=1;expires=600",
	} {
		var contacts, params [2]string
		for i, compact := range []bool{false, true} {
			b := setup(t, nil)
			_ = b.r.Apply(t.Context(), lineCfg("L1", "100", "acme.example", "pw"))
			p := newPhone("100", "pw", "acme.example")
			src := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 10), Port: 5060}
			send := func(raw string) string {
				if compact {
					raw = strings.Replace(raw, "\r\nCall-ID:", "\r\ni:", 1)
				}
				var q fastRequest
				if parseFast(raw, []byte(raw), &q) == compact {
					t.Fatalf("fast path %v for %q", !compact, raw)
				}
				c := &lastWrite{}
				var s udpScratch
				b.r.handleDatagram(c, []byte(raw), src, &s)
				return string(c.b)
			}
			// Allow: a request as large as a phone's (no answer but a 200
			// may be larger than the request).
			allow := "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, MESSAGE, NOTIFY"
			res := send(p.raw(contact, "Expires: 600", allow))
			nm := nonceRE.FindStringSubmatch(res)
			if nm == nil {
				t.Fatalf("compact=%v, %s: %q", compact, contact, res)
			}
			nonce := nm[1]
			m, err := sip.ParseMessage([]byte(send(p.raw(p.authHeader(nonce, 1), contact, "Expires: 600", allow))))
			if err != nil {
				t.Fatal(err)
			}
			ok := m.(*sip.Response)
			if ok.StatusCode != 200 || ok.GetHeader("Contact") == nil {
				t.Fatalf("compact=%v: %s", compact, ok)
			}
			contacts[i] = ok.GetHeader("Contact").Value()
			bs := b.r.Contacts("L1")
			if len(bs) != 1 {
				t.Fatalf("compact=%v: bindings %+v", compact, bs)
			}
			params[i] = bs[0].ContactURI + " " + bs[0].Params
		}
		if contacts[0] != want || contacts[1] != want || params[0] != params[1] {
			t.Fatalf("fast path %q %q, sipgo %q %q", contacts[0], params[0], contacts[1], params[1])
		}
	}
}
