package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxd/pbxd/billing"
	"github.com/pbxd/pbxd/billing/billingtest"
	"github.com/pbxd/pbxd/internal/app/apptest"
	"github.com/pbxd/pbxd/internal/config"
	"github.com/pbxd/pbxd/internal/store"
)

// startAt runs a daemon whose test clock starts at now.
func startAt(t *testing.T, now string, mutate ...func(*config.Config)) *apptest.Daemon {
	t.Helper()
	return apptest.Start(t, append([]func(*config.Config){func(c *config.Config) { c.TestClock = now }}, mutate...)...)
}

func addMethod(t *testing.T, d *apptest.Daemon, acct, token string) map[string]any {
	t.Helper()
	return d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/payment-methods",
		map[string]any{"gateway": "sandbox", "token": token, "default": true}).Map(t)
}

type invoiceRow struct {
	ID         string `json:"id"`
	Number     string `json:"number"`
	Kind       string `json:"kind"`
	Status     string `json:"status"`
	NetMinor   int64  `json:"net_minor"`
	TaxMinor   int64  `json:"tax_minor"`
	GrossMinor int64  `json:"gross_minor"`
	PaymentRef string `json:"payment_ref"`
}

func invoiceList(t *testing.T, d *apptest.Daemon, acct string) []invoiceRow {
	t.Helper()
	var out struct{ Invoices []invoiceRow }
	d.Op(t, http.StatusOK, "GET", "/v1/accounts/"+acct+"/invoices", nil).JSON(t, &out)
	return out.Invoices
}

type invoiceDoc struct {
	ID     string `json:"id"`
	Number string `json:"number"`
	Status string `json:"status"`
	Lines  []struct {
		Description   string `json:"description"`
		Package       string `json:"package"`
		Quantity      int64  `json:"quantity"`
		UnitMinor     int64  `json:"unit_minor"`
		PeriodStart   string `json:"period_start"`
		PeriodEnd     string `json:"period_end"`
		ProrationNote string `json:"proration_note"`
		AmountMinor   int64  `json:"amount_minor"`
	} `json:"lines"`
	NetMinor   int64  `json:"net_minor"`
	TaxMinor   int64  `json:"tax_minor"`
	GrossMinor int64  `json:"gross_minor"`
	PaymentRef string `json:"payment_ref"`
	Currency   string `json:"currency"`
}

func invoiceGet(t *testing.T, d *apptest.Daemon, id string) invoiceDoc {
	t.Helper()
	var inv invoiceDoc
	d.Op(t, http.StatusOK, "GET", "/v1/invoices/"+id, nil).JSON(t, &inv)
	return inv
}

type subView struct {
	ID                 string    `json:"id"`
	Package            string    `json:"package"`
	Quantity           int       `json:"quantity"`
	Cycle              string    `json:"cycle"`
	Status             string    `json:"status"`
	PeriodPriceMinor   int64     `json:"period_price_minor"`
	CurrentPeriodStart time.Time `json:"current_period_start"`
	CurrentPeriodEnd   time.Time `json:"current_period_end"`
	NextPaymentAt      time.Time `json:"next_payment_at"`
}

func subscriptionsOf(t *testing.T, d *apptest.Daemon, acct string) map[string]subView {
	t.Helper()
	var out struct{ Subscriptions []subView }
	d.Op(t, http.StatusOK, "GET", "/v1/accounts/"+acct+"/subscriptions", nil).JSON(t, &out)
	m := map[string]subView{}
	for _, s := range out.Subscriptions {
		m[s.Package] = s
	}
	return m
}

