package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/pbxd/pbxd/internal/app/apptest"
)

// accountRequests lists an account's service requests through the API.
func accountRequests(t *testing.T, d *apptest.Daemon, acct string) []requestView {
	t.Helper()
	var list struct{ Requests []requestView }
	d.Op(t, http.StatusOK, "GET", "/v1/accounts/"+acct+"/requests", nil).JSON(t, &list)
	return list.Requests
}

func scheduledChanges(t *testing.T, d *apptest.Daemon, acct string) []scheduledView {
	t.Helper()
	var list struct {
		Scheduled []scheduledView `json:"scheduled_changes"`
	}
	d.Op(t, http.StatusOK, "GET", "/v1/accounts/"+acct+"/scheduled-changes", nil).JSON(t, &list)
	return list.Scheduled
}

// Get in touch files real service requests (the API's service), the
// customer sees their states and the operator's comments; the operator
// approves and rejects them from the portal; an approved downgrade waits
// for the period end on My packages, where the owner cancels it.
func TestPortalServiceRequests(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acct := d.CreateAccount(t, nil)
	d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 3})
	ownerID := addUser(t, d, acct, "owner@example.com", "owner")
	memberID := addUser(t, d, acct, "member@example.com", "member")
	other := d.CreateAccount(t, map[string]any{"name": "Other"})
	addUser(t, d, other, "intruder@example.com", "owner")

	o := newBrowser(t, d)
	o.login("owner@example.com", "correct horse battery")
	_, body := o.get("/portal/")
	if !strings.Contains(body, `id="cancel-all"`) || !strings.Contains(body, "Request cancellation of all telephone packages") {
		t.Fatalf("My packages lacks the cancellation form")
	}
	// Bad input: the service's own message naming the field, nothing filed.
	st, _, body := o.post("/portal/contact", url.Values{"kind": {"other"}, "details": {"  "}})
	if st != http.StatusUnprocessableEntity || !strings.Contains(body, "a other request needs a text") {
		t.Errorf("empty other request: %d %s", st, errorText(body))
	}
	st, _, body = o.post("/portal/contact", url.Values{"kind": {"remove_number"}, "numbers": {"+33 not a number"}})
	if st != http.StatusUnprocessableEntity || !strings.Contains(body, "not an E.164 number") || !strings.Contains(body, `value="&#43;33 not a number"`) {
		t.Errorf("bad number: %d %s", st, errorText(body))
	}
	if n := len(accountRequests(t, d, acct)); n != 0 {
		t.Fatalf("%d requests filed by refused forms", n)
	}

	// The My packages button files a cancel_all request.
	if st, loc, _ := o.post("/portal/contact", url.Values{"kind": {"cancel_all"}, "details": {"moving abroad"}}); st != http.StatusSeeOther || loc != "/portal/contact?sent=1" {
		t.Fatalf("cancel_all: %d %q", st, loc)
	}
	o.get("/portal/contact")
	if st, _, _ := o.post("/portal/contact", url.Values{"kind": {"downgrade"}, "package": {"fr-fixed-mobile"}, "quantity": {"2"}, "details": {"one left"}}); st != http.StatusSeeOther {
		t.Fatalf("downgrade: %d", st)
	}
	reqs := accountRequests(t, d, acct)
	byKind := map[string]requestView{}
	for _, r := range reqs {
		byKind[r.Kind] = r
	}
	if len(reqs) != 2 || byKind["cancel_all"].State != "open" || byKind["downgrade"].State != "open" {
		t.Fatalf("requests after filing: %+v", reqs)
	}
	var details, createdBy string
	_ = d.App.Pool().QueryRow(t.Context(), `SELECT details::text, created_by FROM service_requests WHERE id = $1`, byKind["downgrade"].ID).Scan(&details, &createdBy)
	if !strings.Contains(details, `"package": "fr-fixed-mobile"`) || !strings.Contains(details, `"quantity": 2`) || createdBy != "user:"+ownerID {
		t.Errorf("downgrade stored as %s by %s", details, createdBy)
	}
	_, body = o.get("/portal/")
	if !strings.Contains(body, `id="cancel-all-requested"`) || strings.Contains(body, `id="cancel-all"`) {
		t.Errorf("My packages does not say the cancellation was requested")
	}
	_, body = o.get("/portal/contact")
	if !strings.Contains(body, `id="request-`+byKind["cancel_all"].ID+`"`) || !strings.Contains(body, "moving abroad") || !strings.Contains(body, "fr-fixed-mobile → 2") {
		t.Errorf("the owner's requests are not listed")
	}

	// A member files only free-text requests and sees only theirs.
	m := newBrowser(t, d)
	m.login("member@example.com", "correct horse battery")
	m.get("/portal/contact")
	if st, _, _ := m.post("/portal/contact", url.Values{"kind": {"cancel_all"}}); st != http.StatusUnprocessableEntity {
		t.Errorf("member cancel_all: %d", st)
	}
	if st, _, _ := m.post("/portal/contact", url.Values{"kind": {"other"}, "details": {"my phone rings twice"}}); st != http.StatusSeeOther {
		t.Fatalf("member other: %d", st)
	}
	_, body = m.get("/portal/contact")
	if !strings.Contains(body, "my phone rings twice") || strings.Contains(body, "moving abroad") {
		t.Errorf("member's request list shows others' requests or not theirs")
	}
	var memberReq string
	_ = d.App.Pool().QueryRow(t.Context(), `SELECT id FROM service_requests WHERE created_by = $1`, "user:"+memberID).Scan(&memberReq)

	// Another account's customer cannot comment on these requests.
	x := newBrowser(t, d)
	x.login("intruder@example.com", "correct horse battery")
	if st, _, _ := x.post("/portal/requests/"+memberReq+"/comment", url.Values{"text": {"hi"}}); st != http.StatusNotFound {
		t.Errorf("comment on another account's request: %d", st)
	}

	// The operator's queue: reject needs a comment; approve the downgrade
	// at the period end; reject the member's request with a comment.
	op := newBrowser(t, d)
	op.get("/portal/operator")
	op.post("/portal/operator", url.Values{"token": {apptest.OperatorToken}})
	st, body = op.get("/portal/operator/requests")
	if st != http.StatusOK || strings.Count(body, `data-state="open"`) != 3 {
		t.Fatalf("operator queue: %d, %d open rows", st, strings.Count(body, `data-state="open"`))
	}
	if st, _, body := op.post("/portal/operator/requests/"+memberReq+"/reject", url.Values{"comment": {""}}); st != http.StatusUnprocessableEntity || !strings.Contains(body, "a rejection needs a comment") {
		t.Errorf("reject without comment: %d %s", st, errorText(body))
	}
	if st, _, _ := op.do("POST", "/portal/operator/requests/"+memberReq+"/reject", url.Values{"comment": {"x"}, "csrf": {"forged"}}); st != http.StatusForbidden {
		t.Errorf("decision without the CSRF token: %d", st)
	}
	if st, loc, _ := op.post("/portal/operator/requests/"+memberReq+"/reject", url.Values{"comment": {"Please reboot the phone."}}); st != http.StatusSeeOther || loc != "/portal/operator/requests" {
		t.Fatalf("reject: %d %q", st, loc)
	}
	op.get("/portal/operator/requests")
	if st, _, _ := op.post("/portal/operator/requests/"+byKind["downgrade"].ID+"/approve", url.Values{"comment": {"Done at the end of the month."}, "effective": {"period_end"}}); st != http.StatusSeeOther {
		t.Fatalf("approve: %d", st)
	}
	for _, r := range accountRequests(t, d, acct) {
		want := map[string]string{"cancel_all": "open", "downgrade": "approved", "other": "rejected"}[r.Kind]
		if r.State != want {
			t.Errorf("%s request is %s, want %s", r.Kind, r.State, want)
		}
	}
	_, body = m.get("/portal/contact")
	if !strings.Contains(body, "Please reboot the phone.") || !strings.Contains(body, ">Rejected<") {
		t.Errorf("the member does not see the rejection and its comment")
	}
	// The customer answers on their request.
	if st, _, _ := m.post("/portal/requests/"+memberReq+"/comment", url.Values{"text": {"It works now."}}); st != http.StatusSeeOther {
		t.Errorf("member comment: %d", st)
	}
	if _, body = op.get("/portal/accounts/" + acct + "/contact"); !strings.Contains(body, "It works now.") {
		t.Errorf("operator's account view lacks the customer's comment")
	}

	// The approved downgrade waits for the period end: shown and
	// cancellable on My packages and the account summary.
	sched := scheduledChanges(t, d, acct)
	if len(sched) != 1 || sched[0].State != "pending" || sched[0].From != 3 || sched[0].To != 2 {
		t.Fatalf("scheduled changes: %+v", sched)
	}
	_, body = o.get("/portal/")
	if !strings.Contains(body, `data-scheduled="`+sched[0].ID+`"`) || !strings.Contains(body, "from 3 to 2 lines") {
		t.Errorf("My packages lacks the scheduled change")
	}
	if _, body = o.get("/portal/account"); !strings.Contains(body, `data-scheduled="`+sched[0].ID+`"`) {
		t.Errorf("account summary lacks the scheduled change")
	}
	if st, _, _ := x.post("/portal/scheduled/"+sched[0].ID+"/cancel", nil); st != http.StatusNotFound {
		t.Errorf("another account cancels the scheduled change: %d", st)
	}
	if st, _, _ := m.post("/portal/scheduled/"+sched[0].ID+"/cancel", nil); st != http.StatusForbidden {
		t.Errorf("a member cancels the scheduled change: %d", st)
	}
	o.get("/portal/")
	if st, loc, _ := o.post("/portal/scheduled/"+sched[0].ID+"/cancel", nil); st != http.StatusSeeOther || loc != "/portal/?cancelled=1" {
		t.Fatalf("cancel scheduled: %d %q", st, loc)
	}
	if sched = scheduledChanges(t, d, acct); sched[0].State != "cancelled" {
		t.Errorf("scheduled change is %s after cancel", sched[0].State)
	}
	if _, body = o.get("/portal/?cancelled=1"); strings.Contains(body, `data-scheduled="`) || !strings.Contains(body, "nothing will change at the period end") {
		t.Errorf("My packages still shows the cancelled change")
	}
	if st, _, _ := o.post("/portal/scheduled/"+sched[0].ID+"/cancel", nil); st != http.StatusConflict {
		t.Errorf("cancelling twice: %d", st)
	}
	if n := len(lines(t, d, apptest.OperatorToken, acct)); n != 3 {
		t.Errorf("%d lines, want 3", n)
	}
}

