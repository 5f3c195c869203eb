package portal

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/provisioning"
)

func TestDetailsFromForm(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		kind string
		form url.Values
		want string
	}{
		{"other", url.Values{"details": {"  call me  "}, "package": {"fr"}, "quantity": {"1"}}, `{"text":"call me"}`},
		{"cancel_all", url.Values{"details": {"moving"}, "numbers": {"+331"}}, `{"reason":"moving"}`},
		{"cancel_all", url.Values{}, `{}`},
		{"downgrade", url.Values{"package": {"fr"}, "quantity": {" 2 "}}, `{"items":[{"package":"fr","quantity":2}]}`},
		{"port_in", url.Values{"numbers": {"+33142000001, +33142000002"}, "country": {"FR"}, "losing_carrier": {"Orange"}, "gaining_carrier": {"x"}},
			`{"country":"FR","losing_carrier":"Orange","numbers":["+33142000001","+33142000002"]}`},
		{"port_out", url.Values{"numbers": {"+33142000001"}, "gaining_carrier": {"Free"}, "country": {"FR"}}, `{"gaining_carrier":"Free","numbers":["+33142000001"]}`},
		{"change_owner", url.Values{"new_owner_name": {"Bea"}, "new_owner_email": {"bea@example.com"}}, `{"new_owner":{"email":"bea@example.com","name":"Bea"}}`},
	} {
		got, err := detailsFromForm(c.kind, c.form)
		if err != nil || string(got) != c.want {
			t.Errorf("%s %v = %s, %v; want %s", c.kind, c.form, got, err, c.want)
		}
	}
	if _, err := detailsFromForm("downgrade", url.Values{"package": {"fr"}, "quantity": {"many"}}); !isInvalid(err, "quantity") {
		t.Errorf("bad quantity: %v", err)
	}
	if _, err := detailsFromForm("other", url.Values{"details": {strings.Repeat("x", 4001)}}); !isInvalid(err, "details") {
		t.Errorf("long details: %v", err)
	}
	if got := detailsSummary(json.RawMessage(`{"items":[{"package":"fr","quantity":2}],"reason":"fewer staff"}`)); got != "fr → 2 · fewer staff" {
		t.Errorf("summary = %q", got)
	}
}

func isInvalid(err error, field string) bool {
	fe, ok := fault.As(err)
	return ok && fe.Kind == fault.Invalid && fe.Field == field
}

// Whatever the form, the details are a JSON object holding only fields the
// kind takes (so the service judges the values, never stray fields), an
// "other" request's text is the trimmed Details, and a refusal names a
// form field.
func FuzzDetailsFromForm(f *testing.F) {
	f.Add("downgrade", "fewer", "fr", "2", "+33142000001", "FR")
	f.Add("other", " hi ", "", "", "", "")
	f.Add("port_in", "", "", "", "+33142000001;+33142000002\n", "FR")
	takes := map[string][]string{
		"cancel_all": {"reason"}, "downgrade": {"items", "reason"}, "remove_addon": {"items", "reason"},
		"remove_number": {"numbers", "reason"}, "port_in": {"numbers", "country", "losing_carrier", "carrier_account", "reason"},
		"port_out": {"numbers", "gaining_carrier", "reason"}, "change_owner": {"new_owner", "reason"}, "other": {"text"},
	}
	f.Fuzz(func(t *testing.T, kind, details, pkg, qty, numbers, country string) {
		if !slices.Contains(provisioning.RequestKinds, kind) {
			kind = provisioning.RequestKinds[len(kind)%len(provisioning.RequestKinds)]
		}
		form := url.Values{"details": {details}, "package": {pkg}, "quantity": {qty}, "numbers": {numbers}, "country": {country},
			"losing_carrier": {country}, "gaining_carrier": {country}, "new_owner_name": {country}}
		raw, err := detailsFromForm(kind, form)
		if err != nil {
			if fe, ok := fault.As(err); !ok || fe.Kind != fault.Invalid || form[fe.Field] == nil {
				t.Fatalf("refusal %v names no form field", err)
			}
			return
		}
		var got map[string]json.RawMessage
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatalf("details %s are not a JSON object: %v", raw, err)
		}
		for k := range got {
			if !slices.Contains(takes[kind], k) {
				t.Fatalf("%s details carry %q: %s", kind, k, raw)
			}
		}
		if kind == "other" {
			var text string
			_ = json.Unmarshal(got["text"], &text)
			if text != strings.TrimSpace(details) {
				t.Fatalf("text %q from details %q", text, details)
			}
		}
	})
}
