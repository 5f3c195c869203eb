package aritest

//go:generate go run ./genschema -in testdata/pjsip_options.xml -out schema_gen.go

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// option is one documented attribute of a res_pjsip object type.
type option struct {
	name string
	def  string
}

type kind int

const (
	kindString kind = iota
	kindBool
	kindUint
	kindDouble
	kindCodec
	kindCallerID
	kindAuthType
	kindDTMF
	kindVarList
)

// notBool lists options whose documented default is yes/no although they
// take other values too, so they must not be validated as booleans.
var notBool = map[string]bool{
	"100rel": true, "media_encryption": true, "timers": true,
	"security_negotiation": true, "stir_shaken": true,
}

// extraBool lists boolean options documented without a default.
var extraBool = map[string]bool{
	"qualify_2xx_only": true, "authenticate_qualify": true, "support_path": true,
	"rewrite_contact": true, "trust_connected_line": true, "send_connected_line": true,
	"bind_rtp_to_media_address": true, "follow_early_media_fork": true,
	"mwi_subscribe_replaces_unsolicited": true, "dtls_verify": false,
}

// field is an attribute with its kind and default, as this server models it.
type field struct {
	name string
	def  string
	kind kind
}

// schema is the ordered list of attributes of each supported object type.
var schema = buildSchema()

func buildSchema() map[string][]field {
	out := make(map[string][]field, len(pjsipOptions))
	for typ, opts := range pjsipOptions {
		fs := make([]field, 0, len(opts)+1)
		for _, o := range opts {
			f := field{name: o.name, def: o.def, kind: kindString}
			switch {
			case o.name == "allow" || o.name == "disallow":
				f.kind = kindCodec
			case o.name == "callerid":
				f.kind = kindCallerID
			case typ == "auth" && o.name == "auth_type":
				f.kind = kindAuthType
			case o.name == "dtmf_mode":
				f.kind = kindDTMF
			case o.name == "set_var":
				f.kind = kindVarList
			case o.name == "qualify_timeout":
				f.kind = kindDouble
			case (o.def == "yes" || o.def == "no") && !notBool[o.name], extraBool[o.name]:
				f.kind = kindBool
				if f.def == "" {
					f.def = "no"
				}
			case o.def != "" && strings.Trim(o.def, "0123456789") == "":
				f.kind = kindUint
			}
			fs = append(fs, f)
		}
		out[typ] = fs
	}
	return out
}

func lookupField(typ, name string) (field, bool) {
	for _, f := range schema[typ] {
		if f.name == name {
			return f, true
		}
	}
	return field{}, false
}

// object is one stored sorcery object: attribute name → Asterisk's rendering.
type object map[string]string

// newObject allocates an object with every default applied, as sorcery's
// ast_sorcery_alloc does.
func newObject(typ string) object {
	o := make(object, len(schema[typ]))
	for _, f := range schema[typ] {
		v, err := render(f, f.def, "")
		if err != nil {
			panic(fmt.Sprintf("aritest: default of %s/%s: %v", typ, f.name, err))
		}
		o[f.name] = v
	}
	return o
}

func (o object) clone() object {
	c := make(object, len(o))
	for k, v := range o {
		c[k] = v
	}
	return c
}

// apply sets one field as Asterisk's field handler would, validating it.
func (o object) apply(typ, name, value string) error {
	f, ok := lookupField(typ, name)
	if !ok {
		return fmt.Errorf("unknown attribute %q", name)
	}
	v, err := render(f, value, o[name])
	if err != nil {
		return err
	}
	o[name] = v
	if f.kind == kindCodec {
		// allow and disallow share one format capability.
		o["allow"], o["disallow"] = v, v
	}
	return nil
}