// errorText is the page's error box, for failure messages.
func errorText(body string) string {
	if i := strings.Index(body, `class="error"`); i >= 0 {
		return body[i:min(len(body), i+300)]
	}
	return "(no error box)"
}

// The upgrade screen offers every cycle of the catalog with its discount
// and per-month figure, the same figures as GET /v1/packages; a quarterly
// order goes through.
func TestPortalUpgradeCycles(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acct := d.CreateAccount(t, map[string]any{"payment_mode": "card"})
	addMethod(t, d, acct, "sandbox_approve")
	addUser(t, d, acct, "owner@example.com", "owner")
	var cat struct {
		Packages []struct {
			Code   string
			Cycles []struct {
				Cycle         string
				PriceMinor    int64 `json:"price_minor"`
				PerMonthMinor int64 `json:"per_month_minor"`
			}
		}
	}
	d.Op(t, http.StatusOK, "GET", "/v1/packages", nil).JSON(t, &cat)
	b := newBrowser(t, d)
	b.login("owner@example.com", "correct horse battery")
	_, page := b.get("/portal/plans/world/upgrade")
	_, plans := b.get("/portal/plans")
	eur := func(minor int64) string { return fmt.Sprintf("€%d.%02d", minor/100, minor%100) }
	seen := 0
	for _, p := range cat.Packages {
		if p.Code != "world" {
			continue
		}
		for _, c := range p.Cycles {
			seen++
			if !strings.Contains(page, `id="cycle-`+c.Cycle+`"`) || !strings.Contains(page, `data-unit="`+fmt.Sprint(c.PriceMinor)+`"`) {
				t.Errorf("upgrade lacks the %s cycle at %d", c.Cycle, c.PriceMinor)
			}
			if c.Cycle != "monthly" && !strings.Contains(page, `<span class="per-month">`+eur(c.PerMonthMinor)+`</span>`) {
				t.Errorf("upgrade lacks %s per month for %s", eur(c.PerMonthMinor), c.Cycle)
			}
			if !strings.Contains(plans, `<li data-cycle="`+c.Cycle+`">`) {
				t.Errorf("plans page lacks the %s offer", c.Cycle)
			}
		}
	}
	if seen != 4 {
		t.Fatalf("the demo catalog offers %d cycles for world, want 4", seen)
	}
	// Hand-checked figures: 69.90 × 3 − 5 % = 199.22 (66.41 a month);
	// 69.90 × 12 − 15 % = 712.98 (59.42 a month).
	for _, want := range []string{"5 % off", "10 % off", "15 % off", "€199.22", "€66.41", "€712.98", "€59.42"} {
		if !strings.Contains(page, want) {
			t.Errorf("upgrade page lacks %q", want)
		}
	}
	st, loc, _ := b.post("/portal/plans/world/upgrade", url.Values{"cycle": {"quarterly"}, "quantity": {"1"}})
	if st != http.StatusSeeOther {
		t.Fatalf("upgrade quarterly: %d", st)
	}
	b.get(loc)
	if st, _, body := b.post(loc+"/confirm", nil); st != http.StatusSeeOther {
		t.Fatalf("confirm: %d %s", st, errorText(body))
	}
	var subs struct {
		Subscriptions []struct{ Package, Cycle string }
	}
	d.Op(t, http.StatusOK, "GET", "/v1/accounts/"+acct+"/subscriptions", nil).JSON(t, &subs)
	if len(subs.Subscriptions) != 1 || subs.Subscriptions[0].Cycle != "quarterly" {
		t.Errorf("subscriptions: %+v", subs)
	}
	// Phones are bought, not subscribed: no plan row for hardware.
	if strings.Contains(plans, `data-package="yealink-t54w"`) {
		t.Errorf("plans page offers a phone as a plan")
	}
}
