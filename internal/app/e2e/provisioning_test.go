// Package e2e holds end-to-end tests of whole in-process daemons.
package e2e

import (
	"fmt"
	"net/http"
	"sort"
	"sync"
	"testing"

	"github.com/pbxd/pbxd/internal/app/apptest"
)

type lineView struct {
	ID          string `json:"id"`
	Extension   int    `json:"extension"`
	Package     string `json:"package"`
	SIPDomain   string `json:"sip_domain"`
	SIPUsername string `json:"sip_username"`
	State       string `json:"state"`
	Registered  bool   `json:"registered"`
}

func lines(t *testing.T, d *apptest.Daemon, token, account string) []lineView {
	t.Helper()
	r := d.Call(t, token, "GET", "/v1/accounts/"+account+"/lines", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("lines: %d %s", r.Status, r.Body)
	}
	var out struct{ Lines []lineView }
	r.JSON(t, &out)
	return out.Lines
}

// The seed flow: 3 France + 1 World lines change to 4 + 0, with a preview
// first, and the "My packages" view shows the result.
func TestSeedFlow(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acct := d.CreateAccount(t, map[string]any{"sip_domain": "acme.voip.example.net"})
	d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 3}, map[string]any{"package": "world", "quantity": 1})
	if got := len(lines(t, d, apptest.OperatorToken, acct)); got != 4 {
		t.Fatalf("after the first order: %d lines, want 4", got)
	}

	pv := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []map[string]any{
		{"package": "fr-fixed-mobile", "quantity": 4}, {"package": "world", "quantity": 0},
	}}).Map(t)
	items := pv["items"].([]any)
	got := map[string][2]float64{}
	for _, it := range items {
		m := it.(map[string]any)
		got[m["package"].(string)] = [2]float64{m["from"].(float64), m["to"].(float64)}
	}
	if got["fr-fixed-mobile"] != [2]float64{3, 4} || got["world"] != [2]float64{1, 0} {
		t.Fatalf("preview before → after = %v", got)
	}
	// A preview writes nothing.
	if n := len(lines(t, d, apptest.OperatorToken, acct)); n != 4 {
		t.Fatalf("preview changed lines: %d", n)
	}
	res := d.Op(t, http.StatusOK, "POST", "/v1/changes/"+pv["id"].(string)+"/confirm", nil).Map(t)
	if len(res["lines_created"].([]any)) != 1 || len(res["lines_removed"].([]any)) != 1 {
		t.Fatalf("confirm result = %v", res)
	}

	var view struct {
		Packages []struct {
			Package   string
			Quantity  int
			Used      int
			Available int
			Lines     []lineView
		}
	}
	d.Op(t, http.StatusOK, "GET", "/v1/accounts/"+acct+"/packages", nil).JSON(t, &view)
	var fr []lineView
	for _, p := range view.Packages {
		switch p.Package {
		case "fr-fixed-mobile":
			if p.Quantity != 4 || p.Used != 4 || p.Available != 0 {
				t.Fatalf("France seats = %+v", p)
			}
			fr = p.Lines
		case "world":
			if p.Quantity != 0 || len(p.Lines) != 0 {
				t.Fatalf("World = %+v", p)
			}
		}
	}
	if len(fr) != 4 {
		t.Fatalf("My packages shows %d France lines, want 4", len(fr))
	}
	seen := map[int]bool{}
	for _, l := range fr {
		if seen[l.Extension] || l.Extension < 100 || l.Extension > 899 {
			t.Fatalf("extension %d duplicated or out of range", l.Extension)
		}
		seen[l.Extension] = true
		if l.SIPDomain != "acme.voip.example.net" || l.SIPUsername == "" || l.State != "active" {
			t.Fatalf("line = %+v", l)
		}
		var pw struct{ Password string }
		d.Op(t, http.StatusOK, "GET", "/v1/accounts/"+acct+"/lines/"+l.ID+"/password", nil).JSON(t, &pw)
		if len(pw.Password) < 16 {
			t.Fatalf("password %q too short", pw.Password)
		}
	}
	var reveals int
	if err := d.App.Pool().QueryRow(t.Context(), `SELECT count(*) FROM audit_log WHERE action = 'line.password.reveal' AND account_id = $1`, acct).Scan(&reveals); err != nil || reveals != 4 {
		t.Fatalf("audit log has %d reveals (%v), want 4", reveals, err)
	}
}

