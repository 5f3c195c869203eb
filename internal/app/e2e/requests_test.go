package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pbxd/pbxd/internal/app/apptest"
)

type requestView struct {
	ID       string  `json:"id"`
	Kind     string  `json:"kind"`
	State    string  `json:"state"`
	ChangeID *string `json:"change_id"`
	Comments []struct {
		Actor, Text, State string
	}
}

func fileRequest(t *testing.T, d *apptest.Daemon, tok, acct string, body map[string]any) requestView {
	t.Helper()
	r := d.Call(t, tok, "POST", "/v1/accounts/"+acct+"/requests", body)
	if r.Status != http.StatusCreated {
		t.Fatalf("file %v: %d %s", body, r.Status, r.Body)
	}
	var v requestView
	r.JSON(t, &v)
	return v
}

func decideRequest(t *testing.T, d *apptest.Daemon, id, action string, body map[string]any) requestView {
	t.Helper()
	var v requestView
	var b any // no body at all when none is given (a nil map would send null)
	if body != nil {
		b = body
	}
	d.Op(t, http.StatusOK, "POST", "/v1/requests/"+id+"/"+action, b).JSON(t, &v)
	return v
}

func requestAudit(t *testing.T, d *apptest.Daemon, object string) []string {
	t.Helper()
	rows, _ := d.App.Pool().Query(t.Context(), `SELECT action FROM audit_log WHERE object = $1 ORDER BY id`, object)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// "Request cancellation of all your telephone packages": filed by the
// customer, approved by the operator at the period end; nothing changes
// before it, then every line and number goes and December is not billed.
func TestCancelAllRequest(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	importNumbers(t, d, "local", "+33142000001", "+33142000002")
	acct := d.CreateAccount(t, nil)
	tok := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/tokens", nil).Map(t)["token"].(string)
	d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 2}, map[string]any{"package": "world", "quantity": 1})
	pv := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []any{},
		"numbers": []map[string]any{{"prefix": "+3314", "quantity": 2}}}).Map(t)
	d.Op(t, http.StatusOK, "POST", "/v1/changes/"+pv["id"].(string)+"/confirm", nil)

	for _, c := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"kind": "frobnicate", "details": map[string]any{}}, "kind"},
		{map[string]any{"details": map[string]any{}}, "kind"},
		{map[string]any{"kind": "cancel_all"}, "details"},
		{map[string]any{"kind": "downgrade", "details": map[string]any{}}, "details.items"},
		{map[string]any{"kind": "cancel_all", "details": map[string]any{"numbers": []string{"+33142000001"}}}, "details.numbers"},
		{map[string]any{"kind": "remove_number", "details": map[string]any{"numbers": []string{"+33199999999"}}}, "details.numbers"},
		{map[string]any{"kind": "port_in", "details": map[string]any{"numbers": []string{"+33155000001"}, "country": "FR"}}, "details.losing_carrier"},
		{map[string]any{"kind": "other", "details": map[string]any{"text": "hi"}, "urgent": true}, "urgent"},
	} {
		if r := d.Call(t, tok, "POST", "/v1/accounts/"+acct+"/requests", c.body); r.Status != 422 || r.Map(t)["field"] != c.field {
			t.Errorf("%v: %d %s, want 422 naming %s", c.body, r.Status, r.Body, c.field)
		}
	}

	req := fileRequest(t, d, tok, acct, map[string]any{"kind": "cancel_all", "details": map[string]any{"reason": "moving abroad"}})
	if req.State != "open" {
		t.Fatalf("filed request = %+v", req)
	}
	if r := d.Call(t, tok, "POST", "/v1/requests/"+req.ID+"/approve", map[string]any{}); r.Status != http.StatusForbidden {
		t.Fatalf("customer approving: %d", r.Status)
	}
	if r := d.Call(t, tok, "POST", "/v1/requests/"+req.ID+"/comments", map[string]any{"text": "please keep my numbers until the end of the month"}); r.Status != http.StatusOK {
		t.Fatalf("comment: %d %s", r.Status, r.Body)
	}
	approved := decideRequest(t, d, req.ID, "approve", map[string]any{"comment": "sorry to see you go"})
	if approved.State != "approved" || approved.ChangeID == nil || len(approved.Comments) != 2 || approved.Comments[1].State != "approved" {
		t.Fatalf("approved = %+v", approved)
	}
	if r := d.Call(t, apptest.OperatorToken, "POST", "/v1/requests/"+req.ID+"/approve", map[string]any{}); r.Status != http.StatusConflict {
		t.Fatalf("approving twice: %d %s", r.Status, r.Body)
	}
	var sched struct {
		Scheduled []scheduledView `json:"scheduled_changes"`
	}
	d.Call(t, tok, "GET", "/v1/accounts/"+acct+"/scheduled-changes", nil).JSON(t, &sched)
	if len(sched.Scheduled) != 3 {
		t.Fatalf("scheduled after approval = %+v, want France, World and the numbers", sched.Scheduled)
	}
	if n := len(lines(t, d, tok, acct)); n != 3 {
		t.Fatalf("lines before the period end: %d, want 3", n)
	}
	for _, n := range numbersAt(t, d, "/v1/accounts/"+acct+"/numbers") {
		if n.State != "removal_requested" {
			t.Fatalf("number %s before the period end: %s", n.Number, n.State)
		}
	}

	d.SetClock(t, "2026-12-02T10:00:00+01:00")
	if n := len(lines(t, d, tok, acct)); n != 0 {
		t.Fatalf("lines after the period end: %d, want 0", n)
	}
	if n := len(numbersAt(t, d, "/v1/accounts/"+acct+"/numbers")); n != 0 {
		t.Fatalf("account still holds %d numbers", n)
	}
	if n := len(numbersAt(t, d, "/v1/numbers?state=aging")); n != 2 {
		t.Fatalf("%d numbers in quarantine, want 2", n)
	}
	for _, pkg := range []string{"fr-fixed-mobile", "world", "local-number"} {
		if q := renewalQuantity(t, d, acct, pkg, "2026-12-01"); q != -1 {
			t.Errorf("December bills %d of %s after cancel_all", q, pkg)
		}
		if q := subscriptionsOf(t, d, acct)[pkg].Quantity; q != 0 {
			t.Errorf("%s quantity after cancel_all = %d", pkg, q)
		}
	}
	done := decideRequest(t, d, req.ID, "done", map[string]any{"comment": "closed"})
	if done.State != "done" {
		t.Fatalf("done = %+v", done)
	}
	if got := strings.Join(requestAudit(t, d, req.ID), ","); got != "request.open,request.comment,request.approved,request.done" {
		t.Fatalf("audit of the request = %s", got)
	}
	for _, st := range []string{"open", "approved", "done"} {
		if v := metric(t, d.Registry, "pbxd_service_requests_events_total", map[string]string{"kind": "cancel_all", "state": st}); v != 1 {
			t.Errorf("pbxd_service_requests_events_total{kind=cancel_all, state=%s} = %v, want 1", st, v)
		}
	}
}