func paris(t *testing.T, s string) time.Time {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	v, err := time.ParseInLocation(time.DateTime, s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestBillingSeedCase(t *testing.T) {
	t.Parallel()
	d := startAt(t, "2026-11-01T10:00:00+01:00")
	acct := d.CreateAccount(t, map[string]any{"payment_mode": "card"})
	addMethod(t, d, acct, "sandbox_approve")

	first := d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 3}, map[string]any{"package": "world", "quantity": 1})
	inv1 := invoiceGet(t, d, first["invoice_id"].(string))
	if inv1.Number != "2026-000001" || inv1.Status != "paid" || inv1.NetMinor != 3*4990+6990 || inv1.TaxMinor != 4392 || inv1.GrossMinor != 26352 || !strings.HasPrefix(inv1.PaymentRef, "sbx_") {
		t.Fatalf("first invoice = %+v", inv1)
	}

	d.SetClock(t, "2026-11-16T10:00:00+01:00")
	pv := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []map[string]any{
		{"package": "fr-fixed-mobile", "quantity": 4}, {"package": "world", "quantity": 0},
	}}).Map(t)
	due := pv["due_now"].(map[string]any)
	if due["net_minor"] != 2495.0 || due["tax_minor"] != 499.0 || due["gross_minor"] != 2994.0 || due["currency"] != "EUR" || pv["credit_next_bill_minor"] != 3495.0 {
		t.Fatalf("preview due_now = %v, credit = %v", due, pv["credit_next_bill_minor"])
	}
	prorated := map[string]float64{}
	for _, it := range pv["items"].([]any) {
		m := it.(map[string]any)
		prorated[m["package"].(string)] = m["prorated_minor"].(float64)
	}
	if prorated["fr-fixed-mobile"] != 2495 || prorated["world"] != -3495 {
		t.Fatalf("prorated = %v", prorated)
	}
	res := d.Op(t, http.StatusOK, "POST", "/v1/changes/"+pv["id"].(string)+"/confirm", nil).Map(t)
	inv2 := invoiceGet(t, d, res["invoice_id"].(string))
	// Confirm bills exactly what the preview showed.
	if inv2.Number != "2026-000002" || inv2.Status != "paid" || inv2.NetMinor != 2495 || inv2.TaxMinor != 499 || inv2.GrossMinor != 2994 ||
		len(inv2.Lines) != 1 || inv2.Lines[0].ProrationNote != "15 of 30 days" || inv2.Lines[0].PeriodStart != "2026-11-16" || inv2.Lines[0].UnitMinor != 4990 {
		t.Fatalf("change invoice = %+v", inv2)
	}
	var sum struct {
		CreditBalanceMinor int64 `json:"credit_balance_minor"`
		NextPayment        struct {
			At         time.Time `json:"at"`
			GrossMinor int64     `json:"gross_minor"`
		} `json:"next_payment"`
		DefaultPaymentMethod struct{ Gateway string } `json:"default_payment_method"`
	}
	d.Op(t, http.StatusOK, "GET", "/v1/accounts/"+acct+"/billing", nil).JSON(t, &sum)
	// December: 4 × 49.90 − 34.95 = 164.65 net, 197.58 gross.
	if sum.CreditBalanceMinor != 3495 || sum.NextPayment.GrossMinor != 19758 || !sum.NextPayment.At.Equal(paris(t, "2026-12-01 00:00:00")) || sum.DefaultPaymentMethod.Gateway != "sandbox" {
		t.Fatalf("summary before December = %+v", sum)
	}

	// The December renewal runs at 00:05 UTC on the 1st.
	d.SetClock(t, "2026-12-01T02:00:00+01:00")
	invs := invoiceList(t, d, acct)
	if len(invs) != 3 {
		t.Fatalf("%d invoices after the December run, want 3: %+v", len(invs), invs)
	}
	dec := invoiceGet(t, d, invs[2].ID)
	if dec.Number != "2026-000003" || dec.Status != "paid" || dec.NetMinor != 16465 || dec.TaxMinor != 3293 || dec.GrossMinor != 19758 || len(dec.Lines) != 2 {
		t.Fatalf("December invoice = %+v", dec)
	}
	if l := dec.Lines[0]; l.Quantity != 4 || l.AmountMinor != 19960 || l.PeriodStart != "2026-12-01" || l.PeriodEnd != "2027-01-01" || l.ProrationNote != "" {
		t.Fatalf("December renewal line = %+v", l)
	}
	if l := dec.Lines[1]; l.AmountMinor != -3495 || l.Package != "world" || l.ProrationNote != "15 of 30 days" {
		t.Fatalf("December credit line = %+v", l)
	}
	subs := subscriptionsOf(t, d, acct)
	for _, code := range []string{"fr-fixed-mobile", "world"} {
		s := subs[code]
		if !s.CurrentPeriodStart.Equal(paris(t, "2026-12-01 00:00:00")) || !s.CurrentPeriodEnd.Equal(paris(t, "2027-01-01 00:00:00")) || s.Status != "active" {
			t.Fatalf("%s after renewal = %+v", code, s)
		}
	}
	d.Op(t, http.StatusOK, "GET", "/v1/accounts/"+acct+"/billing", nil).JSON(t, &sum)
	if sum.CreditBalanceMinor != 0 || sum.NextPayment.GrossMinor != 23952 {
		t.Fatalf("summary after December = %+v", sum)
	}
	if got := metric(t, d.Registry, "pbxd_billing_invoices_total", map[string]string{"currency": "EUR", "kind": "invoice"}); got != 3 {
		t.Errorf("pbxd_billing_invoices_total = %v, want 3", got)
	}
	if got := metric(t, d.Registry, "pbxd_billing_invoiced_minor_total", map[string]string{"currency": "EUR"}); got != 26352+2994+19758 {
		t.Errorf("pbxd_billing_invoiced_minor_total = %v", got)
	}
	if got := metric(t, d.Registry, "pbxd_billing_payment_attempts_total", map[string]string{"outcome": "approved"}); got != 3 {
		t.Errorf("approved attempts = %v, want 3", got)
	}
	if got := metric(t, d.Registry, "pbxd_billing_mrr_minor", map[string]string{"currency": "EUR"}); got != 19960 {
		t.Errorf("MRR = %v, want 19960", got)
	}
	if got := metric(t, d.Registry, "pbxd_billing_subscriptions", map[string]string{"status": "active"}); got != 1 {
		t.Errorf("active subscriptions gauge = %v, want 1 (World has no seats)", got)
	}
}

