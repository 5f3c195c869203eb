package e2e

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/pbxd/pbxd/internal/app/apptest"
)

// Local numbers on the portal: the free ones listed (by prefix), ordered
// by prefix or one by one through the change order summary (also after
// "Pay with" re-previews the order), shown on the numbers page and on
// their line in My packages.
func TestPortalNumbers(t *testing.T) {
	t.Parallel()
	d := startAt(t, "2026-11-01T10:00:00+01:00")
	importNumbers(t, d, "local", "+33142000001", "+33142000002", "+33142000003", "+33155000001")
	acct := d.CreateAccount(t, map[string]any{"payment_mode": "card"})
	pm := addMethod(t, d, acct, "sandbox_approve")["id"].(string)
	d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 1})
	addUser(t, d, acct, "owner@example.com", "owner")
	d.SetClock(t, "2026-11-16T10:00:00+01:00")

	b := newBrowser(t, d)
	b.login("owner@example.com", "correct horse battery")
	// Pages escape "+" as &#43;: compare the text.
	page := func(path string) string { _, body := b.get(path); return html.UnescapeString(body) }
	body := page("/portal/numbers")
	if !strings.Contains(body, `<td>+33142000001</td>`) || !strings.Contains(body, `<td>+33155000001</td>`) {
		t.Fatalf("free numbers not listed: %s", body)
	}
	if body = page("/portal/numbers?prefix=%2B3315"); strings.Contains(body, `<td>+33142000001</td>`) || !strings.Contains(body, `<td>+33155000001</td>`) {
		t.Errorf("prefix search shows other numbers")
	}
	// Refused orders say why and reserve nothing.
	if st, _, body := b.post("/portal/numbers", url.Values{"prefix": {"abc"}, "quantity": {"1"}}); st != http.StatusUnprocessableEntity || !strings.Contains(body, `id="numbers-error"`) {
		t.Errorf("bad prefix: %d %s", st, errorText(body))
	}
	if st, _, body := b.post("/portal/numbers", url.Values{"prefix": {"+3314"}, "quantity": {"9"}}); st != http.StatusConflict || !strings.Contains(body, `id="numbers-error"`) {
		t.Errorf("more numbers than free: %d %s", st, errorText(body))
	}
	if n := len(numbersAt(t, d, "/v1/accounts/"+acct+"/numbers")); n != 0 {
		t.Fatalf("%d numbers after refused orders", n)
	}

	st, loc, _ := b.post("/portal/numbers", url.Values{"prefix": {"+3314"}, "quantity": {"2"}})
	if st != http.StatusSeeOther || !strings.HasPrefix(loc, "/portal/changes/") {
		t.Fatalf("order by prefix: %d %q", st, loc)
	}
	body = page(loc)
	// 2 × 3.00 a month for 15 of 30 days = 3.00 before tax.
	if !strings.Contains(body, "New number: 2 starting with +3314") || !strings.Contains(body, `id="net">€3.00<`) {
		t.Errorf("summary of the number order lacks the numbers or the price")
	}
	// "Pay with" previews the same order again: the numbers go with it.
	st, loc, _ = b.post(loc+"/payment-method", url.Values{"pm": {pm}})
	if st != http.StatusSeeOther || !strings.HasPrefix(loc, "/portal/changes/") {
		t.Fatalf("pay with: %d %q", st, loc)
	}
	if body = page(loc); !strings.Contains(body, "New number: 2 starting with +3314") {
		t.Errorf("re-previewed order lost its numbers")
	}
	if st, _, body := b.post(loc+"/confirm", nil); st != http.StatusSeeOther {
		t.Fatalf("confirm: %d %s", st, errorText(body))
	}
	// A setup fee is a one-time line of the summary, in its totals:
	// 3.00 × 15/30 = 1.50 + 10.00 = 11.50 before tax (previewed only).
	importWithFee(t, d, 1000, "+33156000001")
	b.get("/portal/numbers")
	if st, loc, _ = b.post("/portal/numbers", url.Values{"number": {"+33156000001"}}); st != http.StatusSeeOther {
		t.Fatalf("order a number with a setup fee: %d", st)
	}
	if body = page(loc); !strings.Contains(body, "Setup fee, 1 × €10.00, charged once") || !strings.Contains(body, `id="net">€11.50<`) {
		t.Errorf("summary lacks the setup fee: %s", body)
	}
	b.get("/portal/numbers")
	st, loc, _ = b.post("/portal/numbers", url.Values{"number": {"+33155000001"}})
	if st != http.StatusSeeOther {
		t.Fatalf("order one number: %d", st)
	}
	b.get(loc)
	if st, _, _ := b.post(loc+"/confirm", nil); st != http.StatusSeeOther {
		t.Fatalf("confirm one number: %d", st)
	}
	mine := numbersAt(t, d, "/v1/accounts/"+acct+"/numbers")
	got := []string{}
	for _, n := range mine {
		got = append(got, n.Number)
	}
	if strings.Join(got, ",") != "+33142000001,+33142000002,+33155000001" {
		t.Fatalf("account's numbers = %v", got)
	}
	// Assigned to the line, the number shows in the lines table.
	d.Op(t, http.StatusOK, "POST", "/v1/accounts/"+acct+"/numbers/%2B33155000001/assignment", map[string]any{})
	body = page("/portal/")
	if !strings.Contains(body, `<td class="numbers">+33155000001</td>`) {
		t.Errorf("My packages does not show the line's number")
	}
	if body = page("/portal/numbers"); !strings.Contains(body, "On a line") || strings.Count(body, "Yours, on no line") != 2 {
		t.Errorf("numbers page states wrong")
	}
}

