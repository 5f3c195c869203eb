package provisioning_test

import (
	"testing"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/provisioning"
)

func pkg(code string, price int64) provisioning.Package {
	return provisioning.Package{Code: code, Name: code, Kind: "package", PriceMinor: price, Currency: "EUR",
		Cycles: []provisioning.Cycle{{Cycle: "monthly"}}, DialContext: "pkg-" + code}
}

// A package that disappears from the config while it has subscribers is
// retired (no new sales, existing lines kept); one nobody has is dropped; a
// price change leaves the current period's price alone.
func TestCatalogSyncRetiresAndRepricesFromTheNextPeriod(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	if err := b.svc.SyncCatalog(ctx, []provisioning.Package{pkg("world", 6990), pkg("spare", 100)}); err != nil {
		t.Fatal(err)
	}
	b.order(t, 2)

	if err := b.svc.SyncCatalog(ctx, []provisioning.Package{pkg("solo", 500)}); err != nil {
		t.Fatal(err)
	}
	sold, err := b.svc.Packages(ctx, false)
	if err != nil || len(sold) != 1 || sold[0].Code != "solo" {
		t.Fatalf("packages on sale = %+v, %v", sold, err)
	}
	all, _ := b.svc.Packages(ctx, true)
	codes := map[string]bool{}
	for _, p := range all {
		codes[p.Code] = p.Retired
	}
	if retired, ok := codes["world"]; !ok || !retired {
		t.Fatalf("world should be kept as retired: %v", codes)
	}
	if _, ok := codes["spare"]; ok {
		t.Fatal("a package nobody subscribed to should be dropped")
	}
	if ls, _ := b.svc.Lines(ctx, b.acct); len(ls) != 2 {
		t.Fatalf("a retired package's lines must stay: %d", len(ls))
	}
	_, err = b.svc.PreviewChange(ctx, b.acct, provisioning.ChangeRequest{Items: []provisioning.ChangeItem{{Package: "world", Quantity: 3}}})
	if fe, ok := fault.As(err); !ok || fe.Kind != fault.Invalid || fe.Field != "items[0].package" {
		t.Fatalf("buying a retired package: %v", err)
	}
	if _, err := b.svc.PreviewChange(ctx, b.acct, provisioning.ChangeRequest{Items: []provisioning.ChangeItem{{Package: "world", Quantity: 1}}}); err != nil {
		t.Fatalf("a retired package can still shrink: %v", err)
	}

	// Back on sale at a new price: the running period keeps its price.
	if err := b.svc.SyncCatalog(ctx, []provisioning.Package{pkg("world", 7990)}); err != nil {
		t.Fatal(err)
	}
	subs, err := b.svc.Subscriptions(ctx, b.acct)
	if err != nil || len(subs) != 1 || subs[0].PeriodPriceMinor != 6990 {
		t.Fatalf("subscription after a price change = %+v, %v", subs, err)
	}
	sold, _ = b.svc.Packages(ctx, false)
	if len(sold) != 1 || sold[0].PriceMinor != 7990 || sold[0].Retired {
		t.Fatalf("catalog = %+v", sold)
	}
}
