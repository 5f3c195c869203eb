package asterisk

import (
	"strings"
	"testing"

	"github.com/CyCoreSystems/ari/v5"
)

// FuzzDecodeEvent feeds arbitrary websocket messages to the event decoder:
// it must never panic, and a used event must carry its type.
func FuzzDecodeEvent(f *testing.F) {
	for _, s := range []string{
		`{"type":"ContactStatusChange","endpoint":{"technology":"PJSIP","resource":"100@a.example","state":"online"},"contact_info":{"uri":"sip:100@192.0.2.1:5060","contact_status":"Reachable","aor":"100@a.example","roundtrip_usec":"1742"}}`,
		`{"type":"PeerStatusChange","endpoint":{"technology":"PJSIP","resource":"100@a.example"},"peer":{"peer_status":"Unreachable"}}`,
		`{"type":"EndpointStateChange","endpoint":{"technology":"PJSIP","resource":"x","state":"offline"}}`,
		`{"type":"ApplicationRegistered","application":"pbxd"}`,
		`{"type":"ChannelTransfer","refer_to":{}}`,
		`{"type":"ContactStatusChange","endpoint":"x"}`,
		`{"type":1}`, `null`, `[]`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, ok, err := decodeEvent(b)
		if ok && (err != nil || !wanted[ev.Type]) {
			t.Fatalf("ok with err %v type %q", err, ev.Type)
		}
		if !ok && ev.Type != "" {
			t.Fatalf("not ok but type %q", ev.Type)
		}
	})
}

// FuzzHeldObjects feeds arbitrary ARI tuple values through the parsing of
// held objects (ownership marker, caller ids, drift): no panic, and
// ownership is only ever claimed through pbxd's prefix.
func FuzzHeldObjects(f *testing.F) {
	f.Add("pbxd-abc", "pbxd-abc", `"Alice" <100>`, "100@a.example", "2")
	f.Add("pbxd-x, pbxd-y", "pbxd-x-suspended", `<>`, "@", "x")
	f.Add("", "", `"`, "", "")
	f.Add("=,==\n", "pbxd-", `<<>>"`, "a@b@c", "-1")
	b := &Backend{cfg: Config{ObjectPrefix: "pbxd-", Codecs: []string{"ulaw"}, MaxContacts: 1}}
	f.Fuzz(func(t *testing.T, marker, auth, callerid, name, maxC string) {
		ep := tupleMap([]ari.ConfigTuple{{Attribute: markerAttr, Value: marker}, {Attribute: "auth", Value: auth},
			{Attribute: "callerid", Value: callerid}})
		authID, _, ok := b.owner(ep)
		if ok && !strings.HasPrefix(authID, "pbxd-") {
			t.Fatalf("owner %q without the prefix", authID)
		}
		n, e := parseCallerID(callerid)
		_ = callerID(n, e)
		_ = normalize("callerid", callerid)
		_ = normalize("max_contacts", maxC)
		_ = normalize("allow", maxC)
		l := b.heldLine("a", "x", name, authID, ok, ep, map[string]string{"username": n, "realm": e},
			map[string]string{"max_contacts": maxC})
		_ = l
	})
}
