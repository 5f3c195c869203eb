package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/pbxd/pbxd/internal/app/apptest"
	"github.com/pbxd/pbxd/pbx/asterisk/aritest"
)

// Numbers ring their line on Asterisk: assigning a number sets its global
// variable, and a call from the trunk to it (run through the shipped dial
// plan's logic by aritest.RouteInbound) reaches the line's endpoint. An
// Asterisk restart forgets the globals and pbxd pushes them again; a
// suspended line, an unassigned or released number no longer ring.
func TestNumbersRingTheLineOnAsterisk(t *testing.T) {
	t.Parallel()
	srv := aritest.NewTest(t, aritest.Options{Wizard: aritest.AstDB})
	d := startAsterisk(t, srv)
	importNumbers(t, d, "local", "+33142000001", "+33142000002", "+33142000003")
	acct := d.CreateAccount(t, map[string]any{"sip_domain": "acme.voip.example.net"})
	d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 2})
	pv := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []any{},
		"numbers": []map[string]any{{"prefix": "+3314200000", "quantity": 2}}}).Map(t)
	d.Op(t, http.StatusOK, "POST", "/v1/changes/"+pv["id"].(string)+"/confirm", nil)
	waitApplied(t, d, acct)
	ls := lines(t, d, apptest.OperatorToken, acct)
	a, b := ls[0], ls[1]
	for _, l := range ls {
		if err := srv.RegisterContact(epName(l), "sip:"+l.SIPUsername+"@127.0.0.1:5070"); err != nil {
			t.Fatal(err)
		}
	}
	rings := func(number, endpoint string) func() bool {
		return func() bool {
			got, outcome := srv.RouteInbound(number)
			if endpoint == "" {
				return outcome == aritest.Unallocated
			}
			return got == endpoint && outcome == aritest.Ringing
		}
	}
	if got, outcome := srv.RouteInbound("+33142000001"); outcome != aritest.Unallocated {
		t.Fatalf("a number on no line reaches %q (%d)", got, outcome)
	}

	d.Op(t, http.StatusOK, "POST", "/v1/accounts/"+acct+"/numbers/+33142000001/assignment", map[string]any{"line": a.ID})
	eventually(t, 10*time.Second, "+33142000001 ringing line a", rings("+33142000001", epName(a)))
	if v, _ := srv.Global("PBXD_DID_33142000001"); v != epName(a) {
		t.Fatalf("PBXD_DID_33142000001 = %q", v)
	}
	// The same number dialled without "+" (as many trunks send it); the
	// reserved number on no line and the one never sold do not ring.
	for num, want := range map[string]string{"33142000001": epName(a), "+33142000002": "", "+33142000003": ""} {
		if !rings(num, want)() {
			got, outcome := srv.RouteInbound(num)
			t.Errorf("call to %s reaches %q (%d), want %q", num, got, outcome, want)
		}
	}

	// Asterisk restarts: globals are lost, pbxd pushes them again.
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := srv.RegisterContact(epName(a), "sip:"+a.SIPUsername+"@127.0.0.1:5070"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "route pushed again after the restart", rings("+33142000001", epName(a)))

	// The main line (no line given) is the lowest extension; moving the
	// number moves the route.
	d.Op(t, http.StatusOK, "POST", "/v1/accounts/"+acct+"/numbers/+33142000002/assignment", map[string]any{})
	main := a
	if b.Extension < a.Extension {
		main = b
	}
	eventually(t, 10*time.Second, "+33142000002 ringing the main line", rings("+33142000002", epName(main)))
	d.Op(t, http.StatusOK, "POST", "/v1/accounts/"+acct+"/numbers/+33142000001/assignment", map[string]any{"line": b.ID})
	eventually(t, 10*time.Second, "+33142000001 moved to line b", rings("+33142000001", epName(b)))

	// A suspended line stops ringing (its contacts stay until they expire).
	if _, err := d.App.Pool().Exec(t.Context(), `UPDATE lines SET state='suspended', revision=revision+1, changed_at=now() WHERE id=$1`, b.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.App.Pool().Exec(t.Context(), `SELECT pg_notify('pbxd_lines','')`); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "no route to a suspended line", rings("+33142000001", ""))
	if _, ok := srv.Global("PBXD_DID_33142000001"); ok {
		t.Error("the variable of a suspended line's number is still set")
	}
	if _, err := d.App.Pool().Exec(t.Context(), `UPDATE lines SET state='active', revision=revision+1, changed_at=now() WHERE id=$1`, b.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.App.Pool().Exec(t.Context(), `SELECT pg_notify('pbxd_lines','')`); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "route back after resuming", rings("+33142000001", epName(b)))

	// Unassigned, then released: no route either way.
	d.Op(t, http.StatusOK, "DELETE", "/v1/accounts/"+acct+"/numbers/+33142000001/assignment", nil)
	eventually(t, 10*time.Second, "no route once unassigned", rings("+33142000001", ""))
	pv = d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []any{},
		"release_numbers": []string{"+33142000002"}, "release_effective": "now"}).Map(t)
	d.Op(t, http.StatusOK, "POST", "/v1/changes/"+pv["id"].(string)+"/confirm", nil)
	eventually(t, 10*time.Second, "no route once released", rings("+33142000002", ""))
	if names := srv.GlobalNames("PBXD_DID_"); len(names) != 0 {
		t.Errorf("variables left: %v", names)
	}
	// The route is cleared on Asterisk first, then recorded.
	eventually(t, 10*time.Second, "no number recorded as routed", func() bool {
		var routed int
		err := d.App.Pool().QueryRow(t.Context(), `SELECT count(*) FROM numbers WHERE routed_to <> ''`).Scan(&routed)
		return err == nil && routed == 0
	})
}