// Phones on the portal: the catalog's phones with their price, bought by
// card at once through the service (a refusal says why), the orders
// listed with their invoice.
func TestPortalPhones(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acct := d.CreateAccount(t, map[string]any{"payment_mode": "card"})
	addUser(t, d, acct, "owner@example.com", "owner")
	b := newBrowser(t, d)
	b.login("owner@example.com", "correct horse battery")
	_, body := b.get("/portal/phones")
	if !strings.Contains(body, `data-item="yealink-t54w"`) || !strings.Contains(body, "€189.00") {
		t.Fatalf("phones page lacks the Yealink at €189.00")
	}
	if st, _, body := b.post("/portal/phones", url.Values{"item": {"yealink-t54w"}, "quantity.yealink-t54w": {"0"}}); st != http.StatusUnprocessableEntity || !strings.Contains(body, `id="phones-error"`) {
		t.Errorf("zero phones: %d", st)
	}
	if st, _, body := b.post("/portal/phones", url.Values{"item": {"yealink-t54w"}, "quantity.yealink-t54w": {"1"}}); st != http.StatusConflict || !strings.Contains(body, `id="phones-error"`) {
		t.Errorf("no card: %d %s", st, errorText(body))
	}
	addMethod(t, d, acct, "sandbox_approve")
	st, loc, _ := b.post("/portal/phones", url.Values{"item": {"yealink-t54w"}, "quantity.yealink-t54w": {"2"}})
	if st != http.StatusSeeOther || !strings.HasPrefix(loc, "/portal/phones?bought=") {
		t.Fatalf("buy: %d %q", st, loc)
	}
	_, body = b.get(loc)
	if strings.Count(body, `data-state="paid"`) != 1 || strings.Count(body, `data-state="failed"`) != 1 || !strings.Contains(body, `href="/portal/invoices/`) {
		t.Errorf("orders list after buying")
	}
	var list struct {
		Orders []struct {
			State    string
			Quantity int
			Units    []struct{ State string }
		}
	}
	d.Op(t, http.StatusOK, "GET", "/v1/accounts/"+acct+"/hardware", nil).JSON(t, &list)
	paid := 0
	for _, o := range list.Orders {
		if o.State == "paid" && o.Quantity == 2 && len(o.Units) == 2 {
			paid++
		}
	}
	if paid != 1 {
		t.Errorf("hardware orders = %+v", list.Orders)
	}
	// Phones are not plans: Add/Modify offers no phone.
	if _, body = b.get("/portal/modify"); strings.Contains(body, "yealink-t54w") {
		t.Errorf("Add/Modify offers a phone")
	}
}
