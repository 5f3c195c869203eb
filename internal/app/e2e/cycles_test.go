package e2e

import (
	"net/http"
	"testing"
	"time"
)

// A quarterly subscription is prorated over its real 92-day quarter,
// shows its per-month figure, and renews for the next quarter at the
// quarterly price; a monthly one switched to quarterly mid-period is
// credited the rest of November and charged the new quarter. Figures:
// billing/testdata/cycles_vectors.json.
func TestQuarterlyCycleAndSwitch(t *testing.T) {
	t.Parallel()
	d := startAt(t, "2026-11-16T10:00:00+01:00")

	var cat struct {
		Packages []struct {
			Code   string
			Cycles []struct {
				Cycle         string
				DiscountBP    int64 `json:"discount_bp"`
				PriceMinor    int64 `json:"price_minor"`
				PerMonthMinor int64 `json:"per_month_minor"`
			}
		}
	}
	d.Op(t, http.StatusOK, "GET", "/v1/packages", nil).JSON(t, &cat)
	offered := map[string][2]int64{}
	for _, p := range cat.Packages {
		if p.Code == "fr-fixed-mobile" {
			for _, c := range p.Cycles {
				offered[c.Cycle] = [2]int64{c.PriceMinor, c.PerMonthMinor}
			}
		}
	}
	if want := map[string][2]int64{"monthly": {4990, 4990}, "quarterly": {14222, 4741}, "semiannual": {26946, 4491}, "annual": {50898, 4242}}; len(offered) != 4 ||
		offered["quarterly"] != want["quarterly"] || offered["semiannual"] != want["semiannual"] || offered["annual"] != want["annual"] || offered["monthly"] != want["monthly"] {
		t.Fatalf("catalog cycles = %v, want %v", offered, want)
	}

	acct := d.CreateAccount(t, nil)
	pv := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []map[string]any{
		{"package": "fr-fixed-mobile", "quantity": 2, "cycle": "quarterly"}}})
	var p struct {
		ID    string
		Items []struct {
			Cycle         string
			UnitMinor     int64 `json:"unit_price_minor"`
			PerMonthMinor int64 `json:"per_month_minor"`
			ProratedMinor int64 `json:"prorated_minor"`
		}
	}
	pv.JSON(t, &p)
	if it := p.Items[0]; it.Cycle != "quarterly" || it.UnitMinor != 14222 || it.PerMonthMinor != 4741 || it.ProratedMinor != 23806 {
		t.Fatalf("quarterly preview = %s", pv.Body)
	}
	d.Op(t, http.StatusOK, "POST", "/v1/changes/"+p.ID+"/confirm", nil)
	sub := subscriptionsOf(t, d, acct)["fr-fixed-mobile"]
	if sub.Cycle != "quarterly" || !sub.CurrentPeriodStart.Equal(paris(t, "2026-11-01 00:00:00")) || !sub.CurrentPeriodEnd.Equal(paris(t, "2027-02-01 00:00:00")) {
		t.Fatalf("quarterly subscription = %+v", sub)
	}

	// A monthly subscription switched to quarterly on the same day.
	other := d.CreateAccount(t, nil)
	d.Change(t, other, map[string]any{"package": "fr-fixed-mobile", "quantity": 2})
	sw := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+other+"/changes", map[string]any{"items": []map[string]any{
		{"package": "fr-fixed-mobile", "quantity": 2, "cycle": "quarterly"}}}).Map(t)
	item := sw["items"].([]any)[0].(map[string]any)
	if item["cycle_from"] != "monthly" || item["cycle"] != "quarterly" || item["prorated_minor"] != 18816.0 ||
		sw["credit_next_bill_minor"] != 4990.0 || sw["charge_next_bill_minor"] != 23806.0 {
		t.Fatalf("switch preview = %v", sw)
	}
	res := d.Op(t, http.StatusOK, "POST", "/v1/changes/"+sw["id"].(string)+"/confirm", nil).Map(t)
	if len(res["lines_created"].([]any)) != 0 || len(res["lines_removed"].([]any)) != 0 {
		t.Fatalf("a cycle switch touched lines: %v", res)
	}
	if s := subscriptionsOf(t, d, other)["fr-fixed-mobile"]; s.Cycle != "quarterly" || s.Quantity != 2 || s.PeriodPriceMinor != 14222 ||
		!s.CurrentPeriodEnd.Equal(paris(t, "2027-02-01 00:00:00")) {
		t.Fatalf("switched subscription = %+v", s)
	}

	// Renewed for the next quarter at the quarterly price.
	d.SetClock(t, "2027-02-02T10:00:00+01:00")
	sub = subscriptionsOf(t, d, acct)["fr-fixed-mobile"]
	if !sub.CurrentPeriodStart.Equal(paris(t, "2027-02-01 00:00:00")) || !sub.CurrentPeriodEnd.Equal(paris(t, "2027-05-01 00:00:00")) {
		t.Fatalf("after renewal: %s – %s", sub.CurrentPeriodStart.Format(time.RFC3339), sub.CurrentPeriodEnd.Format(time.RFC3339))
	}
	found := false
	for _, row := range invoiceList(t, d, acct) {
		for _, l := range invoiceGet(t, d, row.ID).Lines {
			if l.Package == "fr-fixed-mobile" && l.PeriodStart == "2027-02-01" {
				found = true
				if l.Quantity != 2 || l.UnitMinor != 14222 || l.AmountMinor != 28444 || l.PeriodEnd < "2027-04-30" {
					t.Fatalf("quarterly renewal line = %+v", l)
				}
			}
		}
	}
	if !found {
		t.Fatal("no renewal line for the quarter starting 2027-02-01")
	}
}
