package asterisk

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/CyCoreSystems/ari/v5"

	"github.com/pbxd/pbxd/pbx"
)

// Object naming. Asterisk finds the AOR of a REGISTER by the To-URI
// (`user@domain`, then `user`) and the endpoint of a request by the From
// user (same order, res_pjsip_endpoint_identifier_user), so a line's
// endpoint and aor are named after its AOR; its auth keeps an id that is
// pbxd's alone:
//
//	endpoint <username>@<domain>        auth, aors, context, transport, allow, callerid, from_domain, accountcode
//	aor      <username>@<domain>        max_contacts, qualify_frequency, remove_existing
//	auth     <prefix><line>             auth_type, username, password, realm
//	auth     <prefix><line>-suspended   only while the line is suspended
//
// Ownership: every endpoint pbxd pushes carries accountcode=<prefix><line>
// (set on its channels: ${CHANNEL(accountcode)} in the dial plan, the CDR
// accountcode). A set_var marker does not survive a real Asterisk 22:
// astdb drops channel variables when it reads an object back, and with
// the memory wizard (or a memory cache) ARI renders them as attributes of
// their own, so every later PUT of the endpoint fails ("Allocation
// failed"). An endpoint without the marker but whose auth is a <prefix>
// auth is ours as well (the marker was lost, reported as drift). Anything else listed by /ari/endpoints is hand-made and never
// touched. Several tenants may have a user 100: the endpoint ids differ by
// domain, which needs pjsip's multi-domain matching (the default,
// `disable_multi_domain=no` in [global]).
//
// Suspension: the endpoint stays (so its dial context, caller id and
// contacts remain visible and a resume is one PUT), but its auth attribute
// points at the "-suspended" auth object, which has the line's username and
// realm and a random 32-byte password nobody knows. Phones get the same 401
// as for a wrong password, for REGISTER and INVITE alike. The line's real
// auth object is kept untouched, so List reads its password back and the
// config round-trips (Suspended=true, same password). Contacts registered
// before the suspension stay until they expire: re-registration fails.
// An endpoint without auth would let anyone in, so "no auth" is never used.
const suspendedSuffix = "-suspended"

// markerAttr is the endpoint attribute that marks the endpoints pbxd owns.
const markerAttr = "accountcode"

// endpointName is the id of a line's endpoint and aor: its AOR.
func endpointName(l pbx.LineConfig) string { return l.Username + "@" + l.Domain }

// validName reports whether username and domain make a usable object id:
// no separators ARI paths, dial strings or sorcery lists would split on.
func validName(l pbx.LineConfig) error {
	for _, s := range []string{l.Username, l.Domain} {
		if s == "" || strings.ContainsAny(s, "@/,;:?#% \t\r\n\"<>\\") {
			return fmt.Errorf("line %s: username %q / domain %q cannot name a PJSIP endpoint", l.ID, l.Username, l.Domain)
		}
	}
	return nil
}

// tuple is one attribute as sent; norm compares it with Asterisk's
// rendering.
type tuple struct {
	attr, value string
}

// desiredAuth is the line's real auth object.
func desiredAuth(l pbx.LineConfig) []tuple {
	return []tuple{
		{"auth_type", "digest"},
		{"username", l.Username},
		{"password", l.Password},
		{"realm", l.Domain},
	}
}

// desiredSuspendedAuth is the unusable auth of a suspended line; its
// password is only set when the object is created.
func desiredSuspendedAuth(l pbx.LineConfig) []tuple {
	return []tuple{
		{"auth_type", "digest"},
		{"username", l.Username},
		{"realm", l.Domain},
	}
}

func randomPassword() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (b *Backend) desiredAOR(l pbx.LineConfig) []tuple {
	maxC := l.MaxContacts
	if maxC <= 0 {
		maxC = b.cfg.MaxContacts
	}
	return []tuple{
		{"max_contacts", strconv.Itoa(maxC)},
		{"qualify_frequency", strconv.Itoa(int(b.cfg.QualifyFrequency.Seconds()))},
		{"remove_existing", yesNo(!b.cfg.KeepExistingContacts)},
	}
}

// desiredEndpoint is the line's endpoint; authID is <prefix><line>.
func (b *Backend) desiredEndpoint(l pbx.LineConfig, authID string) []tuple {
	auth := authID
	if l.Suspended {
		auth = authID + suspendedSuffix
	}
	t := []tuple{
		{markerAttr, authID},
		{"auth", auth},
		{"aors", endpointName(l)},
		{"context", l.Context},
		{"callerid", callerID(l.CallerID, l.Extension)},
		{"from_domain", l.Domain},
		// PUT merges codecs into the existing capability: clear it first.
		{"disallow", "all"},
		{"allow", strings.Join(b.cfg.Codecs, ",")},
	}
	if b.cfg.Transport != "" {
		t = append(t, tuple{"transport", b.cfg.Transport})
	}
	return t
}

func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}

// callerID renders a caller id the way Asterisk renders it back.
func callerID(name, ext string) string {
	name = strings.NewReplacer(`"`, "", "<", "", ">", "").Replace(name)
	switch {
	case name == "" && ext == "":
		return ""
	case name == "":
		return "<" + ext + ">"
	}
	return `"` + name + `" <` + ext + `>`
}

