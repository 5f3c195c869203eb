package portal

import (
	"net/url"
	"slices"
	"testing"

	"github.com/pbxd/pbxd/provisioning"
)

// The seed account: 3 France lines and 1 World line, every seat used, and
// a France package with 2 free seats for the free-seat cases.
func seedLayout(frQty int) ([]modifyRow, []provisioning.Line, map[string]provisioning.PackageView) {
	rows := []modifyRow{{Package: provisioning.Package{Code: "fr", Name: "France", Kind: "package"}}, {Package: provisioning.Package{Code: "world", Name: "World", Kind: "package"}}}
	lines := []provisioning.Line{{ID: "l1", Package: "fr"}, {ID: "l2", Package: "fr"}, {ID: "l3", Package: "fr"}, {ID: "l4", Package: "world"}}
	subs := map[string]provisioning.PackageView{
		"fr":    {Subscription: provisioning.Subscription{Package: "fr", Quantity: frQty, Used: 3}},
		"world": {Subscription: provisioning.Subscription{Package: "world", Quantity: 1, Used: 1}},
	}
	return rows, lines, subs
}

func TestOrderFromForm(t *testing.T) {
	t.Parallel()
	rows, lines, subs := seedLayout(3)
	req, problem := orderFromForm(url.Values{"add.fr": {"1"}, "del.l4": {"1"}, "plan.l1": {"fr"}}, rows, lines, subs)
	want := []provisioning.ChangeItem{{Package: "fr", Quantity: 4}, {Package: "world", Quantity: 0, RemoveLines: []string{"l4"}}}
	if problem != "" || len(req.Swaps) != 0 || len(req.Items) != 2 || req.Items[0].Quantity != 4 || req.Items[1].Quantity != 0 || !slices.Equal(req.Items[1].RemoveLines, want[1].RemoveLines) {
		t.Fatalf("seed order = %+v, %q", req, problem)
	}
	// A swap alone leaves the seats to the service.
	req, _ = orderFromForm(url.Values{"plan.l4": {"fr"}}, rows, lines, subs)
	if len(req.Items) != 0 || len(req.Swaps) != 1 || req.Swaps[0] != (provisioning.Swap{Line: "l4", Package: "fr"}) {
		t.Fatalf("swap = %+v", req)
	}
	// Free seats go with a deleted line, so the service removes exactly it.
	rows, lines, subs = seedLayout(5)
	req, _ = orderFromForm(url.Values{"del.l2": {"1"}}, rows, lines, subs)
	if len(req.Items) != 1 || req.Items[0].Quantity != 2 {
		t.Fatalf("delete with free seats = %+v", req)
	}
	for form, want := range map[string]url.Values{
		"modify.nothing": {},
		"France: lines to add must be a number from 0 to 10000":    {"add.fr": {"-1"}},
		"France: delete lines or add lines, not both in one order": {"add.fr": {"1"}, "del.l1": {"1"}},
	} {
		if _, problem := orderFromForm(want, rows, lines, subs); problem != form {
			t.Errorf("%v: problem %q, want %q", want, problem, form)
		}
	}
}

// Whatever the form says, the order names only the account's lines, never
// a negative quantity, and never one that would make the service remove a
// line the customer did not tick.
func FuzzOrderFromForm(f *testing.F) {
	f.Add("1", "0", true, false, "world", "fr", 3)
	f.Add("", "2", false, true, "fr", "world", 5)
	f.Fuzz(func(t *testing.T, addFr, addWorld string, del1, del4 bool, plan2, plan4 string, frQty int) {
		if frQty < 3 || frQty > 100 {
			return
		}
		rows, lines, subs := seedLayout(frQty)
		form := url.Values{"add.fr": {addFr}, "add.world": {addWorld}, "plan.l2": {plan2}, "plan.l4": {plan4}}
		if del1 {
			form.Set("del.l1", "1")
		}
		if del4 {
			form.Set("del.l4", "1")
		}
		req, problem := orderFromForm(form, rows, lines, subs)
		if problem != "" {
			return
		}
		in, out := map[string]int{}, map[string]int{}
		for _, sw := range req.Swaps {
			in[sw.Package]++
			out[map[string]string{"l2": "fr", "l4": "world"}[sw.Line]]++
		}
		for _, it := range req.Items {
			used := subs[it.Package].Used - out[it.Package] + in[it.Package]
			if it.Quantity < 0 || it.Quantity > 2*provisioning.MaxQuantity {
				t.Fatalf("quantity %d for %s", it.Quantity, it.Package)
			}
			// The service removes used − quantity lines: exactly the ticked ones.
			if goes := max(0, used-it.Quantity); goes != len(it.RemoveLines) {
				t.Fatalf("%s: %d lines would go, %d ticked (%+v)", it.Package, goes, len(it.RemoveLines), req)
			}
			for _, id := range it.RemoveLines {
				if !slices.ContainsFunc(lines, func(l provisioning.Line) bool { return l.ID == id && l.Package == it.Package }) {
					t.Fatalf("removes %s, not a line of %s", id, it.Package)
				}
			}
		}
	})
}
