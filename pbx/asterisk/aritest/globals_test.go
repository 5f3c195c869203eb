package aritest

import "testing"

// Global variables behave as Asterisk 22's ARI: unknown reads as "", POST
// without a value deletes, value="" keeps an empty variable, a missing
// name is a 400, and a restart forgets them.
func TestGlobals(t *testing.T) {
	t.Parallel()
	s := NewTest(t, Options{})
	for _, c := range []struct {
		method, path, body string
		code               int
		answer             string
	}{
		{"GET", "/asterisk/variable?variable=PBXD_DID_331", "", 200, `{"value":""}`},
		{"GET", "/asterisk/variable", "", 400, `{"message":"Variable name is required"}`},
		{"POST", "/asterisk/variable?value=x", "", 400, `{"message":"Variable name is required"}`},
		{"POST", "/asterisk/variable?variable=PBXD_DID_331&value=100@acme", "", 204, ""},
		{"GET", "/asterisk/variable?variable=PBXD_DID_331", "", 200, `{"value":"100@acme"}`},
		{"POST", "/asterisk/variable", `{"variable":"PBXD_DID_332","value":"101@acme"}`, 204, ""},
		{"GET", "/asterisk/variable?variable=PBXD_DID_332", "", 200, `{"value":"101@acme"}`},
		{"POST", "/asterisk/variable?variable=PBXD_DID_331", "", 204, ""},
		{"GET", "/asterisk/variable?variable=PBXD_DID_331", "", 200, `{"value":""}`},
	} {
		code, body := do(t, s, c.method, c.path, c.body)
		if code != c.code || (c.answer != "" && body != c.answer+"\n") {
			t.Errorf("%s %s: %d %q, want %d %q", c.method, c.path, code, body, c.code, c.answer)
		}
	}
	if _, ok := s.Global("PBXD_DID_331"); ok {
		t.Error("POST without a value did not delete the variable")
	}
	do(t, s, "POST", "/asterisk/variable?variable=EMPTY&value=", "")
	if v, ok := s.Global("EMPTY"); !ok || v != "" {
		t.Errorf("value=\"\" gives %q, %v; want an empty variable", v, ok)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if names := s.GlobalNames(""); len(names) != 0 {
		t.Errorf("globals survive a restart: %v", names)
	}
}

// RouteInbound follows the shipped dial plan: digits only, "+" dropped,
// the endpoint must exist with a live contact.
func TestRouteInbound(t *testing.T) {
	t.Parallel()
	s := NewTest(t, Options{})
	do(t, s, "PUT", "/asterisk/config/dynamic/res_pjsip/aor/100@acme", `{"fields":[{"attribute":"max_contacts","value":"1"}]}`)
	do(t, s, "PUT", "/asterisk/config/dynamic/res_pjsip/endpoint/100@acme", `{"fields":[{"attribute":"allow","value":"ulaw"},{"attribute":"aors","value":"100@acme"}]}`)
	do(t, s, "POST", "/asterisk/variable?variable=PBXD_DID_33142000001&value=100@acme", "")
	do(t, s, "POST", "/asterisk/variable?variable=PBXD_DID_33142000002&value=200@acme", "")
	for num, want := range map[string]int{"+33142000001": Unavailable, "+33142000002": Unavailable, "+33142000003": Unallocated, "+33 1": Unallocated, "": Unallocated} {
		if _, got := s.RouteInbound(num); got != want {
			t.Errorf("RouteInbound(%q) = %d, want %d", num, got, want)
		}
	}
	if err := s.RegisterContact("100@acme", "sip:100@127.0.0.1:5070"); err != nil {
		t.Fatal(err)
	}
	for _, num := range []string{"+33142000001", "33142000001"} {
		if ep, got := s.RouteInbound(num); got != Ringing || ep != "100@acme" {
			t.Errorf("RouteInbound(%q) = %q %d, want 100@acme ringing", num, ep, got)
		}
	}
}
