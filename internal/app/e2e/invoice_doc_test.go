package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// The invoice as a customer reads it: how it was paid, where to transfer,
// credit applied and carried forward, labels, due dates, country names,
// times in the account's zone everywhere.
func TestInvoiceAsTheCustomerReadsIt(t *testing.T) {
	t.Parallel()
	d := startAt(t, "2026-11-01T10:00:00+01:00")
	acct := d.CreateAccount(t, map[string]any{"payment_mode": "card",
		"billing_address": map[string]string{"line1": "12 rue Pasteur, 3ᵉ étage", "city": "Lyon", "country": "FR"}})
	addMethod(t, d, acct, "sandbox_approve")
	first := d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 1}, map[string]any{"package": "world", "quantity": 3})
	var inv struct {
		IssuedAt string `json:"issued_at"`
		DueAt    string `json:"due_at"`
		Customer struct{ Address []string }
		Payment  *struct {
			At          string `json:"at"`
			Method      string `json:"method"`
			Reference   string `json:"reference"`
			AmountMinor int64  `json:"amount_minor"`
		} `json:"payment"`
		GrossMinor int64 `json:"gross_minor"`
		Lines      []struct {
			Description   string `json:"description"`
			AmountMinor   int64  `json:"amount_minor"`
			ProrationNote string `json:"proration_note"`
		} `json:"lines"`
	}
	d.Op(t, http.StatusOK, "GET", "/v1/invoices/"+first["invoice_id"].(string), nil).JSON(t, &inv)
	if p := inv.Payment; p == nil || p.Method != "Sandbox card (approve)" || p.AmountMinor != inv.GrossMinor || !strings.HasPrefix(p.Reference, "sbx_") ||
		!strings.HasPrefix(p.At, "2026-11-01T10:00:00+01:00") {
		t.Fatalf("payment block = %+v", inv.Payment)
	}
	if got := inv.Customer.Address; len(got) == 0 || got[len(got)-1] != "France" {
		t.Fatalf("customer address = %q, want the country spelt out", got)
	}
	html := string(d.Op(t, http.StatusOK, "GET", "/v1/invoices/"+first["invoice_id"].(string)+".html", nil).Body)
	if !strings.Contains(html, "by Sandbox card (approve)") || !strings.Contains(html, "on 2026-11-01") {
		t.Fatalf("HTML payment block missing:\n%s", html)
	}

	// World 3 → 0 on the 2nd: a credit of 3 × 69.90 × 29/30 = 202.71; the
	// December invoice (France 49.90) uses 49.90 of it and says 152.81
	// carries forward.
	d.SetClock(t, "2026-11-02T10:00:00+01:00")
	d.Change(t, acct, map[string]any{"package": "world", "quantity": 0})
	d.SetClock(t, "2026-12-01T02:00:00+01:00")
	invs := invoiceList(t, d, acct)
	dec := invs[len(invs)-1]
	d.Op(t, http.StatusOK, "GET", "/v1/invoices/"+dec.ID, nil).JSON(t, &inv)
	if inv.GrossMinor != 0 || len(inv.Lines) != 2 || inv.Lines[1].AmountMinor != -4990 ||
		!strings.Contains(inv.Lines[1].ProrationNote, "credit 202.71: 49.90 applied, 152.81 carried forward") {
		t.Fatalf("December invoice = %+v", inv)
	}
	if inv.DueAt != inv.IssuedAt || inv.Payment == nil || inv.Payment.Method != "Credit balance" {
		t.Fatalf("a zero invoice: due %s issued %s, payment %+v; want due at issue, paid by credit", inv.DueAt, inv.IssuedAt, inv.Payment)
	}
	var list struct {
		Invoices []struct {
			ID       string `json:"id"`
			IssuedAt string `json:"issued_at"`
		}
	}
	d.Op(t, http.StatusOK, "GET", "/v1/accounts/"+acct+"/invoices", nil).JSON(t, &list)
	if got := list.Invoices[len(list.Invoices)-1]; got.IssuedAt != inv.IssuedAt {
		t.Fatalf("the list says issued %s, the invoice %s", got.IssuedAt, inv.IssuedAt)
	}

	// An annual line on an order invoice says so.
	annual := d.Change(t, acct, map[string]any{"package": "world", "quantity": 1, "cycle": "annual"})
	d.Op(t, http.StatusOK, "GET", "/v1/invoices/"+annual["invoice_id"].(string), nil).JSON(t, &inv)
	if !strings.HasSuffix(inv.Lines[0].Description, "(annual)") {
		t.Fatalf("annual order line = %q", inv.Lines[0].Description)
	}

	// An invoice account's open bill says where to transfer and with which
	// reference.
	ia := d.CreateAccount(t, map[string]any{"payment_mode": "invoice"})
	d.Change(t, ia, map[string]any{"package": "fr-fixed-mobile", "quantity": 1})
	d.SetClock(t, "2027-01-01T02:00:00+01:00")
	bills := invoiceList(t, d, ia)
	open := bills[len(bills)-1]
	html = string(d.Op(t, http.StatusOK, "GET", "/v1/invoices/"+open.ID+".html", nil).Body)
	for _, want := range []string{"IBAN " + d.Config.Billing.Issuer.IBAN, "BIC " + d.Config.Billing.Issuer.BIC, "Transfer reference: " + open.Number} {
		if open.Status != "open" || !strings.Contains(html, want) {
			t.Fatalf("open invoice (%s) lacks %q:\n%s", open.Status, want, html)
		}
	}
}
