package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/pbxd/pbxd/internal/app/apptest"
)

func importWithFee(t *testing.T, d *apptest.Daemon, fee int64, nums ...string) {
	t.Helper()
	d.Op(t, http.StatusOK, "POST", "/v1/numbers/import", map[string]any{
		"country": "FR", "area": "+331", "kind": "local", "addon": "local-number", "setup_fee_minor": fee, "numbers": nums})
}

// setupLines returns the invoice's setup-fee lines.
func setupLines(inv invoiceDoc) (n int, net int64) {
	for _, l := range inv.Lines {
		if strings.HasPrefix(l.Description, "Setup fee: ") {
			n++
			net += l.AmountMinor
		}
	}
	return n, net
}

// Numbers' setup fees are charged once, whole, at order: a one-time line
// of the preview, in its totals with VAT, on the confirm's invoice (card)
// or the next bill (invoice account), and never on a renewal.
// Hand-computed, on 16 November (15 of November's 30 days left), VAT 20 %:
//
//	card: 3 numbers × 3.00 × 15/30 = 4.50; setup fees 2 × 10.00 + 12.34
//	  = 32.34; net 36.84, VAT 7.368 → 7.37, gross 44.21.
//	December renewal: 3 × 3.00 = 9.00 net, 1.80 VAT, 10.80; no setup fee.
//	invoice: 1 number: 1.50 prorated + 5.00 setup = 6.50 on the next bill;
//	  December: 3.00 + 6.50 = 9.50 net, 1.90 VAT, 11.40 gross.
func TestNumberSetupFeesChargedOnce(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	importWithFee(t, d, 1000, "+33142000001", "+33142000002")
	importWithFee(t, d, 1234, "+33142000009")
	importWithFee(t, d, 500, "+33143000001")
	card := d.CreateAccount(t, map[string]any{"payment_mode": "card"})
	addMethod(t, d, card, "sandbox_approve")

	r := d.Call(t, apptest.OperatorToken, "POST", "/v1/accounts/"+card+"/changes", map[string]any{"items": []any{},
		"numbers": []map[string]any{{"prefix": "+3314200000", "quantity": 2}, {"number": "+33142000009"}}})
	if r.Status != http.StatusCreated {
		t.Fatalf("preview: %d %s", r.Status, r.Body)
	}
	var pv struct {
		ID    string
		Items []struct {
			Package       string
			ProratedMinor int64 `json:"prorated_minor"`
		}
		DueNow struct {
			NetMinor   int64 `json:"net_minor"`
			TaxMinor   int64 `json:"tax_minor"`
			GrossMinor int64 `json:"gross_minor"`
		} `json:"due_now"`
		OneTime []struct {
			Description string
			Quantity    int
			UnitMinor   int64 `json:"unit_minor"`
			AmountMinor int64 `json:"amount_minor"`
		} `json:"one_time_charges"`
	}
	r.JSON(t, &pv)
	if len(pv.Items) != 1 || pv.Items[0].ProratedMinor != 450 || len(pv.OneTime) != 2 ||
		pv.OneTime[0].Description != "Setup fee: Local number (DID)" || pv.OneTime[0].Quantity != 2 || pv.OneTime[0].UnitMinor != 1000 || pv.OneTime[0].AmountMinor != 2000 ||
		pv.OneTime[1].Quantity != 1 || pv.OneTime[1].UnitMinor != 1234 || pv.OneTime[1].AmountMinor != 1234 {
		t.Fatalf("preview = %s", r.Body)
	}
	if pv.DueNow.NetMinor != 3684 || pv.DueNow.TaxMinor != 737 || pv.DueNow.GrossMinor != 4421 {
		t.Fatalf("due now = %+v, want 36.84 + 7.37 = 44.21", pv.DueNow)
	}
	res := d.Op(t, http.StatusOK, "POST", "/v1/changes/"+pv.ID+"/confirm", nil).Map(t)
	inv := invoiceGet(t, d, res["invoice_id"].(string))
	if n, net := setupLines(inv); inv.Status != "paid" || inv.NetMinor != 3684 || inv.TaxMinor != 737 || inv.GrossMinor != 4421 || n != 2 || net != 3234 {
		t.Fatalf("order invoice = %+v", inv)
	}

	invoiceAcct := d.CreateAccount(t, nil)
	r = d.Call(t, apptest.OperatorToken, "POST", "/v1/accounts/"+invoiceAcct+"/changes", map[string]any{"items": []any{},
		"numbers": []map[string]any{{"number": "+33143000001"}}})
	pvi := r.Map(t)
	if r.Status != http.StatusCreated || pvi["charge_next_bill_minor"] != 650.0 || pvi["due_now"].(map[string]any)["gross_minor"] != 0.0 {
		t.Fatalf("invoice account preview: %d %s", r.Status, r.Body)
	}
	d.Op(t, http.StatusOK, "POST", "/v1/changes/"+pvi["id"].(string)+"/confirm", nil)

	d.SetClock(t, "2026-12-01T02:00:00+01:00")
	invs := invoiceList(t, d, card)
	if len(invs) != 2 {
		t.Fatalf("card account: %d invoices after the December run, want 2", len(invs))
	}
	dec := invoiceGet(t, d, invs[1].ID)
	if n, _ := setupLines(dec); n != 0 || dec.NetMinor != 900 || dec.TaxMinor != 180 || dec.GrossMinor != 1080 {
		t.Fatalf("December renewal of the card account = %+v", dec)
	}
	invs = invoiceList(t, d, invoiceAcct)
	if len(invs) != 1 {
		t.Fatalf("invoice account: %d invoices, want 1", len(invs))
	}
	dec = invoiceGet(t, d, invs[0].ID)
	if n, net := setupLines(dec); n != 1 || net != 500 || dec.NetMinor != 950 || dec.TaxMinor != 190 || dec.GrossMinor != 1140 {
		t.Fatalf("December bill of the invoice account = %+v", dec)
	}
}
