package httpapi

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pbxd/pbxd/provisioning"
)

// FuzzDecodeRequests feeds arbitrary bodies to the strict JSON decoding of
// the account and change-order requests: bad input is a Problem naming the
// field, never a panic.
func FuzzDecodeRequests(f *testing.F) {
	f.Add(`{"name":"Acme","sip_domain":"a.example.net","currency":"EUR","timezone":"Europe/Paris","vat_percent":5.5,"payment_mode":"card","extension_range":{"first":100,"last":199}}`)
	f.Add(`{"items":[{"package":"world","quantity":4,"cycle":"annual","remove_lines":["x"]}],"swaps":[{"line":"l","package":"p"}]}`)
	f.Add(`{"vat_percent":"20"}`)
	f.Add(`{"items":[{"quantity":1e99}]}`)
	f.Add(`[`)
	f.Fuzz(func(t *testing.T, body string) {
		var acct accountBody
		if err := decode(httptest.NewRequest("POST", "/", strings.NewReader(body)), &acct); err == nil {
			if n, err := acct.toNew(); err == nil {
				_ = n.Validate()
			}
		} else if _, ok := err.(*Problem); !ok {
			t.Fatalf("decode error %T is not a Problem", err)
		}
		var req provisioning.ChangeRequest
		_ = decode(httptest.NewRequest("POST", "/", strings.NewReader(body)), &req)
	})
}
