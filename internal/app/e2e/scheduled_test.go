package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pbxd/pbxd/internal/app/apptest"
)

type scheduledView struct {
	ID          string `json:"id"`
	Package     string `json:"package"`
	From        int    `json:"from"`
	To          int    `json:"to"`
	EffectiveAt string `json:"effective_at"`
	State       string `json:"state"`
}

// renewalQuantity is the quantity of pkg billed for the period starting on
// day (YYYY-MM-DD) over all the account's invoices; -1 if none.
func renewalQuantity(t *testing.T, d *apptest.Daemon, acct, pkg, day string) int64 {
	t.Helper()
	q := int64(-1)
	for _, row := range invoiceList(t, d, acct) {
		for _, l := range invoiceGet(t, d, row.ID).Lines {
			if l.Package == pkg && strings.HasPrefix(l.PeriodStart, day) && l.AmountMinor > 0 {
				q = max(q, 0) + l.Quantity
			}
		}
	}
	return q
}

// A decrease at the period end charges and credits nothing now, keeps the
// lines, shows in the preview, "My packages" and the billing summary, and
// takes effect just before the renewal, which bills the new quantity. A
// scheduled change cancelled in time changes nothing.
func TestPeriodEndDecrease(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acct := d.CreateAccount(t, nil)
	tok := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/tokens", nil).Map(t)["token"].(string)
	d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 3}, map[string]any{"package": "world", "quantity": 2},
		map[string]any{"package": "local-number", "quantity": 2})

	r := d.Call(t, tok, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []map[string]any{
		{"package": "fr-fixed-mobile", "quantity": 1, "effective": "period_end"}}})
	if r.Status != http.StatusCreated {
		t.Fatalf("preview: %d %s", r.Status, r.Body)
	}
	var pv struct {
		ID    string
		Items []struct {
			From, To      int
			Effective     string
			EffectiveAt   string    `json:"effective_at"`
			ProratedMinor int64     `json:"prorated_minor"`
			LinesRemoved  []any     `json:"lines_removed"`
			AtEnd         []lineRef `json:"lines_removed_at_period_end"`
		}
		Credit int64 `json:"credit_next_bill_minor"`
		DueNow struct {
			Gross int64 `json:"gross_minor"`
		} `json:"due_now"`
	}
	r.JSON(t, &pv)
	it := pv.Items[0]
	if it.Effective != "period_end" || it.EffectiveAt != "2026-12-01T00:00:00+01:00" || it.ProratedMinor != 0 || len(it.LinesRemoved) != 0 ||
		len(it.AtEnd) != 2 || pv.Credit != 0 || pv.DueNow.Gross != 0 {
		t.Fatalf("preview = %s", r.Body)
	}
	res := d.Call(t, tok, "POST", "/v1/changes/"+pv.ID+"/confirm", nil).Map(t)
	if len(res["scheduled_changes"].([]any)) != 1 || len(res["lines_removed"].([]any)) != 0 {
		t.Fatalf("confirm = %v", res)
	}
	if n := len(lines(t, d, tok, acct)); n != 5 {
		t.Fatalf("lines right after a period-end decrease: %d, want 5", n)
	}

	// Shown everywhere; the package takes no other change meanwhile.
	var sum struct {
		Scheduled []scheduledView `json:"scheduled_changes"`
	}
	d.Call(t, tok, "GET", "/v1/accounts/"+acct+"/billing", nil).JSON(t, &sum)
	if len(sum.Scheduled) != 1 || sum.Scheduled[0].To != 1 || sum.Scheduled[0].State != "pending" {
		t.Fatalf("billing summary scheduled = %+v", sum.Scheduled)
	}
	var mine struct {
		Packages []struct {
			Package   string
			Scheduled *scheduledView `json:"scheduled_change"`
		}
	}
	d.Call(t, tok, "GET", "/v1/accounts/"+acct+"/packages", nil).JSON(t, &mine)
	for _, p := range mine.Packages {
		if (p.Scheduled != nil) != (p.Package == "fr-fixed-mobile") {
			t.Fatalf("My packages: %s scheduled = %+v", p.Package, p.Scheduled)
		}
	}
	pv2 := d.Call(t, tok, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []map[string]any{
		{"package": "world", "quantity": 0, "effective": "period_end"}}}).Map(t)
	if sc := pv2["scheduled_changes"].([]any); len(sc) != 1 {
		t.Fatalf("preview does not show the pending change: %v", pv2)
	}
	if r := d.Call(t, tok, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []map[string]any{
		{"package": "fr-fixed-mobile", "quantity": 0}}}); r.Status != http.StatusConflict || r.Map(t)["field"] != "items[0]" {
		t.Fatalf("a second decrease on a package with a pending one: %d %s", r.Status, r.Body)
	}
	// Going up meanwhile is allowed: the decrease still removes 2 seats.
	up := d.Call(t, tok, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []map[string]any{
		{"package": "fr-fixed-mobile", "quantity": 4}}}).Map(t)
	if r := d.Call(t, tok, "POST", "/v1/changes/"+up["id"].(string)+"/confirm", nil); r.Status != http.StatusOK {
		t.Fatalf("increase while a decrease waits: %d %s", r.Status, r.Body)
	}
	// The catalog does not let customers pick period_end on the add-on,
	// nor can an increase wait.
	for _, c := range []struct {
		item  map[string]any
		field string
	}{
		{map[string]any{"package": "local-number", "quantity": 1, "effective": "period_end"}, "items[0].effective"},
		{map[string]any{"package": "world", "quantity": 3, "effective": "period_end"}, "items[0].effective"},
		{map[string]any{"package": "world", "quantity": 1, "effective": "tomorrow"}, "items[0].effective"},
	} {
		if r := d.Call(t, tok, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []any{c.item}}); r.Status != 422 || r.Map(t)["field"] != c.field {
			t.Errorf("%v: %d %s", c.item, r.Status, r.Body)
		}
	}
	// The operator may.
	d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []map[string]any{
		{"package": "local-number", "quantity": 1, "effective": "period_end"}}})

	// world 2 → 0 at period end, then cancelled by the customer.
	wres := d.Call(t, tok, "POST", "/v1/changes/"+pv2["id"].(string)+"/confirm", nil).Map(t)
	wid := wres["scheduled_changes"].([]any)[0].(string)
	if r := d.Call(t, tok, "DELETE", "/v1/accounts/"+acct+"/scheduled-changes/"+wid, nil); r.Status != http.StatusOK || r.Map(t)["state"] != "cancelled" {
		t.Fatalf("cancel: %d %s", r.Status, r.Body)
	}
	if r := d.Call(t, tok, "DELETE", "/v1/accounts/"+acct+"/scheduled-changes/"+wid, nil); r.Status != http.StatusConflict {
		t.Fatalf("cancel twice: %d %s", r.Status, r.Body)
	}

	d.SetClock(t, "2026-12-02T10:00:00+01:00")
	ls := lines(t, d, tok, acct)
	count := map[string]int{}
	for _, l := range ls {
		count[l.Package]++
	}
	if count["fr-fixed-mobile"] != 2 || count["world"] != 2 {
		t.Fatalf("lines after the period end = %v, want 4-2 France and 2 World", count)
	}
	subs := subscriptionsOf(t, d, acct)
	if subs["fr-fixed-mobile"].Quantity != 2 {
		t.Fatalf("France quantity after the period end = %d", subs["fr-fixed-mobile"].Quantity)
	}
	if q := renewalQuantity(t, d, acct, "fr-fixed-mobile", "2026-12-01"); q != 2 {
		t.Fatalf("December renewal bills %d France lines, want 2", q)
	}
	if q := renewalQuantity(t, d, acct, "world", "2026-12-01"); q != 2 {
		t.Fatalf("December renewal bills %d World lines, want 2", q)
	}
	var all struct {
		Scheduled []scheduledView `json:"scheduled_changes"`
	}
	d.Call(t, tok, "GET", "/v1/accounts/"+acct+"/scheduled-changes", nil).JSON(t, &all)
	states := map[string]string{}
	for _, sc := range all.Scheduled {
		states[sc.Package] = sc.State
	}
	if states["fr-fixed-mobile"] != "applied" || states["world"] != "cancelled" {
		t.Fatalf("scheduled changes after the period end = %+v", all.Scheduled)
	}
}