// Numbers by request: a removal rejected then approved at once (credit,
// quarantine), a port-out waiting for the period end, and a port-in whose
// numbers join the inventory and the account when done.
func TestNumberRequests(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	importNumbers(t, d, "local", "+33142000001", "+33142000002")
	acct := d.CreateAccount(t, nil)
	tok := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/tokens", nil).Map(t)["token"].(string)
	pv := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []any{},
		"numbers": []map[string]any{{"prefix": "+3314", "quantity": 2}}}).Map(t)
	d.Op(t, http.StatusOK, "POST", "/v1/changes/"+pv["id"].(string)+"/confirm", nil)
	state := func(num string) string {
		for _, n := range numbersAt(t, d, "/v1/numbers?prefix=%2B33") {
			if n.Number == num {
				return n.State
			}
		}
		return "absent"
	}

	rm := fileRequest(t, d, tok, acct, map[string]any{"kind": "remove_number", "details": map[string]any{"numbers": []string{"+33 1 42 00 00 01"}}})
	if state("+33142000001") != "removal_requested" {
		t.Fatalf("number during the request: %s", state("+33142000001"))
	}
	if r := d.Call(t, apptest.OperatorToken, "POST", "/v1/requests/"+rm.ID+"/reject", map[string]any{}); r.Status != 422 || r.Map(t)["field"] != "comment" {
		t.Fatalf("reject without comment: %d %s", r.Status, r.Body)
	}
	decideRequest(t, d, rm.ID, "reject", map[string]any{"comment": "the number is on your invoice header; call us"})
	if state("+33142000001") != "reserved" {
		t.Fatalf("number after rejection: %s", state("+33142000001"))
	}
	rm = fileRequest(t, d, tok, acct, map[string]any{"kind": "remove_number", "details": map[string]any{"numbers": []string{"+33142000001"}}})
	decideRequest(t, d, rm.ID, "approve", map[string]any{"effective": "now"})
	if state("+33142000001") != "aging" || subscriptionsOf(t, d, acct)["local-number"].Quantity != 1 {
		t.Fatalf("after an approved removal now: %s, quantity %d", state("+33142000001"), subscriptionsOf(t, d, acct)["local-number"].Quantity)
	}

	po := fileRequest(t, d, tok, acct, map[string]any{"kind": "port_out", "details": map[string]any{"numbers": []string{"+33142000002"}, "gaining_carrier": "Orange"}})
	decideRequest(t, d, po.ID, "approve", nil)
	if state("+33142000002") != "removal_requested" {
		t.Fatalf("port-out before the period end: %s", state("+33142000002"))
	}

	pi := fileRequest(t, d, tok, acct, map[string]any{"kind": "port_in", "details": map[string]any{
		"numbers": []string{"+33155000001"}, "country": "FR", "losing_carrier": "SFR", "carrier_account": "C-123"}})
	if r := d.Call(t, apptest.OperatorToken, "POST", "/v1/requests/"+pi.ID+"/done", map[string]any{}); r.Status != http.StatusConflict {
		t.Fatalf("done before approval: %d %s", r.Status, r.Body)
	}
	decideRequest(t, d, pi.ID, "approve", map[string]any{"comment": "porting on the 25th"})
	if state("+33155000001") != "absent" {
		t.Fatal("a port-in number joined the inventory before the port was done")
	}
	decideRequest(t, d, pi.ID, "done", map[string]any{})
	if state("+33155000001") != "reserved" {
		t.Fatalf("ported-in number: %s", state("+33155000001"))
	}

	d.SetClock(t, "2026-12-02T10:00:00+01:00")
	if state("+33142000002") != "aging" {
		t.Fatalf("port-out after the period end: %s", state("+33142000002"))
	}
	held := numbersAt(t, d, "/v1/accounts/"+acct+"/numbers")
	if len(held) != 1 || held[0].Number != "+33155000001" || subscriptionsOf(t, d, acct)["local-number"].Quantity != 1 {
		t.Fatalf("account numbers after the period end = %+v", held)
	}
	var list struct{ Requests []requestView }
	d.Call(t, tok, "GET", "/v1/accounts/"+acct+"/requests", nil).JSON(t, &list)
	if len(list.Requests) != 4 {
		t.Fatalf("%d requests listed, want 4", len(list.Requests))
	}
	other := d.CreateAccount(t, nil)
	otherTok := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+other+"/tokens", nil).Map(t)["token"].(string)
	if r := d.Call(t, otherTok, "GET", "/v1/requests/"+pi.ID, nil); r.Status != http.StatusNotFound {
		t.Fatalf("another account reads the request: %d", r.Status)
	}
}
