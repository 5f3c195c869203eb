package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pbxd/pbxd/internal/app/apptest"
	"github.com/pbxd/pbxd/internal/config"
)

type numberView struct {
	Number     string     `json:"number"`
	Kind       string     `json:"kind"`
	Addon      string     `json:"addon"`
	State      string     `json:"state"`
	AccountID  *string    `json:"account_id"`
	LineID     *string    `json:"line_id"`
	Extension  *int       `json:"extension"`
	CallerID   bool       `json:"caller_id"`
	AgingUntil *time.Time `json:"aging_until"`
}

func numbersAt(t *testing.T, d *apptest.Daemon, path string) []numberView {
	t.Helper()
	var out struct{ Numbers []numberView }
	d.Op(t, http.StatusOK, "GET", path, nil).JSON(t, &out)
	return out.Numbers
}

func importNumbers(t *testing.T, d *apptest.Daemon, kind string, nums ...string) map[string]any {
	t.Helper()
	return d.Op(t, http.StatusOK, "POST", "/v1/numbers/import", map[string]any{
		"country": "FR", "area": "+331", "kind": kind, "addon": "local-number", "numbers": nums,
	}).Map(t)
}

// An add-on bought by quantity is billed but never becomes SIP lines (it
// used to create lines with extensions).
func TestAddonCreatesNoLines(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acct := d.CreateAccount(t, nil)
	res := d.Change(t, acct, map[string]any{"package": "local-number", "quantity": 2})
	if n := len(res["lines_created"].([]any)); n != 0 {
		t.Fatalf("buying 2 local-number add-ons created %d lines", n)
	}
	if n := len(lines(t, d, apptest.OperatorToken, acct)); n != 0 {
		t.Fatalf("account has %d lines, want 0", n)
	}
}