// parseCallerID splits Asterisk's `"Name" <ext>` rendering.
func parseCallerID(v string) (name, ext string) {
	v = strings.TrimSpace(v)
	if i := strings.LastIndexByte(v, '<'); i >= 0 && strings.HasSuffix(v, ">") {
		name, ext = strings.TrimSpace(v[:i]), v[i+1:len(v)-1]
	} else {
		name = v
	}
	return strings.Trim(name, `"`), ext
}

// owner returns the <prefix><line> auth id an endpoint belongs to and
// whether its ownership marker is intact. ok is false for endpoints pbxd
// does not own.
func (b *Backend) owner(ep map[string]string) (authID string, marked, ok bool) {
	p := b.cfg.ObjectPrefix
	if v := ep[markerAttr]; strings.HasPrefix(v, p) && len(v) > len(p) && !strings.ContainsAny(v, ", ") {
		return v, true, true
	}
	a := strings.TrimSuffix(ep["auth"], suspendedSuffix)
	if strings.HasPrefix(a, p) && len(a) > len(p) && !strings.ContainsAny(a, ", ") {
		return a, false, true
	}
	return "", false, false
}

// normalize maps a value as sent to Asterisk's rendering, so desired and
// held values compare equal when Asterisk would hold the same thing.
func normalize(attr, v string) string {
	switch attr {
	case "auth_type":
		if v == "userpass" || v == "md5" {
			return "digest"
		}
	case "remove_existing":
		switch strings.ToLower(v) {
		case "yes", "true", "y", "t", "1", "on":
			return "true"
		case "no", "false", "n", "f", "0", "off":
			return "false"
		}
	case "allow":
		if v == "" || v == "(nothing)" {
			return "(nothing)"
		}
		if strings.HasPrefix(v, "(") {
			return v
		}
		return "(" + strings.ReplaceAll(v, ",", "|") + ")"
	case "callerid":
		n, e := parseCallerID(v)
		return callerID(n, e)
	case "qualify_frequency", "max_contacts":
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
			return strconv.Itoa(n)
		}
	}
	return v
}

// same reports whether a held attribute matches a desired tuple.
func same(t tuple, held map[string]string) bool {
	h, ok := held[t.attr]
	if !ok {
		return false
	}
	return normalize(t.attr, h) == normalize(t.attr, t.value)
}

// diff returns the tuples of want whose normalised value differs from
// held. disallow is sent only together with a changed allow.
func diff(want []tuple, held map[string]string) []tuple {
	var out []tuple
	for _, t := range want {
		if t.attr == "disallow" {
			continue
		}
		if same(t, held) {
			continue
		}
		if t.attr == "allow" {
			out = append(out, tuple{"disallow", "all"})
		}
		out = append(out, t)
	}
	return out
}

// toARI is the body of a PUT to /asterisk/config/dynamic/...
func toARI(ts []tuple) ari.ConfigTupleList {
	out := ari.ConfigTupleList{Fields: make([]ari.ConfigTuple, len(ts))}
	for i, t := range ts {
		out.Fields[i] = ari.ConfigTuple{Attribute: t.attr, Value: t.value}
	}
	return out
}

// heldLine rebuilds a LineConfig from the objects Asterisk holds for one
// owned endpoint (named name, owned through authID). Missing objects leave
// their fields empty, so the difference shows; settings LineConfig does not
// carry are checked against what Apply would push and reported in Drift.
func (b *Backend) heldLine(node, lineID, name, authID string, marked bool, ep, auth, aor map[string]string) pbx.LineConfig {
	l := pbx.LineConfig{ID: lineID, Node: node}
	var drift []string
	if !marked {
		drift = append(drift, "ownership marker missing")
	}
	l.Context = ep["context"]
	l.CallerID, l.Extension = parseCallerID(ep["callerid"])
	switch ep["auth"] {
	case authID:
	case authID + suspendedSuffix:
		l.Suspended = true
	default:
		drift = append(drift, "endpoint auth link")
	}
	if auth != nil {
		l.Username, l.Password, l.Domain = auth["username"], auth["password"], auth["realm"]
		if normalize("auth_type", auth["auth_type"]) != "digest" {
			drift = append(drift, "auth type")
		}
	} else {
		// Without the auth the AOR still tells who the line is.
		l.Username, l.Domain, _ = strings.Cut(name, "@")
	}
	if endpointName(l) != name {
		drift = append(drift, "endpoint name")
	}
	probe := l
	probe.Username, probe.Domain, _ = strings.Cut(name, "@")
	for _, t := range b.desiredEndpoint(probe, authID) {
		switch t.attr {
		case "disallow", "auth", "context", "callerid":
			continue // compared through LineConfig fields
		}
		if !same(t, ep) {
			drift = append(drift, "endpoint "+t.attr)
		}
	}
	if aor != nil {
		l.MaxContacts, _ = strconv.Atoi(aor["max_contacts"])
		for _, t := range b.desiredAOR(l)[1:] {
			if !same(t, aor) {
				drift = append(drift, "aor "+t.attr)
			}
		}
	} else {
		drift = append(drift, "aor missing")
	}
	l.Drift = strings.Join(drift, ", ")
	return l
}