// render turns an input value into Asterisk's rendering of the stored value.
// cur is the current rendering (codec lists accumulate).
func render(f field, value, cur string) (string, error) {
	switch f.kind {
	case kindBool:
		switch strings.ToLower(value) {
		case "yes", "true", "y", "t", "1", "on":
			return "true", nil
		case "no", "false", "n", "f", "0", "off":
			return "false", nil
		}
		return "", fmt.Errorf("%s: %q is not a boolean", f.name, value)
	case kindUint:
		n, err := strconv.ParseUint(strings.TrimSpace(value), 10, 32)
		if err != nil {
			return "", fmt.Errorf("%s: %q is not an unsigned integer", f.name, value)
		}
		return strconv.FormatUint(n, 10), nil
	case kindDouble:
		x, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return "", fmt.Errorf("%s: %q is not a number", f.name, value)
		}
		return strconv.FormatFloat(x, 'f', 6, 64), nil
	case kindCodec:
		return renderCodecs(f.name, value, cur)
	case kindCallerID:
		return renderCallerID(value), nil
	case kindVarList:
		return renderVarList(value, cur)
	case kindAuthType:
		switch value = strings.ToLower(value); value {
		case "digest", "userpass", "md5", "google_oauth":
			// Asterisk 22 keeps (and renders) the type as given, the
			// deprecated userpass and md5 included (auth_types_map).
			return value, nil
		}
		return "", fmt.Errorf("auth_type: %q is not valid", value)
	case kindDTMF:
		switch value {
		case "rfc4733", "inband", "info", "auto", "auto_info":
			return value, nil
		}
		return "", fmt.Errorf("dtmf_mode: %q is not valid", value)
	}
	return value, nil
}

// renderVarList applies one set_var value ("NAME=value") to the endpoint's
// channel variables as set_var_handler does: an empty value changes
// nothing, a variable of the same name is replaced, a new one appended.
// The list is kept newline-separated; tuples renders one set_var tuple per
// variable, as ast_sorcery_objectset_create does with set_var_to_vl.
func renderVarList(value, cur string) (string, error) {
	if value == "" {
		return cur, nil
	}
	name, _, ok := strings.Cut(value, "=")
	if !ok || name == "" {
		return "", fmt.Errorf("set_var: %q is not NAME=value", value)
	}
	var vars []string
	replaced := false
	for _, v := range strings.Split(cur, "\n") {
		if v == "" {
			continue
		}
		if n, _, _ := strings.Cut(v, "="); n == name {
			v, replaced = value, true
		}
		vars = append(vars, v)
	}
	if !replaced {
		vars = append(vars, value)
	}
	return strings.Join(vars, "\n"), nil
}

var knownCodecs = []string{"ulaw", "alaw", "gsm", "g722", "g729", "opus", "ilbc", "speex", "g726", "slin", "h264", "vp8", "vp9"}

// renderCodecs applies an allow or disallow list to the current capability
// and renders it the way ast_format_cap_get_names does: "(ulaw|alaw)", or
// "(nothing)" when empty.
func renderCodecs(name, value, cur string) (string, error) {
	var have []string
	if c := strings.Trim(cur, "()"); c != "" && c != "nothing" {
		have = strings.Split(c, "|")
	}
	if value == "" {
		return codecString(have), nil
	}
	for _, c := range strings.Split(value, ",") {
		c = strings.ToLower(strings.TrimSpace(c))
		if c == "" {
			continue
		}
		var list []string
		switch {
		case c == "all":
			list = knownCodecs
		case slices.Contains(knownCodecs, c):
			list = []string{c}
		default:
			return "", fmt.Errorf("%s: unknown codec %q", name, c)
		}
		for _, x := range list {
			i := slices.Index(have, x)
			if name == "allow" && i < 0 {
				have = append(have, x)
			} else if name == "disallow" && i >= 0 {
				have = slices.Delete(have, i, i+1)
			}
		}
	}
	return codecString(have), nil
}

func codecString(c []string) string {
	if len(c) == 0 {
		return "(nothing)"
	}
	return "(" + strings.Join(c, "|") + ")"
}

// renderCallerID renders a caller id as ast_callerid_merge does:
// `"Name" <number>`.
func renderCallerID(v string) string {
	v = strings.TrimSpace(v)
	if v == "" {
		return ""
	}
	name, num := v, ""
	if i := strings.LastIndexByte(v, '<'); i >= 0 && strings.HasSuffix(v, ">") {
		name, num = strings.TrimSpace(v[:i]), v[i+1:len(v)-1]
	}
	name = strings.Trim(name, `"`)
	switch {
	case name == "":
		return "<" + num + ">"
	case num == "":
		return `"` + name + `"`
	}
	return `"` + name + `" <` + num + `>`
}
