package e2e

import (
	"net/http"
	"testing"

	"github.com/pbxd/pbxd/internal/app/apptest"
)

// A port-in whose order fails (the card is declined) keeps its numbers for
// the requesting account: nobody else can order them, by choice or by
// prefix, until the port-in is retried (then they are the account's) or
// cancelled (then the numbers it imported leave the inventory).
func TestFailedPortInKeepsItsNumbers(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acct := d.CreateAccount(t, map[string]any{"payment_mode": "card"})
	addMethod(t, d, acct, "sandbox_decline")
	tok := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/tokens", nil).Map(t)["token"].(string)
	other := d.CreateAccount(t, nil)
	state := func(num string) string {
		for _, n := range numbersAt(t, d, "/v1/numbers?prefix=%2B3315") {
			if n.Number == num {
				return n.State
			}
		}
		return "absent"
	}
	portIn := func(num string) requestView {
		pi := fileRequest(t, d, tok, acct, map[string]any{"kind": "port_in", "details": map[string]any{
			"numbers": []string{num}, "country": "FR", "losing_carrier": "SFR", "carrier_account": "C-123"}})
		decideRequest(t, d, pi.ID, "approve", nil)
		if r := d.Call(t, apptest.OperatorToken, "POST", "/v1/requests/"+pi.ID+"/done", map[string]any{}); r.Status != http.StatusPaymentRequired {
			t.Fatalf("port-in done with a declined card: %d %s", r.Status, r.Body)
		}
		return pi
	}
	pi := portIn("+33155000001")
	for _, order := range []map[string]any{{"number": "+33155000001"}, {"prefix": "+3315500", "quantity": 1}} {
		r := d.Call(t, apptest.OperatorToken, "POST", "/v1/accounts/"+other+"/changes", map[string]any{"items": []any{}, "numbers": []any{order}})
		if r.Status != http.StatusConflict {
			t.Fatalf("another account orders %v of a failed port-in: %d %s", order, r.Status, r.Body)
		}
	}

	// Retried with a working card: the number is the account's.
	addMethod(t, d, acct, "sandbox_approve")
	decideRequest(t, d, pi.ID, "done", map[string]any{})
	if st := state("+33155000001"); st != "reserved" {
		t.Fatalf("number after the retried port-in: %s", st)
	}
	if held := numbersAt(t, d, "/v1/accounts/"+acct+"/numbers"); len(held) != 1 || held[0].Number != "+33155000001" {
		t.Fatalf("account numbers = %+v", held)
	}

	// Another port-in fails, then is cancelled: its number leaves the
	// inventory instead of being sold to anyone.
	addMethod(t, d, acct, "sandbox_decline")
	pi = portIn("+33155000002")
	if st := state("+33155000002"); st != "available" {
		t.Fatalf("number of the failed port-in: %s", st)
	}
	decideRequest(t, d, pi.ID, "reject", map[string]any{"comment": "SFR refused the port"})
	if st := state("+33155000002"); st != "absent" {
		t.Fatalf("number of the cancelled port-in: %s", st)
	}
}