// A preview made after a period began renews the account first (issue 13);
// it must apply the account's due period-end decreases first, as the
// renewal job does, or the renewal bills the old quantity.
func TestPreviewRenewalAppliesDueDecreasesFirst(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acct := d.CreateAccount(t, nil)
	tok := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/tokens", nil).Map(t)["token"].(string)
	d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 3})
	pv := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []map[string]any{
		{"package": "fr-fixed-mobile", "quantity": 1, "effective": "period_end"}}}).Map(t)
	d.Op(t, http.StatusOK, "POST", "/v1/changes/"+pv["id"].(string)+"/confirm", nil)

	// Three minutes into December: no job has run since the period began.
	if err := d.App.TestClock().Set(time.Date(2026, 12, 1, 0, 3, 0, 0, time.FixedZone("CET", 3600))); err != nil {
		t.Fatal(err)
	}
	if r := d.Call(t, tok, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []map[string]any{
		{"package": "world", "quantity": 1}}}); r.Status != http.StatusCreated {
		t.Fatalf("preview in the new period: %d %s", r.Status, r.Body)
	}
	if q := renewalQuantity(t, d, acct, "fr-fixed-mobile", "2026-12-01"); q != 1 {
		t.Fatalf("December renewal made by the preview bills %d France lines, want 1", q)
	}
	if n := len(lines(t, d, tok, acct)); n != 1 {
		t.Fatalf("lines after the period end = %d, want 1", n)
	}
}

type lineRef struct {
	ID        string `json:"id"`
	Extension int    `json:"extension"`
}