// The number life cycle: imported (idempotently), ordered by prefix and by
// choice through a prorated change order that creates no line, assigned to
// a line as its caller id, released by the operator into quarantine, and
// sold again once the quarantine is over.
func TestNumbersOrderAssignRelease(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t, func(c *config.Config) { c.Numbers.Quarantine = config.Duration(30 * 24 * time.Hour) })
	nums := []string{"+33 1 42 00 00 01", "+33142000002", "+33142000003", "+33142000004", "+33142000005"}
	if got := importNumbers(t, d, "local", nums...); got["imported"] != 5.0 || got["existing"] != 0.0 {
		t.Fatalf("first import = %v", got)
	}
	if got := importNumbers(t, d, "local", nums...); got["imported"] != 0.0 || got["existing"] != 5.0 {
		t.Fatalf("repeated import = %v", got)
	}
	importNumbers(t, d, "toll-free", "+33800000001")
	bad := d.Call(t, apptest.OperatorToken, "POST", "/v1/numbers/import", map[string]any{
		"country": "FR", "kind": "local", "addon": "local-number", "numbers": []string{"+33142000009", "0142000009"}})
	if bad.Status != http.StatusUnprocessableEntity || bad.Map(t)["field"] != "numbers[1]" {
		t.Fatalf("a national-format number: %d %s", bad.Status, bad.Body)
	}
	missing := d.Call(t, apptest.OperatorToken, "POST", "/v1/numbers/import", map[string]any{"country": "FR", "kind": "local", "numbers": []string{"+33142000009"}})
	if missing.Status != http.StatusUnprocessableEntity || missing.Map(t)["field"] != "addon" {
		t.Fatalf("import without addon: %d %s", missing.Status, missing.Body)
	}
	if n := len(numbersAt(t, d, "/v1/numbers?prefix=%2B3314200000")); n != 5 {
		t.Fatalf("inventory after refused imports: %d numbers, want 5", n)
	}

	acct := d.CreateAccount(t, nil)
	d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 1})
	tok := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/tokens", nil).Map(t)["token"].(string)

	// Ordered as the customer: two by prefix, one chosen.
	order := map[string]any{"items": []any{}, "numbers": []map[string]any{{"prefix": "+3314", "quantity": 2}, {"number": "+33142000005"}}}
	r := d.Call(t, tok, "POST", "/v1/accounts/"+acct+"/changes", order)
	if r.Status != http.StatusCreated {
		t.Fatalf("preview: %d %s", r.Status, r.Body)
	}
	var pv struct {
		ID    string
		Items []struct {
			Package       string
			From, To      int
			LinesCreated  int   `json:"lines_created"`
			ProratedMinor int64 `json:"prorated_minor"`
		}
		Numbers []map[string]any
	}
	r.JSON(t, &pv)
	// 3 × 3.00 for 15 of November's 30 days = 4.50.
	if len(pv.Items) != 1 || pv.Items[0].Package != "local-number" || pv.Items[0].From != 0 || pv.Items[0].To != 3 ||
		pv.Items[0].LinesCreated != 0 || pv.Items[0].ProratedMinor != 450 || len(pv.Numbers) != 2 {
		t.Fatalf("preview = %s", r.Body)
	}
	res := d.Call(t, tok, "POST", "/v1/changes/"+pv.ID+"/confirm", nil)
	if res.Status != http.StatusOK {
		t.Fatalf("confirm: %d %s", res.Status, res.Body)
	}
	var cr struct {
		LinesCreated    []any    `json:"lines_created"`
		NumbersReserved []string `json:"numbers_reserved"`
	}
	res.JSON(t, &cr)
	if len(cr.LinesCreated) != 0 || !slices.Equal(cr.NumbersReserved, []string{"+33142000001", "+33142000002", "+33142000005"}) {
		t.Fatalf("confirm = %s", res.Body)
	}
	ls := lines(t, d, tok, acct)
	if len(ls) != 1 {
		t.Fatalf("numbers created lines: %d lines", len(ls))
	}
	// A number add-on's quantity follows the numbers; toll-free numbers are
	// not sold over the counter; a sold number cannot be sold again.
	for _, c := range []struct {
		body        map[string]any
		status      int
		field       string
		description string
	}{
		{map[string]any{"items": []map[string]any{{"package": "local-number", "quantity": 5}}}, 422, "items[0].package", "quantity of a number add-on"},
		{map[string]any{"items": []any{}, "numbers": []map[string]any{{"number": "+33800000001"}}}, 409, "numbers[0].number", "toll-free"},
		{map[string]any{"items": []any{}, "numbers": []map[string]any{{"number": "+33142000001"}}}, 409, "numbers[0].number", "already sold"},
		{map[string]any{"items": []any{}, "numbers": []map[string]any{{"prefix": "+3314", "quantity": 3}}}, 409, "numbers[0].quantity", "too few left"},
		{map[string]any{"items": []any{}, "numbers": []map[string]any{{"prefix": "33", "quantity": 1}}}, 422, "numbers[0].prefix", "bad prefix"},
		{map[string]any{"items": []any{}, "release_numbers": []string{"+33142000001"}}, 422, "release_numbers", "customer release"},
		{map[string]any{"items": []any{}, "numbers": []map[string]any{{"number": "+33142000003", "color": "red"}}}, 422, "numbers[0].color", "unknown field"},
	} {
		r := d.Call(t, tok, "POST", "/v1/accounts/"+acct+"/changes", c.body)
		if r.Status != c.status || r.Map(t)["field"] != c.field {
			t.Errorf("%s: %d %s, want %d naming %s", c.description, r.Status, r.Body, c.status, c.field)
		}
	}

	// Assigned to the line as its caller id.
	as := d.Call(t, tok, "POST", "/v1/accounts/"+acct+"/numbers/+33142000001/assignment", map[string]any{"line": ls[0].ID, "caller_id": true})
	var nv numberView
	as.JSON(t, &nv)
	if as.Status != http.StatusOK || nv.State != "assigned" || nv.Extension == nil || *nv.Extension != ls[0].Extension || !nv.CallerID {
		t.Fatalf("assign: %d %s", as.Status, as.Body)
	}
	var line struct {
		CallerID       string   `json:"caller_id"` // the display name: untouched
		CallerIDNumber string   `json:"caller_id_number"`
		Numbers        []string `json:"numbers"`
	}
	d.Op(t, http.StatusOK, "GET", "/v1/accounts/"+acct+"/lines/"+ls[0].ID, nil).JSON(t, &line)
	if line.CallerIDNumber != "+33142000001" || line.CallerID != "Acme" || fmt.Sprint(line.Numbers) != "[+33142000001]" {
		t.Fatalf("line after assignment = %+v", line)
	}
	// Another account cannot touch it.
	other := d.CreateAccount(t, nil)
	if r := d.Op(t, http.StatusNotFound, "POST", "/v1/accounts/"+other+"/numbers/+33142000001/assignment", map[string]any{}); r.Status != 404 {
		t.Fatal(r.Status)
	}
	states := map[string]string{}
	for _, n := range numbersAt(t, d, "/v1/accounts/"+acct+"/numbers") {
		states[n.Number] = n.State
	}
	if want := map[string]string{"+33142000001": "assigned", "+33142000002": "reserved", "+33142000005": "reserved"}; fmt.Sprint(states) != fmt.Sprint(want) {
		t.Fatalf("account numbers = %v, want %v", states, want)
	}

	// Released by the operator: a prorated credit, the caller id cleared,
	// the number quarantined.
	rel := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []any{}, "release_numbers": []string{"+33142000001"}}).Map(t)
	if rel["credit_next_bill_minor"] != 150.0 {
		t.Fatalf("release preview = %v", rel)
	}
	cres := d.Op(t, http.StatusOK, "POST", "/v1/changes/"+rel["id"].(string)+"/confirm", nil).Map(t)
	if fmt.Sprint(cres["numbers_released"]) != "[+33142000001]" {
		t.Fatalf("release = %v", cres)
	}
	line.Numbers = nil
	d.Op(t, http.StatusOK, "GET", "/v1/accounts/"+acct+"/lines/"+ls[0].ID, nil).JSON(t, &line)
	if line.CallerIDNumber != "" || len(line.Numbers) != 0 {
		t.Fatalf("line after release = %+v", line)
	}
	aging := numbersAt(t, d, "/v1/numbers?state=aging")
	if len(aging) != 1 || aging[0].Number != "+33142000001" || aging[0].AccountID != nil || aging[0].AgingUntil == nil {
		t.Fatalf("aging = %+v", aging)
	}
	free := func() []string {
		var out []string
		for _, n := range numbersAt(t, d, "/v1/numbers/available?prefix=%2B3314") {
			out = append(out, n.Number)
		}
		return out
	}
	if got := free(); !slices.Equal(got, []string{"+33142000003", "+33142000004"}) {
		t.Fatalf("free during quarantine = %v", got)
	}
	r = d.Call(t, apptest.OperatorToken, "POST", "/v1/accounts/"+other+"/changes", map[string]any{"items": []any{}, "numbers": []map[string]any{{"number": "+33142000001"}}})
	if r.Status != http.StatusConflict {
		t.Fatalf("ordering a quarantined number: %d %s", r.Status, r.Body)
	}
	d.SetClock(t, "2026-12-17T10:00:00+01:00")
	if got := free(); !slices.Equal(got, []string{"+33142000001", "+33142000003", "+33142000004"}) {
		t.Fatalf("free after quarantine = %v", got)
	}
	d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+other+"/changes", map[string]any{"items": []any{}, "numbers": []map[string]any{{"number": "+33142000001"}}})
}