func TestBillingAnnualDiscount(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t) // 2026-11-16
	acct := d.CreateAccount(t, map[string]any{"payment_mode": "card"})
	addMethod(t, d, acct, "sandbox_approve")
	res := d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 1, "cycle": "annual"})
	// 12 × 49.90 × 0.85 = 508.98 a year; 350 of 365 days left from 16 November.
	annual, perMonth, err := billing.AnnualPrice(4990, billing.Percent(15))
	if err != nil || annual != 50898 || perMonth != 4242 {
		t.Fatalf("AnnualPrice = %d, %d, %v", annual, perMonth, err)
	}
	inv := invoiceGet(t, d, res["invoice_id"].(string))
	if inv.NetMinor != billing.ProrateDays(50898, 350, 365) || inv.NetMinor != 48806 || inv.Lines[0].ProrationNote != "350 of 365 days" || inv.Lines[0].PeriodEnd != "2027-11-01" {
		t.Fatalf("annual order invoice = %+v", inv)
	}
	var sum struct {
		Plans []struct {
			Cycle                      string `json:"cycle"`
			PricePerLinePerPeriodMinor int64  `json:"price_per_line_per_period_minor"`
			PricePerLinePerMonthMinor  int64  `json:"price_per_line_per_month_minor"`
			Description                string `json:"description"`
			Seats                      struct{ Prepaid, Used, Available int64 }
		} `json:"plans"`
		NextPayment struct {
			At       time.Time `json:"at"`
			NetMinor int64     `json:"net_minor"`
		} `json:"next_payment"`
	}
	d.Op(t, http.StatusOK, "GET", "/v1/accounts/"+acct+"/billing", nil).JSON(t, &sum)
	if len(sum.Plans) != 1 || sum.Plans[0].Cycle != "annual" || sum.Plans[0].PricePerLinePerPeriodMinor != 50898 || sum.Plans[0].PricePerLinePerMonthMinor != 4242 ||
		sum.Plans[0].Description != "France fixed & mobile, 42.42 per line per month, billed annually; 1 line: 42.42 per month" ||
		sum.Plans[0].Seats.Prepaid != 1 || sum.Plans[0].Seats.Used != 1 || sum.Plans[0].Seats.Available != 0 {
		t.Fatalf("summary = %+v", sum)
	}
	if sum.NextPayment.NetMinor != 50898 || !sum.NextPayment.At.Equal(paris(t, "2027-11-01 00:00:00")) {
		t.Fatalf("next payment = %+v", sum.NextPayment)
	}
	// Nothing is billed during the year.
	d.SetClock(t, "2027-06-15T10:00:00+02:00")
	if n := len(invoiceList(t, d, acct)); n != 1 {
		t.Fatalf("%d invoices mid-year, want 1", n)
	}
	d.SetClock(t, "2027-11-01T03:00:00+01:00")
	invs := invoiceList(t, d, acct)
	if len(invs) != 2 || invs[1].NetMinor != 50898 || invs[1].GrossMinor != 61078 || invs[1].Status != "paid" {
		t.Fatalf("annual renewal = %+v", invs)
	}
	s := subscriptionsOf(t, d, acct)["fr-fixed-mobile"]
	if !s.CurrentPeriodEnd.Equal(paris(t, "2028-11-01 00:00:00")) || s.PeriodPriceMinor != 50898 {
		t.Fatalf("annual subscription after renewal = %+v", s)
	}
	if got := metric(t, d.Registry, "pbxd_billing_mrr_minor", map[string]string{"currency": "EUR"}); got != 4242 {
		t.Errorf("MRR of one annual line = %v, want 4242 (1/12 of 508.98)", got)
	}
}

func withTrialPackage(c *config.Config) {
	c.Catalog = append(c.Catalog, config.Package{Code: "trial-pkg", Name: "Trial package", Kind: "package", PriceMinor: 1000, Currency: "EUR",
		Cycles: []config.Cycle{{Cycle: "monthly"}}, TrialDays: 14, DialContext: "pkg-trial"})
}