func TestConfirmIsIdempotentAndRefusesStalePreviews(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acct := d.CreateAccount(t, nil)
	pv := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []map[string]any{{"package": "world", "quantity": 2}}}).Map(t)
	stale := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []map[string]any{{"package": "world", "quantity": 5}}}).Map(t)
	id := pv["id"].(string)
	first := d.Op(t, http.StatusOK, "POST", "/v1/changes/"+id+"/confirm", nil, "Idempotency-Key", "k1")
	again := d.Op(t, http.StatusOK, "POST", "/v1/changes/"+id+"/confirm", nil, "Idempotency-Key", "k1")
	if string(first.Body) != string(again.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry with the same key answered differently:\n%s\n%s", first.Body, again.Body)
	}
	// Without the key, a second confirm of the same order still never applies twice.
	third := d.Op(t, http.StatusOK, "POST", "/v1/changes/"+id+"/confirm", nil).Map(t)
	if n := len(lines(t, d, apptest.OperatorToken, acct)); n != 2 {
		t.Fatalf("%d lines after three confirms, want 2 (%v)", n, third)
	}
	// The other preview was computed before the change: 409, nothing written.
	r := d.Call(t, apptest.OperatorToken, "POST", "/v1/changes/"+stale["id"].(string)+"/confirm", nil)
	if r.Status != http.StatusConflict {
		t.Fatalf("stale confirm: %d %s", r.Status, r.Body)
	}
	if n := len(lines(t, d, apptest.OperatorToken, acct)); n != 2 {
		t.Fatalf("a refused confirm changed lines: %d", n)
	}
	// The same idempotency key on another request is refused.
	r = d.Call(t, apptest.OperatorToken, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []map[string]any{{"package": "world", "quantity": 3}}}, "Idempotency-Key", "k1")
	if r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("reused key: %d %s", r.Status, r.Body)
	}
}

// 50 confirms race for the last free extensions of one account: no number
// is given twice and no update is lost.
func TestConcurrentConfirmsRaceForExtensions(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acct := d.CreateAccount(t, map[string]any{"extension_range": map[string]int{"first": 100, "last": 109}})
	d.Change(t, acct, map[string]any{"package": "world", "quantity": 8})
	var ids []string
	for i := 0; i < 50; i++ {
		pv := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []map[string]any{{"package": "world", "quantity": 10}}}).Map(t)
		ids = append(ids, pv["id"].(string))
	}
	var wg sync.WaitGroup
	statuses := make([]int, len(ids))
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = d.Call(t, apptest.OperatorToken, "POST", "/v1/changes/"+id+"/confirm", nil).Status
		}()
	}
	wg.Wait()
	ok := 0
	for _, s := range statuses {
		switch s {
		case http.StatusOK:
			ok++
		case http.StatusConflict:
		default:
			t.Fatalf("unexpected status %d", s)
		}
	}
	if ok != 1 {
		t.Fatalf("%d confirms succeeded, want exactly 1 (the others' previews went stale)", ok)
	}
	ls := lines(t, d, apptest.OperatorToken, acct)
	exts := []int{}
	for _, l := range ls {
		exts = append(exts, l.Extension)
	}
	sort.Ints(exts)
	if fmt.Sprint(exts) != "[100 101 102 103 104 105 106 107 108 109]" {
		t.Fatalf("extensions = %v", exts)
	}
}

