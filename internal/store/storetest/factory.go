package storetest

import (
	"cmp"
	"testing"
	"time"

	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/provdb"
)

// Factories: rows other packages' tests need, written through the owner's
// generated queries so that a test never repeats another package's column
// list. Zero fields take the defaults below.

// Package inserts (or replaces) a catalog package, as provisioning syncs
// it: kind "package", dial context "pkg-<code>", decreases
// immediate_credit, one monthly cycle unless Cycles (JSON) says otherwise.
func Package(t testing.TB, db store.DBTX, p provdb.UpsertPackageParams) {
	t.Helper()
	p.Kind = cmp.Or(p.Kind, "package")
	p.Name = cmp.Or(p.Name, p.Code)
	p.Currency = cmp.Or(p.Currency, "EUR")
	p.DialContext = cmp.Or(p.DialContext, "pkg-"+p.Code)
	p.Decrease = cmp.Or(p.Decrease, "immediate_credit")
	if p.Cycles == nil {
		p.Cycles = []byte(`[{"cycle":"monthly","discount_bp":0}]`)
	}
	if p.UpdatedAt.IsZero() {
		p.UpdatedAt = time.Now()
	}
	if err := provdb.New(db).UpsertPackage(t.Context(), p); err != nil {
		t.Fatalf("storetest: package %s: %v", p.Code, err)
	}
}

// Account inserts an account (provisioning's accounts table): EUR,
// Europe/Paris, VAT 20 %, invoice payment, seat preference block,
// extensions 100–199, no billing address, created now.
func Account(t testing.TB, db store.DBTX, a provdb.InsertAccountParams) {
	t.Helper()
	a.Name = cmp.Or(a.Name, "Acme")
	a.SipDomain = cmp.Or(a.SipDomain, a.ID+".example.net")
	a.Currency = cmp.Or(a.Currency, "EUR")
	a.Timezone = cmp.Or(a.Timezone, "Europe/Paris")
	a.VatBp = cmp.Or(a.VatBp, 2000)
	a.PaymentMode = cmp.Or(a.PaymentMode, "invoice")
	a.SeatPreference = cmp.Or(a.SeatPreference, "block")
	a.ExtFirst, a.ExtLast = cmp.Or(a.ExtFirst, 100), cmp.Or(a.ExtLast, 199)
	if a.BillingAddress == nil {
		a.BillingAddress = []byte(`{}`)
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = time.Now()
	}
	if err := provdb.New(db).InsertAccount(t.Context(), a); err != nil {
		t.Fatalf("storetest: account %s: %v", a.ID, err)
	}
}