func TestBillingTrialConverts(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t, withTrialPackage) // 2026-11-16: trial until 30 November
	acct := d.CreateAccount(t, map[string]any{"payment_mode": "card"})
	addMethod(t, d, acct, "sandbox_approve")
	pv := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []map[string]any{{"package": "trial-pkg", "quantity": 2}}}).Map(t)
	if pv["due_now"].(map[string]any)["gross_minor"] != 0.0 {
		t.Fatalf("a trial charges nothing now: %v", pv["due_now"])
	}
	res := d.Op(t, http.StatusOK, "POST", "/v1/changes/"+pv["id"].(string)+"/confirm", nil).Map(t)
	if res["invoice_id"] != nil {
		t.Fatalf("trial order issued invoice %v", res["invoice_id"])
	}
	if s := subscriptionsOf(t, d, acct)["trial-pkg"]; s.Status != "trial" {
		t.Fatalf("subscription = %+v", s)
	}
	d.SetClock(t, "2026-11-29T12:00:00+01:00")
	if n := len(invoiceList(t, d, acct)); n != 0 {
		t.Fatalf("%d invoices during the trial", n)
	}
	// A daemon that slept through the trial's end catches up: the trial's
	// last day (1 of 30 days of November), then December in advance.
	d.SetClock(t, "2026-12-01T02:00:00+01:00")
	invs := invoiceList(t, d, acct)
	if len(invs) != 2 {
		t.Fatalf("invoices after the trial = %+v", invs)
	}
	nov, dec := invoiceGet(t, d, invs[0].ID), invoiceGet(t, d, invs[1].ID)
	if nov.NetMinor != 67 || nov.Lines[0].ProrationNote != "1 of 30 days" || nov.Lines[0].PeriodStart != "2026-11-30" || nov.Status != "paid" {
		t.Fatalf("trial conversion invoice = %+v", nov)
	}
	if dec.NetMinor != 2000 || dec.Lines[0].PeriodStart != "2026-12-01" {
		t.Fatalf("first renewal after the trial = %+v", dec)
	}
	if s := subscriptionsOf(t, d, acct)["trial-pkg"]; s.Status != "active" || !s.CurrentPeriodEnd.Equal(paris(t, "2027-01-01 00:00:00")) {
		t.Fatalf("subscription after the trial = %+v", s)
	}
	var n int
	if err := d.App.Pool().QueryRow(t.Context(), `SELECT count(*) FROM audit_log WHERE account_id = $1 AND action = 'subscription.trial_converted'`, acct).Scan(&n); err != nil || n != 1 {
		t.Fatalf("audit trial_converted = %d, %v", n, err)
	}
}

func lineStates(t *testing.T, d *apptest.Daemon, acct string) []string {
	t.Helper()
	var out []string
	for _, l := range lines(t, d, apptest.OperatorToken, acct) {
		out = append(out, l.State)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// declinedRenewal sets up a card account with 2 France lines whose December
// renewal is declined, and returns the account and the open invoice.
func declinedRenewal(t *testing.T, d *apptest.Daemon) (acct, invoice string) {
	t.Helper()
	acct = d.CreateAccount(t, map[string]any{"payment_mode": "card"})
	addMethod(t, d, acct, "sandbox_approve")
	d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 2})
	addMethod(t, d, acct, "sandbox_decline") // the new default
	d.SetClock(t, "2026-12-01T02:00:00+01:00")
	invs := invoiceList(t, d, acct)
	if len(invs) != 2 || invs[1].Status != "open" {
		t.Fatalf("declined renewal = %+v", invs)
	}
	if st := lineStates(t, d, acct); !slices.Equal(st, []string{"active"}) {
		t.Fatalf("lines during dunning = %v", st)
	}
	return acct, invs[1].ID
}

