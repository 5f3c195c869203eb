package httpapi

import (
	"bytes"
	"encoding/json"
	"math/big"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/pbxd/pbxd/provisioning"
)

// FuzzDecodeRequests feeds arbitrary bodies to the strict JSON decoding of
// the account request: bad input is a Problem naming the field, never a
// panic.
func FuzzDecodeRequests(f *testing.F) {
	f.Add(`{"name":"Acme","sip_domain":"a.example.net","currency":"EUR","timezone":"Europe/Paris","vat_percent":5.5,"payment_mode":"card","extension_range":{"first":100,"last":199}}`)
	f.Add(`{"vat_percent":"20"}`)
	f.Add(`{"vat_percent":null}`)
	f.Add(`[`)
	f.Fuzz(func(t *testing.T, body string) {
		var acct accountBody
		err := decode(httptest.NewRequest("POST", "/", strings.NewReader(body)), &acct)
		if err == nil {
			n, err := acct.toNew()
			if err == nil {
				_ = n.Validate()
			} else if _, ok := err.(*Problem); !ok {
				t.Fatalf("toNew error %T is not a Problem", err)
			}
			if acct.VATPercent != nil && acct.VATPercent[0] == '"' && err == nil {
				t.Fatalf("vat_percent as a string accepted: %s", body)
			}
			return
		}
		if _, ok := err.(*Problem); !ok {
			t.Fatalf("decode error %T is not a Problem", err)
		}
	})
}

// FuzzDecodeMove asserts that a move body is either refused with a
// Problem or read as exactly its one string field.
func FuzzDecodeMove(f *testing.F) {
	f.Add(`{"node":"ast2"}`)
	f.Add(`{"node":null}`)
	f.Add(`{"node":2}`)
	f.Add(`{"Node":"ast2"}`)
	f.Fuzz(func(t *testing.T, body string) {
		var b moveBody
		err := decode(httptest.NewRequest("POST", "/", strings.NewReader(body)), &b)
		if err != nil {
			if _, ok := err.(*Problem); !ok {
				t.Fatalf("decode error %T is not a Problem", err)
			}
			return
		}
		var generic map[string]any
		if json.Unmarshal([]byte(body), &generic) != nil {
			t.Fatalf("accepted a body that is not a JSON object: %q", body)
		}
		for k, v := range generic {
			if k != "node" {
				t.Fatalf("accepted unknown field %q", k)
			}
			if s, ok := v.(string); !ok || s != b.Node {
				t.Fatalf("node %v read as %q", v, b.Node)
			}
		}
	})
}

// FuzzChangeOrderDecoder asserts that the change-order decoder either
// refuses a body with a Problem, or accepts exactly what it says: the
// accepted request round-trips through its JSON form, and every item it
// read had its package and quantity given, with that very value.
func FuzzChangeOrderDecoder(f *testing.F) {
	f.Add(`{"items":[{"package":"world","quantity":4,"cycle":"annual","remove_lines":["x"]}],"swaps":[{"line":"l","package":"p"}]}`)
	f.Add(`{"items":[{"package":"world"}]}`)
	f.Add(`{"items":[{"package":"world","quantity":null}]}`)
	f.Add(`{"items":[{"package":"world","QUANTITY":2}]}`)
	f.Add(`{"items":[{"package":"world","quantity":1}]} xyz`)
	f.Add(`{"items":[{"quantity":1e99}]}`)
	f.Add(`{"items":[{"package":"world","quantity":"3"}]}`)
	f.Add(`{}`)
	f.Add(`{"items":[{"package":"world","quantity":0,"effective":"period_end"}],"numbers":[{"prefix":"+331","quantity":2}],"release_numbers":["+33123"],"release_effective":"now"}`)
	f.Add(`{"numbers":[{"number":"+33123","color":"red"}]}`)
	f.Add(`{"by_operator":true}`)
	f.Fuzz(func(t *testing.T, body string) {
		req, err := parseChange([]byte(body))
		if err != nil {
			if _, ok := err.(*Problem); !ok {
				t.Fatalf("refusal %T is not a Problem: %v", err, err)
			}
			return
		}
		// Round trip.
		c := req
		if c.Items == nil {
			c.Items = []provisioning.ChangeItem{}
		}
		enc, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseChange(enc)
		if err != nil || !reflect.DeepEqual(again, req) {
			t.Fatalf("accepted %q as %+v; its JSON %s reads back as %+v, %v", body, req, enc, again, err)
		}
		// What the body said, item by item.
		var said struct {
			Items []map[string]json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(bytes.TrimSpace([]byte(body)), &said); err != nil {
			t.Fatalf("accepted a body encoding/json cannot read: %q: %v", body, err)
		}
		if len(said.Items) != len(req.Items) {
			t.Fatalf("accepted %q with %d items as %d", body, len(said.Items), len(req.Items))
		}
		for i, m := range said.Items {
			q, ok := m["quantity"]
			if !ok {
				t.Fatalf("accepted item %d without a quantity: %q", i, body)
			}
			var n big.Float
			if _, _, err := n.Parse(string(q), 10); err != nil {
				t.Fatalf("accepted item %d with quantity %s: %q", i, q, body)
			}
			if v, acc := n.Int64(); acc != big.Exact || v != int64(req.Items[i].Quantity) {
				t.Fatalf("item %d quantity %s read as %d", i, q, req.Items[i].Quantity)
			}
			var pkg string
			if err := json.Unmarshal(m["package"], &pkg); err != nil || pkg != req.Items[i].Package {
				t.Fatalf("item %d package %s read as %q", i, m["package"], req.Items[i].Package)
			}
		}
	})
}

func TestDecodeIsStrict(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, body, field string
		status            int
	}{
		{"missing quantity", `{"items":[{"package":"world"}]}`, "items[0].quantity", 422},
		{"null quantity", `{"items":[{"package":"world","quantity":null}]}`, "items[0].quantity", 422},
		{"quantity as a string", `{"items":[{"package":"world","quantity":3},{"package":"fr","quantity":"3"}]}`, "items[1].quantity", 422},
		{"missing package", `{"items":[{"quantity":3}]}`, "items[0].package", 422},
		{"trailing garbage", `{"items":[{"package":"world","quantity":3}]} xyz`, "", 422},
		{"two objects", `{"items":[]}{"items":[]}`, "", 422},
		{"unknown field", `{"items":[{"package":"world","quantity":3,"qty":4}]}`, "items[0].qty", 422},
		{"field in another case", `{"items":[{"package":"world","Quantity":3}]}`, "items[0].Quantity", 422},
		{"not an object", `[1]`, "", 422},
		{"empty", ``, "", 422},
	} {
		_, err := parseChange([]byte(c.body))
		p, ok := err.(*Problem)
		if !ok || p.Status != c.status || p.Field != c.field {
			t.Errorf("%s: %v (%+v), want %d on %q", c.name, err, p, c.status, c.field)
		}
	}
	var acct accountBody
	if err := decodeBytes([]byte(`{"vat_percent":"20","extension_range":{"first":1,"last":2}}`), &acct); err != nil {
		t.Fatal(err)
	}
	if _, err := acct.toNew(); err == nil || err.(*Problem).Field != "vat_percent" {
		t.Errorf("vat_percent \"20\": %v", err)
	}
	big := `{"items":[{"package":"` + strings.Repeat("x", 10<<20) + `","quantity":1}]}`
	if _, err := parseChange([]byte(big)); err == nil || err.(*Problem).Status != 413 {
		t.Errorf("10 MB body: %v", err)
	}
}
