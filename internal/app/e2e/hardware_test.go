package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/pbxd/pbxd/internal/app/apptest"
	"github.com/pbxd/pbxd/internal/config"
)

type hardwareOrder struct {
	ID        string  `json:"id"`
	State     string  `json:"state"`
	Quantity  int     `json:"quantity"`
	InvoiceID *string `json:"invoice_id"`
	Units     []struct {
		ID       string  `json:"id"`
		State    string  `json:"state"`
		MAC      string  `json:"mac"`
		DeviceID *string `json:"device_id"`
	} `json:"units"`
}

// A phone bought with an invoice-mode account is charged to its card at
// once, invoiced paid, and awaits its MAC; shipped, it provisions as usual.
// Stock is never oversold, and refused payments free it again.
func TestHardwarePurchase(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t, func(c *config.Config) {
		for i := range c.Catalog {
			if c.Catalog[i].Kind == "hardware" {
				three := 3
				c.Catalog[i].Stock = &three
			}
		}
	})
	acct := d.CreateAccount(t, map[string]any{"payment_mode": "invoice", "sip_domain": "hw.voip.example.net"})
	tok := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/tokens", nil).Map(t)["token"].(string)
	d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 1})
	buy := func(item string, qty int) apptest.Response {
		return d.Call(t, tok, "POST", "/v1/accounts/"+acct+"/hardware", map[string]any{"item": item, "quantity": qty})
	}

	if r := buy("yealink-t54w", 1); r.Status != http.StatusConflict || r.Map(t)["field"] != "payment_method" {
		t.Fatalf("without a card: %d %s", r.Status, r.Body)
	}
	for _, c := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"item": "fr-fixed-mobile"}, "item"},
		{map[string]any{"item": "nokia-3310"}, "item"},
		{map[string]any{"quantity": 1}, "item"},
		{map[string]any{"item": "yealink-t54w", "quantity": 0}, "quantity"},
		{map[string]any{"item": "yealink-t54w", "colour": "black"}, "colour"},
	} {
		if r := d.Call(t, tok, "POST", "/v1/accounts/"+acct+"/hardware", c.body); r.Status != 422 || r.Map(t)["field"] != c.field {
			t.Errorf("%v: %d %s, want 422 naming %s", c.body, r.Status, r.Body, c.field)
		}
	}
	addMethod(t, d, acct, "sandbox_decline")
	if r := buy("yealink-t54w", 3); r.Status != http.StatusPaymentRequired {
		t.Fatalf("declined card: %d %s", r.Status, r.Body)
	}
	addMethod(t, d, acct, "sandbox_approve")
	r := buy("yealink-t54w", 2)
	if r.Status != http.StatusCreated {
		t.Fatalf("buy: %d %s", r.Status, r.Body)
	}
	var o hardwareOrder
	r.JSON(t, &o)
	if o.State != "paid" || o.InvoiceID == nil || len(o.Units) != 2 || o.Units[0].State != "awaiting_mac" {
		t.Fatalf("order = %s", r.Body)
	}
	inv := invoiceGet(t, d, *o.InvoiceID)
	// 2 × 189.00 + 20 % VAT, paid by card although the account pays by invoice.
	if inv.Status != "paid" || inv.GrossMinor != 45360 || len(inv.Lines) != 1 || inv.Lines[0].Quantity != 2 || inv.Lines[0].Package != "yealink-t54w" {
		t.Fatalf("invoice = %+v", inv)
	}
	// 3 in stock, 2 sold (the declined order freed its 3).
	if r := buy("yealink-t54w", 2); r.Status != http.StatusConflict || !strings.Contains(string(r.Body), "only 1") {
		t.Fatalf("beyond stock: %d %s", r.Status, r.Body)
	}

	// Shipped with its MAC: the device exists and provisions its line.
	if r := d.Call(t, tok, "POST", "/v1/accounts/"+acct+"/hardware/"+o.Units[0].ID+"/ship", map[string]any{"mac": "80:5e:c0:00:00:99"}); r.Status != http.StatusForbidden {
		t.Fatalf("customer shipping: %d", r.Status)
	}
	line := lines(t, d, tok, acct)[0]
	sr := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/hardware/"+o.Units[0].ID+"/ship",
		map[string]any{"mac": "80:5e:c0:00:00:99", "lines": []map[string]any{{"line": line.ID, "key": 1}}}).Map(t)
	secret := sr["provisioning_secret"].(string)
	if code, body := fetchConfig(t, d, "805ec0000099.cfg", "805ec0000099", secret); code != http.StatusOK || !strings.Contains(body, line.SIPUsername) {
		t.Fatalf("provisioning the shipped phone: %d %s", code, body)
	}
	if r := d.Call(t, apptest.OperatorToken, "POST", "/v1/accounts/"+acct+"/hardware/"+o.Units[0].ID+"/ship", map[string]any{"mac": "80:5e:c0:00:00:98"}); r.Status != http.StatusConflict {
		t.Fatalf("shipping twice: %d %s", r.Status, r.Body)
	}
	var list struct{ Orders []hardwareOrder }
	d.Call(t, tok, "GET", "/v1/accounts/"+acct+"/hardware", nil).JSON(t, &list)
	states := map[string]int{}
	for _, o := range list.Orders {
		states[o.State]++
	}
	if states["paid"] != 1 || states["failed"] != 2 { // no card, then declined
		t.Fatalf("orders = %+v", list.Orders)
	}
	for _, o := range list.Orders {
		if o.State == "paid" && (o.Units[0].State != "shipped" || o.Units[0].DeviceID == nil || o.Units[1].State != "awaiting_mac") {
			t.Fatalf("units after shipping = %+v", o.Units)
		}
	}
}