func auditActions(t *testing.T, d *apptest.Daemon, acct string) []string {
	t.Helper()
	rows, err := d.App.Pool().Query(t.Context(), `SELECT action FROM audit_log WHERE account_id = $1 AND (actor = 'billing' OR action LIKE 'invoice.%' OR action LIKE 'subscription.%') ORDER BY id`, acct)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

func TestBillingDunningSuspendsThenMarkPaidResumes(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acct, inv := declinedRenewal(t, d)
	// Retries at +1 and +3 days fail; the +7 days one is the last.
	for _, at := range []string{"2026-12-02T03:00:00+01:00", "2026-12-04T03:00:00+01:00"} {
		d.SetClock(t, at)
		if s := subscriptionsOf(t, d, acct)["fr-fixed-mobile"]; s.Status != "active" {
			t.Fatalf("at %s: subscription %s", at, s.Status)
		}
	}
	d.SetClock(t, "2026-12-08T03:00:00+01:00")
	if s := subscriptionsOf(t, d, acct)["fr-fixed-mobile"]; s.Status != "inactive" {
		t.Fatalf("after the last retry: subscription %s", s.Status)
	}
	if st := lineStates(t, d, acct); !slices.Equal(st, []string{"suspended"}) {
		t.Fatalf("lines after the last retry = %v", st)
	}
	var attempts int
	if err := d.App.Pool().QueryRow(t.Context(), `SELECT count(*) FROM payment_attempts WHERE invoice_id = $1 AND outcome = 'declined'`, inv).Scan(&attempts); err != nil || attempts != 4 {
		t.Fatalf("declined attempts = %d, %v", attempts, err)
	}
	// Only the operator marks invoices paid.
	tok := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/tokens", nil).Map(t)["token"].(string)
	if r := d.Call(t, tok, "POST", "/v1/invoices/"+inv+"/mark-paid", map[string]any{"reference": "x"}); r.Status != http.StatusForbidden {
		t.Fatalf("customer mark-paid: %d %s", r.Status, r.Body)
	}
	paid := d.Op(t, http.StatusOK, "POST", "/v1/invoices/"+inv+"/mark-paid", map[string]any{"reference": "SEPA-2026-12-09"}).Map(t)
	if paid["status"] != "paid" || paid["payment_ref"] != "SEPA-2026-12-09" {
		t.Fatalf("mark-paid = %v", paid)
	}
	if r := d.Call(t, apptest.OperatorToken, "POST", "/v1/invoices/"+inv+"/mark-paid", nil); r.Status != http.StatusConflict {
		t.Fatalf("second mark-paid: %d %s", r.Status, r.Body)
	}
	if s := subscriptionsOf(t, d, acct)["fr-fixed-mobile"]; s.Status != "active" {
		t.Fatalf("after payment: subscription %s", s.Status)
	}
	if st := lineStates(t, d, acct); !slices.Equal(st, []string{"active"}) {
		t.Fatalf("lines after payment = %v", st)
	}
	want := []string{"dunning.started", "dunning.retry_failed", "dunning.retry_failed", "dunning.exhausted", "lines.suspended",
		"subscription.inactive", "invoice.paid", "lines.active", "subscription.reactivated"}
	if got := auditActions(t, d, acct); !slices.Equal(got, want) {
		t.Fatalf("audit trail = %v, want %v", got, want)
	}
}

func TestBillingDunningSuccessfulRetryResumes(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acct, inv := declinedRenewal(t, d)
	for _, at := range []string{"2026-12-02T03:00:00+01:00", "2026-12-04T03:00:00+01:00", "2026-12-08T03:00:00+01:00"} {
		d.SetClock(t, at)
	}
	if st := lineStates(t, d, acct); !slices.Equal(st, []string{"suspended"}) {
		t.Fatalf("lines after the last retry = %v", st)
	}
	// A new default card pays the overdue invoice at once, in that request.
	if pm := addMethod(t, d, acct, "sandbox_approve"); !slices.Equal(pm["settled_invoices"].([]any), []any{inv}) {
		t.Fatalf("new default method = %v, want it to settle %s", pm, inv)
	}
	if got := invoiceGet(t, d, inv); got.Status != "paid" || !strings.HasPrefix(got.PaymentRef, "sbx_") {
		t.Fatalf("invoice after a successful retry = %+v", got)
	}
	if s := subscriptionsOf(t, d, acct)["fr-fixed-mobile"]; s.Status != "active" {
		t.Fatalf("after the retry: subscription %s", s.Status)
	}
	if st := lineStates(t, d, acct); !slices.Equal(st, []string{"active"}) {
		t.Fatalf("lines after the retry = %v", st)
	}
}

// Making a saved card the default is also the customer's answer to
// dunning: the overdue invoice is paid in that request.
func TestBillingMakeDefaultPaysOverdue(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acct, inv := declinedRenewal(t, d)
	for _, at := range []string{"2026-12-02T03:00:00+01:00", "2026-12-04T03:00:00+01:00", "2026-12-08T03:00:00+01:00"} {
		d.SetClock(t, at)
	}
	pm := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/payment-methods",
		map[string]any{"gateway": "sandbox", "token": "sandbox_approve", "default": false}).Map(t)
	if got := invoiceGet(t, d, inv); got.Status != "open" {
		t.Fatalf("a card that is not the default paid the invoice: %+v", got)
	}
	d.Op(t, http.StatusOK, "POST", "/v1/accounts/"+acct+"/payment-methods/"+pm["id"].(string)+"/default", nil)
	if got := invoiceGet(t, d, inv); got.Status != "paid" || !strings.HasPrefix(got.PaymentRef, "sbx_") {
		t.Fatalf("invoice after making the card default = %+v", got)
	}
	if st := lineStates(t, d, acct); !slices.Equal(st, []string{"active"}) {
		t.Fatalf("lines after making the card default = %v", st)
	}
	d.Op(t, http.StatusNotFound, "POST", "/v1/accounts/"+acct+"/payment-methods/00000000-0000-0000-0000-000000000000/default", nil)
}

