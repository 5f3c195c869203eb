package asterisk

import (
	"crypto/rand"
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/CyCoreSystems/ari/v5"
	"github.com/pbxd/pbxd/pbx"
)

// Object naming. Every object of a line shares one id, prefix + line id:
//
//	auth     <prefix><line>             auth_type, username, password, realm
//	aor      <prefix><line>             max_contacts, qualify_frequency, remove_existing
//	endpoint <prefix><line>             auth, aors, context, transport, allow, callerid, from_domain
//	auth     <prefix><line>-suspended   only while the line is suspended
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

func configKey(typ, id string) *ari.Key {
	return ari.NewKey("config", ari.ConfigID("res_pjsip", typ, id))
}

// tuple is one attribute as sent; norm compares it with Asterisk's
// rendering.
type tuple struct {
	attr, value string
}

// desiredAuth is the line's real auth object.
func desiredAuth(l pbx.LineConfig) []tuple {
	return []tuple{
		{"auth_type", "userpass"},
		{"username", l.Username},
		{"password", l.Password},
		{"realm", l.Domain},
	}
}

// desiredSuspendedAuth is the unusable auth of a suspended line; its
// password is only set when the object is created.
func desiredSuspendedAuth(l pbx.LineConfig) []tuple {
	return []tuple{
		{"auth_type", "userpass"},
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

func (b *Backend) desiredEndpoint(l pbx.LineConfig, id string) []tuple {
	auth := id
	if l.Suspended {
		auth = id + suspendedSuffix
	}
	t := []tuple{
		{"auth", auth},
		{"aors", id},
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

// diff returns the tuples of want whose normalised value differs from
// held. disallow is sent only together with a changed allow.
func diff(want []tuple, held map[string]string) []tuple {
	var out []tuple
	for _, t := range want {
		if t.attr == "disallow" {
			continue
		}
		if h, ok := held[t.attr]; ok && normalize(t.attr, h) == normalize(t.attr, t.value) {
			continue
		}
		if t.attr == "allow" {
			out = append(out, tuple{"disallow", "all"})
		}
		out = append(out, t)
	}
	return out
}

func toARI(ts []tuple) []ari.ConfigTuple {
	out := make([]ari.ConfigTuple, len(ts))
	for i, t := range ts {
		out[i] = ari.ConfigTuple{Attribute: t.attr, Value: t.value}
	}
	return out
}

// DriftMaxContacts is the MaxContacts List reports for a line whose objects
// differ from what Apply would push in a setting LineConfig does not carry
// (transport, codecs, qualify, aor/auth links, auth type...). No real line
// has it, so pbx.SameConfig fails and the reconciler re-applies the line,
// which repairs every setting.
const DriftMaxContacts = -1

// heldLine rebuilds a LineConfig from the objects Asterisk holds. Missing
// objects leave their fields empty, so the difference shows.
func (b *Backend) heldLine(node, lineID, id string, ep, auth, aor map[string]string) pbx.LineConfig {
	l := pbx.LineConfig{ID: lineID, Node: node}
	drift := false
	if ep != nil {
		l.Context = ep["context"]
		l.CallerID, l.Extension = parseCallerID(ep["callerid"])
		switch ep["auth"] {
		case id:
		case id + suspendedSuffix:
			l.Suspended = true
		default:
			drift = true
		}
		probe := pbx.LineConfig{Suspended: l.Suspended, Context: l.Context, CallerID: l.CallerID, Extension: l.Extension}
		if auth != nil {
			probe.Domain = auth["realm"]
		}
		for _, t := range b.desiredEndpoint(probe, id) {
			if t.attr == "disallow" {
				continue
			}
			if t.attr == "from_domain" && auth == nil {
				continue
			}
			if normalize(t.attr, ep[t.attr]) != normalize(t.attr, t.value) {
				drift = true
			}
		}
	}
	if auth != nil {
		l.Username, l.Password, l.Domain = auth["username"], auth["password"], auth["realm"]
		if normalize("auth_type", auth["auth_type"]) != "digest" {
			drift = true
		}
	}
	if aor != nil {
		l.MaxContacts, _ = strconv.Atoi(aor["max_contacts"])
		for _, t := range b.desiredAOR(l)[1:] {
			if normalize(t.attr, aor[t.attr]) != normalize(t.attr, t.value) {
				drift = true
			}
		}
	}
	if drift {
		l.MaxContacts = DriftMaxContacts
	}
	return l
}
