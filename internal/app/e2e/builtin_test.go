package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pbxd/pbxd/internal/app/apptest"
	"github.com/pbxd/pbxd/sip/sipptest"
)

// waitSynced waits until every line of the account is applied to the PBX.
func waitSynced(t *testing.T, d *apptest.Daemon, account string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		var pending int
		if err := d.App.Pool().QueryRow(t.Context(), `SELECT count(*) FROM lines WHERE account_id = $1 AND revision > applied_revision`, account).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("lines never reached the PBX")
}

// A change order reaches the built-in registrar: phones register the new
// lines with real sipp, the registration shows in the lines view, a new
// password locks the old one out, and a removed line can no longer register.
func TestChangeOrderReachesTheBuiltinRegistrar(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	domain := "sipp.voip.example.net"
	acct := d.CreateAccount(t, map[string]any{"sip_domain": domain})
	d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 2})
	waitSynced(t, d, acct)
	ls := lines(t, d, apptest.OperatorToken, acct)
	var pw struct{ Password string }
	d.Op(t, http.StatusOK, "GET", "/v1/accounts/"+acct+"/lines/"+ls[0].ID+"/password", nil).JSON(t, &pw)
	target := d.App.Registrar().Addrs().UDP

	sipptest.Run(t, target, "u1", sipptest.Scenario("register.xml"), domain, ls[0].SIPUsername, pw.Password, 0).MustPass(t, "register a new line")
	deadline := time.Now().Add(10 * time.Second)
	for {
		l := lines(t, d, apptest.OperatorToken, acct)[0]
		if l.Registered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the registration never showed in the lines view")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A new password: the old one stops working once the PBX follows.
	var fresh struct{ Password string }
	d.Op(t, http.StatusOK, "POST", "/v1/accounts/"+acct+"/lines/"+ls[0].ID+"/password", nil).JSON(t, &fresh)
	waitSynced(t, d, acct)
	sipptest.Run(t, target, "u1", sipptest.Scenario("auth-fail.xml"), domain, ls[0].SIPUsername, pw.Password, 0).MustPass(t, "old password refused")
	sipptest.Run(t, target, "u1", sipptest.Scenario("register.xml"), domain, ls[0].SIPUsername, fresh.Password, 0).MustPass(t, "new password accepted")

	// Remove every line: the registrar forgets them.
	d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 0})
	waitSynced(t, d, acct)
	res := sipptest.Run(t, target, "u1", sipptest.Scenario("auth-fail.xml"), domain, ls[0].SIPUsername, fresh.Password, 0)
	res.MustPass(t, "a removed line is refused like an unknown user")
	if held, _ := d.App.Backend().List(t.Context()); len(held) != 0 {
		t.Fatalf("the registrar still holds %d lines", len(held))
	}
	if !strings.Contains(res.Messages, "401") {
		t.Fatalf("expected a 401 challenge:\n%s", sipptest.Tail(res.Messages, 2000))
	}
}