// A renewal run interrupted half-way, then run again (twice), bills every
// subscription × period exactly once with gapless numbers.
func TestBillingRenewalInterruptedAndRepeated(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	const n = 24
	for i := range n {
		acct := d.CreateAccount(t, map[string]any{"sip_domain": fmt.Sprintf("r%d.voip.example.net", i)}) // invoice mode
		d.Change(t, acct, map[string]any{"package": "world", "quantity": 1})
	}
	var done atomic.Int64
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	svc, err := billing.NewService(billing.Options{
		DB: store.NewDB(d.App.Pool()), Clock: fixedClock{}, Workers: 3, Registry: prometheus.NewRegistry(),
		Settings: billing.Settings{IssuerCode: d.Config.Billing.Issuer.Code, Issuer: billing.Issuer{Name: "Demo"}, PaymentTermDays: 14, Dunning: billing.DefaultDunningSchedule},
		AfterRenewal: func(string) {
			if done.Add(1) == 7 {
				cancel()
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	runAt := paris(t, "2026-12-01 02:00:00")
	st, err := svc.Renew(ctx, runAt)
	if err == nil || st.Renewed >= n || st.Renewed < 7 {
		t.Fatalf("interrupted run: %+v, %v", st, err)
	}
	var committed int64
	if err := d.App.Pool().QueryRow(t.Context(), `SELECT count(*) FROM renewals`).Scan(&committed); err != nil || committed != st.Renewed {
		t.Fatalf("interrupted run reported %d renewals, %d committed (%v)", st.Renewed, committed, err)
	}
	// Run again until done: rows still locked by the interrupted run's
	// dying transactions are skipped (SKIP LOCKED), never billed twice.
	for i := 0; committed < n; i++ {
		st2, err := svc.Renew(t.Context(), runAt)
		if err != nil || i > 50 {
			t.Fatalf("rerun %d: %+v, %v", i, st2, err)
		}
		committed += st2.Renewed
		time.Sleep(20 * time.Millisecond)
	}
	if st2, err := svc.Renew(t.Context(), runAt); err != nil || st2.Renewed != 0 || committed != n {
		t.Fatalf("a repeated run renewed %+v (%v); %d renewals in all, want %d", st2, err, committed, n)
	}
	// The daemon's own job and pbxctl's "billing run" find nothing left.
	d.SetClock(t, "2026-12-01T03:00:00+01:00")
	d.Op(t, http.StatusOK, "POST", "/v1/billing/run", nil)
	var renewals, invoices int
	pool := d.App.Pool()
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM renewals`).Scan(&renewals); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(t.Context(), `SELECT number FROM invoices ORDER BY number`)
	if err != nil {
		t.Fatal(err)
	}
	numbers, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	invoices = len(numbers)
	if renewals != n || invoices != n {
		t.Fatalf("%d renewals, %d invoices; want %d each", renewals, invoices, n)
	}
	for i, num := range numbers {
		if want := billing.FormatNumber(2026, int64(i+1)); num != want {
			t.Fatalf("invoice numbers %v: gap or duplicate at %d", numbers, i)
		}
	}
	// Each invoice carries the prorated November charge that waited (invoice
	// account) plus December in advance.
	var gross int64
	if err := pool.QueryRow(t.Context(), `SELECT min(net_minor) FROM invoices`).Scan(&gross); err != nil || gross != 3495+6990 {
		t.Fatalf("renewal net = %d, %v; want %d", gross, err, 3495+6990)
	}
}

type fixedClock struct{}

func (fixedClock) Now() time.Time { return time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC) }

// Twenty card accounts confirming at once get twenty consecutive numbers.
func TestBillingConcurrentIssuersGapless(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	const n = 20
	previews := make([]string, n)
	for i := range n {
		acct := d.CreateAccount(t, map[string]any{"payment_mode": "card", "sip_domain": fmt.Sprintf("c%d.voip.example.net", i)})
		addMethod(t, d, acct, "sandbox_approve")
		pv := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []map[string]any{{"package": "world", "quantity": 1 + i%3}}}).Map(t)
		previews[i] = pv["id"].(string)
	}
	var wg sync.WaitGroup
	ids := make([]string, n)
	errs := make(chan string, n)
	for i, pv := range previews {
		wg.Go(func() {
			r := d.Call(t, apptest.OperatorToken, "POST", "/v1/changes/"+pv+"/confirm", nil)
			if r.Status != http.StatusOK {
				errs <- fmt.Sprintf("confirm %d: %d %s", i, r.Status, r.Body)
				return
			}
			ids[i] = r.Map(t)["invoice_id"].(string)
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	var numbers []string
	for _, id := range ids {
		numbers = append(numbers, invoiceGet(t, d, id).Number)
	}
	slices.Sort(numbers)
	for i, num := range numbers {
		if want := billing.FormatNumber(2026, int64(i+1)); num != want {
			t.Fatalf("numbers %v: want %s at %d", numbers, want, i)
		}
	}
}

func TestBillingInvoiceDocumentsAndIsolation(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acct := d.CreateAccount(t, map[string]any{"payment_mode": "card", "name": "Acme SARL"})
	other := d.CreateAccount(t, map[string]any{"sip_domain": "other.voip.example.net"})
	addMethod(t, d, acct, "sandbox_approve")
	id := d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 1})["invoice_id"].(string)
	tok := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/tokens", nil).Map(t)["token"].(string)
	otherTok := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+other+"/tokens", nil).Map(t)["token"].(string)

	r := d.Call(t, tok, "GET", "/v1/invoices/"+id, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("own invoice: %d %s", r.Status, r.Body)
	}
	inv := r.Map(t)
	number := inv["number"].(string)
	if number != "2026-000001" || inv["customer"].(map[string]any)["name"] != "Acme SARL" || inv["issuer"].(map[string]any)["name"] != d.Config.Billing.Issuer.Name {
		t.Fatalf("invoice JSON = %v", inv)
	}
	r = d.Call(t, tok, "GET", "/v1/invoices/"+id+".html", nil)
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(r.Body), "Invoice "+number) || !strings.Contains(string(r.Body), "24.95") {
		t.Fatalf("HTML: %d %s", r.Status, r.Body)
	}
	r = d.Call(t, tok, "GET", "/v1/invoices/"+id+".pdf", nil)
	if r.Status != http.StatusOK || r.Header.Get("Content-Type") != "application/pdf" || !bytes.HasPrefix(r.Body, []byte("%PDF")) {
		t.Fatalf("PDF: %d %q", r.Status, r.Body[:min(len(r.Body), 40)])
	}
	if text := billingtest.PDFText(r.Body); !strings.Contains(text, "Invoice "+number) || !strings.Contains(text, "29.94 EUR") {
		t.Fatalf("PDF text lacks the number or total:\n%s", text)
	}
	// Another account's invoice does not exist for this caller, in any form.
	for _, suffix := range []string{"", ".html", ".pdf"} {
		if r := d.Call(t, otherTok, "GET", "/v1/invoices/"+id+suffix, nil); r.Status != http.StatusNotFound {
			t.Fatalf("other account GET %s: %d", suffix, r.Status)
		}
	}
	if r := d.Call(t, otherTok, "GET", "/v1/accounts/"+acct+"/invoices", nil); r.Status != http.StatusNotFound {
		t.Fatalf("other account's list: %d", r.Status)
	}
	if r := d.Call(t, tok, "GET", "/v1/invoices/not-an-id.pdf", nil); r.Status != http.StatusNotFound {
		t.Fatalf("bad id: %d", r.Status)
	}
	if list := invoiceList(t, d, acct); len(list) != 1 || list[0].Number != number {
		t.Fatalf("history = %+v", list)
	}
}

func TestBillingPaymentMethodsAndRefusals(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acct := d.CreateAccount(t, map[string]any{"payment_mode": "card"})
	path := "/v1/accounts/" + acct + "/payment-methods"
	for _, c := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"unknown gateway", map[string]any{"gateway": "stripe", "token": "tok"}, "gateway"},
		{"no gateway", map[string]any{"token": "sandbox_approve"}, "gateway"},
		{"unknown sandbox token", map[string]any{"gateway": "sandbox", "token": "4242424242424242"}, "token"},
		{"manual with a token", map[string]any{"gateway": "manual", "token": "x"}, "token"},
		{"unknown field", map[string]any{"gateway": "sandbox", "token": "sandbox_approve", "card_number": "4242"}, "card_number"},
	} {
		r := d.Call(t, apptest.OperatorToken, "POST", path, c.body)
		if r.Status != http.StatusUnprocessableEntity || r.Map(t)["field"] != c.field {
			t.Errorf("%s: %d %s, want 422 on %s", c.name, r.Status, r.Body, c.field)
		}
	}
	// A card account cannot confirm a charge without a default method.
	pv := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []map[string]any{{"package": "world", "quantity": 1}}}).Map(t)
	if r := d.Call(t, apptest.OperatorToken, "POST", "/v1/changes/"+pv["id"].(string)+"/confirm", nil); r.Status != http.StatusConflict || r.Map(t)["field"] != "payment_method" {
		t.Fatalf("confirm without a method: %d %s", r.Status, r.Body)
	}
	// A declined card refuses the whole change: no line, no invoice, no number used.
	decline := addMethod(t, d, acct, "sandbox_decline")
	pv = d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []map[string]any{{"package": "world", "quantity": 1}}}).Map(t)
	if r := d.Call(t, apptest.OperatorToken, "POST", "/v1/changes/"+pv["id"].(string)+"/confirm", nil); r.Status != http.StatusPaymentRequired || r.Map(t)["field"] != "payment_method" {
		t.Fatalf("declined confirm: %d %s", r.Status, r.Body)
	}
	if n := len(lines(t, d, apptest.OperatorToken, acct)); n != 0 {
		t.Fatalf("a declined change created %d lines", n)
	}
	approve := addMethod(t, d, acct, "sandbox_approve")
	var list struct {
		PaymentMethods []struct {
			ID      string
			Default bool
			Label   string
		} `json:"payment_methods"`
	}
	d.Op(t, http.StatusOK, "GET", path, nil).JSON(t, &list)
	if len(list.PaymentMethods) != 2 || list.PaymentMethods[0].ID != approve["id"] || !list.PaymentMethods[0].Default || list.PaymentMethods[1].Default {
		t.Fatalf("methods = %+v", list)
	}
	if strings.Contains(string(d.Op(t, http.StatusOK, "GET", path, nil).Body), "sandbox_approve\"") {
		t.Fatal("the token is shown")
	}
	d.Op(t, http.StatusNoContent, "DELETE", path+"/"+decline["id"].(string), nil)
	d.Op(t, http.StatusNotFound, "DELETE", path+"/"+decline["id"].(string), nil)
	pv = d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []map[string]any{{"package": "world", "quantity": 1}}}).Map(t)
	res := d.Op(t, http.StatusOK, "POST", "/v1/changes/"+pv["id"].(string)+"/confirm", nil).Map(t)
	if inv := invoiceGet(t, d, res["invoice_id"].(string)); inv.Number != "2026-000001" || inv.Status != "paid" {
		t.Fatalf("after the refusals the first invoice is %+v", inv)
	}
	if got := metric(t, d.Registry, "pbxd_billing_payment_attempts_total", map[string]string{"outcome": "declined"}); got != 1 {
		t.Errorf("declined attempts = %v, want 1", got)
	}
}

// An issued invoice is corrected by a credit note in the same gapless
// series: an open invoice is voided, a paid one credited on the next bill,
// and nothing is credited twice.
func TestBillingCreditNotes(t *testing.T) {
	t.Parallel()
	d := startAt(t, "2026-11-16T10:00:00+01:00")
	acct := d.CreateAccount(t, map[string]any{"payment_mode": "card"})
	addMethod(t, d, acct, "sandbox_approve")
	d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 1})
	paid := invoiceList(t, d, acct)[0]
	if paid.Status != "paid" || paid.GrossMinor != 2994 {
		t.Fatalf("first invoice = %+v", paid)
	}
	var cn invoiceDoc
	d.Op(t, http.StatusCreated, "POST", "/v1/invoices/"+paid.ID+"/credit-note", map[string]string{"reason": "goodwill"}).JSON(t, &cn)
	if cn.GrossMinor != -2994 || cn.NetMinor != -2495 || cn.Lines[0].AmountMinor != -2495 {
		t.Fatalf("credit note = %+v", cn)
	}
	if want := nextNumber(t, paid.Number); cn.Number != want {
		t.Fatalf("credit note number %s, want %s (gapless series)", cn.Number, want)
	}
	if r := d.Call(t, apptest.OperatorToken, "POST", "/v1/invoices/"+paid.ID+"/credit-note", nil); r.Status != http.StatusConflict {
		t.Fatalf("second credit note: %d %s", r.Status, r.Body)
	}
	if after := invoiceGet(t, d, paid.ID); after.Status != "paid" || after.GrossMinor != 2994 {
		t.Fatalf("the credited invoice changed: %+v", after)
	}
	// The credit lands on the December bill: 49.90 − 24.95 net.
	d.SetClock(t, "2026-12-01T02:00:00+01:00")
	invs := invoiceList(t, d, acct)
	dec := invs[len(invs)-1]
	if dec.NetMinor != 4990-2495 {
		t.Fatalf("December bill net %d, want %d (%+v)", dec.NetMinor, 4990-2495, invs)
	}

	// An open invoice is voided by its credit note; its dunning ends.
	d2 := startAt(t, "2026-11-16T10:00:00+01:00")
	_, open := declinedRenewal(t, d2)
	d2.Op(t, http.StatusCreated, "POST", "/v1/invoices/"+open+"/credit-note", nil)
	if got := invoiceGet(t, d2, open); got.Status != "void" {
		t.Fatalf("credited open invoice status %q, want void", got.Status)
	}
	if r := d2.Call(t, apptest.OperatorToken, "POST", "/v1/invoices/"+open+"/mark-paid", nil); r.Status != http.StatusConflict {
		t.Fatalf("mark-paid of a void invoice: %d", r.Status)
	}
	var pending int
	if err := d2.App.Pool().QueryRow(t.Context(), `SELECT count(*) FROM dunning WHERE invoice_id = $1 AND next_retry_at IS NOT NULL`, open).Scan(&pending); err != nil || pending != 0 {
		t.Fatalf("dunning still scheduled for a void invoice: %d %v", pending, err)
	}
}

func nextNumber(t *testing.T, n string) string {
	t.Helper()
	var year, seq int
	if _, err := fmt.Sscanf(n, "%d-%d", &year, &seq); err != nil {
		t.Fatalf("invoice number %q: %v", n, err)
	}
	return fmt.Sprintf("%04d-%06d", year, seq+1)
}