// 50 accounts confirm orders for the last 10 numbers at once: exactly 10
// succeed, every number goes to one account, the others get 409.
func TestNumberReservationRace(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	var nums []string
	for i := range 10 {
		nums = append(nums, fmt.Sprintf("+3319900000%d", i))
	}
	importNumbers(t, d, "local", nums...)
	const orders = 50
	ids := make([]string, orders)
	for i := range ids {
		acct := d.CreateAccount(t, nil)
		ids[i] = d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{
			"items": []any{}, "numbers": []map[string]any{{"prefix": "+33199", "quantity": 1}}}).Map(t)["id"].(string)
	}
	statuses := make([]int, orders)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			statuses[i] = d.Call(t, apptest.OperatorToken, "POST", "/v1/changes/"+id+"/confirm", nil).Status
		})
	}
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count[http.StatusOK] != 10 || count[http.StatusConflict] != orders-10 {
		t.Fatalf("confirm statuses = %v, want 10 × 200 and %d × 409", count, orders-10)
	}
	owners := map[string]bool{}
	for _, n := range numbersAt(t, d, "/v1/numbers?prefix=%2B33199") {
		if n.State != "reserved" || n.AccountID == nil || owners[*n.AccountID] {
			t.Fatalf("number %s: state %s, account %v (sold twice or not sold)", n.Number, n.State, n.AccountID)
		}
		owners[*n.AccountID] = true
	}
	if len(owners) != 10 {
		t.Fatalf("%d accounts hold numbers, want 10", len(owners))
	}
}

// Numbers of one prefix sold under two add-ons: the order must say which,
// and is billed at that add-on's price.
func TestNumbersUnderTwoAddons(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t, func(c *config.Config) {
		c.Catalog = append(c.Catalog, config.Package{Code: "golden-number", Name: "Golden number", Kind: "addon", PriceMinor: 2000,
			Currency: "EUR", Cycles: []config.Cycle{{Cycle: "monthly"}}, DialContext: "addon-did"})
	})
	importNumbers(t, d, "local", "+33142000001")
	d.Op(t, http.StatusOK, "POST", "/v1/numbers/import", map[string]any{"country": "FR", "kind": "local", "addon": "golden-number",
		"numbers": []string{"+33142000000"}})
	acct := d.CreateAccount(t, nil)
	r := d.Call(t, apptest.OperatorToken, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []any{},
		"numbers": []map[string]any{{"prefix": "+3314", "quantity": 2}}})
	if r.Status != http.StatusUnprocessableEntity || r.Map(t)["field"] != "numbers[0].addon" {
		t.Fatalf("two add-ons, none named: %d %s", r.Status, r.Body)
	}
	pv := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []any{},
		"numbers": []map[string]any{{"prefix": "+3314", "quantity": 1, "addon": "golden-number"}}}).Map(t)
	it := pv["items"].([]any)[0].(map[string]any)
	if it["package"] != "golden-number" || it["prorated_minor"] != 1000.0 {
		t.Fatalf("golden number preview = %v", pv)
	}
	res := d.Op(t, http.StatusOK, "POST", "/v1/changes/"+pv["id"].(string)+"/confirm", nil).Map(t)
	if fmt.Sprint(res["numbers_reserved"]) != "[+33142000000]" {
		t.Fatalf("confirm = %v", res)
	}
}