// An account token sees only its own account: everything else is a 404.
func TestAccountIsolation(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	a := d.CreateAccount(t, nil)
	b := d.CreateAccount(t, nil)
	d.Change(t, b, map[string]any{"package": "world", "quantity": 1})
	var tok struct{ Token string }
	d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+a+"/tokens", nil).JSON(t, &tok)
	bLine := lines(t, d, apptest.OperatorToken, b)[0].ID
	pvB := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+b+"/changes", map[string]any{"items": []map[string]any{{"package": "world", "quantity": 2}}}).Map(t)

	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/accounts/" + b},
		{"GET", "/v1/accounts/" + b + "/lines"},
		{"GET", "/v1/accounts/" + b + "/packages"},
		{"GET", "/v1/accounts/" + b + "/subscriptions"},
		{"GET", "/v1/accounts/" + b + "/lines/" + bLine + "/password"},
		{"GET", "/v1/accounts/" + a + "/lines/" + bLine + "/password"},
		{"POST", "/v1/accounts/" + b + "/changes"},
		{"GET", "/v1/changes/" + pvB["id"].(string)},
		{"POST", "/v1/changes/" + pvB["id"].(string) + "/confirm"},
	} {
		var body any
		if c.method == "POST" {
			body = map[string]any{"items": []map[string]any{{"package": "world", "quantity": 3}}}
			if c.path[len(c.path)-7:] == "confirm" {
				body = nil
			}
		}
		if r := d.Call(t, tok.Token, c.method, c.path, body); r.Status != http.StatusNotFound {
			t.Errorf("%s %s with another account's token: %d, want 404", c.method, c.path, r.Status)
		}
	}
	if n := len(lines(t, d, apptest.OperatorToken, b)); n != 1 {
		t.Fatalf("account b changed: %d lines", n)
	}
	// Its own account works, and the operator-only calls do not.
	if r := d.Call(t, tok.Token, "GET", "/v1/accounts/"+a+"/lines", nil); r.Status != http.StatusOK {
		t.Fatalf("own lines: %d", r.Status)
	}
	if r := d.Call(t, tok.Token, "POST", "/v1/accounts", map[string]any{}); r.Status != http.StatusForbidden {
		t.Fatalf("account token creating accounts: %d", r.Status)
	}
	if r := d.Call(t, "wrong", "GET", "/v1/packages", nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("bad token: %d", r.Status)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acct := d.CreateAccount(t, map[string]any{"sip_domain": "taken.voip.example.net", "extension_range": map[string]int{"first": 100, "last": 104}})
	blocked := d.CreateAccount(t, map[string]any{"seat_preference": "block"})
	d.Change(t, blocked, map[string]any{"package": "world", "quantity": 1})
	blockedLine := lines(t, d, apptest.OperatorToken, blocked)[0].ID

	for _, c := range []struct {
		name, path string
		body       any
		status     int
		field      string
	}{
		{"unknown package", "/v1/accounts/" + acct + "/changes", map[string]any{"items": []map[string]any{{"package": "mars", "quantity": 1}}}, 422, "items[0].package"},
		{"negative quantity", "/v1/accounts/" + acct + "/changes", map[string]any{"items": []map[string]any{{"package": "world", "quantity": -1}}}, 422, "items[0].quantity"},
		{"absurd quantity", "/v1/accounts/" + acct + "/changes", map[string]any{"items": []map[string]any{{"package": "world", "quantity": 1000000}}}, 422, "items[0].quantity"},
		{"beyond the extension range", "/v1/accounts/" + acct + "/changes", map[string]any{"items": []map[string]any{{"package": "world", "quantity": 6}}}, 422, "items"},
		{"bad cycle", "/v1/accounts/" + acct + "/changes", map[string]any{"items": []map[string]any{{"package": "world", "quantity": 1, "cycle": "weekly"}}}, 422, "items[0].cycle"},
		{"unknown field", "/v1/accounts/" + acct + "/changes", map[string]any{"itemz": []any{}}, 422, "itemz"},
		{"block with no free seat", "/v1/accounts/" + blocked + "/changes", map[string]any{"swaps": []map[string]any{{"line": blockedLine, "package": "fr-fixed-mobile"}}}, 409, "swaps[0].package"},
		{"domain taken", "/v1/accounts", map[string]any{"name": "X", "sip_domain": "taken.voip.example.net", "currency": "EUR", "timezone": "Europe/Paris", "vat_percent": 20, "payment_mode": "card", "extension_range": map[string]int{"first": 1, "last": 2}}, 409, "sip_domain"},
		{"bad domain", "/v1/accounts", map[string]any{"name": "X", "sip_domain": "not a domain", "currency": "EUR", "timezone": "Europe/Paris", "payment_mode": "card", "extension_range": map[string]int{"first": 1, "last": 2}}, 422, "sip_domain"},
		{"bad timezone", "/v1/accounts", map[string]any{"name": "X", "sip_domain": "x.example.net", "currency": "EUR", "timezone": "Mars/Olympus", "payment_mode": "card", "extension_range": map[string]int{"first": 1, "last": 2}}, 422, "timezone"},
		{"bad vat", "/v1/accounts", map[string]any{"name": "X", "sip_domain": "x.example.net", "currency": "EUR", "timezone": "Europe/Paris", "vat_percent": 120, "payment_mode": "card", "extension_range": map[string]int{"first": 1, "last": 2}}, 422, "vat_percent"},
		{"bad payment mode", "/v1/accounts", map[string]any{"name": "X", "sip_domain": "x.example.net", "currency": "EUR", "timezone": "Europe/Paris", "payment_mode": "cash", "extension_range": map[string]int{"first": 1, "last": 2}}, 422, "payment_mode"},
		{"reversed range", "/v1/accounts", map[string]any{"name": "X", "sip_domain": "x.example.net", "currency": "EUR", "timezone": "Europe/Paris", "payment_mode": "card", "extension_range": map[string]int{"first": 9, "last": 2}}, 422, "extension_range.last"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := d.Call(t, apptest.OperatorToken, "POST", c.path, c.body)
			if r.Status != c.status || r.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("status %d (%s), want %d problem+json: %s", r.Status, r.Header.Get("Content-Type"), c.status, r.Body)
			}
			if f := r.Map(t)["field"]; f != c.field {
				t.Fatalf("field = %v, want %q (%s)", f, c.field, r.Body)
			}
		})
	}
	if n := len(lines(t, d, apptest.OperatorToken, acct)); n != 0 {
		t.Fatalf("bad input created %d lines", n)
	}
	var accounts, orders int
	_ = d.App.Pool().QueryRow(t.Context(), `SELECT count(*) FROM accounts`).Scan(&accounts)
	_ = d.App.Pool().QueryRow(t.Context(), `SELECT count(*) FROM change_orders WHERE account_id = $1`, acct).Scan(&orders)
	if accounts != 2 || orders != 0 {
		t.Fatalf("bad input wrote: %d accounts, %d change orders", accounts, orders)
	}
}
