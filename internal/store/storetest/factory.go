package storetest

import (
	"cmp"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/billdb"
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
	p.UpdatedAt = orNow(p.UpdatedAt)
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
	a.CreatedAt = orNow(a.CreatedAt)
	if err := provdb.New(db).InsertAccount(t.Context(), a); err != nil {
		t.Fatalf("storetest: account %s: %v", a.ID, err)
	}
}

// Pending items, invoices and renewals have no one-row generated insert
// (billing writes them in batches): the factory's statement is the one
// place tests name their columns.
const (
	insertPendingItem = `INSERT INTO pending_items (id, account_id, package_code, description, quantity, unit_minor, amount_minor,
		currency, period_start, period_end, note, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`
	insertInvoice = `INSERT INTO invoices (id, account_id, number, issuer, kind, status, currency, issued_at, due_at,
		net_minor, tax_minor, gross_minor, document)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`
	insertRenewal = `INSERT INTO renewals (subscription_id, period_start, created_at) VALUES ($1, $2, $3)`
)

// SubscriptionRow is a subscription (billing's subscriptions table).
// Quantity is taken as given (0 is a valid quantity).
type SubscriptionRow struct {
	ID, AccountID, PackageCode, Cycle, Status string
	Quantity                                  int32
	PeriodPriceMinor                          int64
	PeriodStart, PeriodEnd                    time.Time
	NextPaymentAt, RegisteredFrom             time.Time
	TrialEnd                                  *time.Time
}

// Subscription inserts a subscription and returns its id: a new id,
// monthly, active, next payment at the period's end, registered from the
// period's start.
func Subscription(t testing.TB, db store.DBTX, s SubscriptionRow) string {
	t.Helper()
	s.ID = cmp.Or(s.ID, uuid.NewString())
	s.Cycle = cmp.Or(s.Cycle, "monthly")
	s.Status = cmp.Or(s.Status, "active")
	if s.NextPaymentAt.IsZero() {
		s.NextPaymentAt = s.PeriodEnd
	}
	if s.RegisteredFrom.IsZero() {
		s.RegisteredFrom = s.PeriodStart
	}
	err := billdb.New(db).InsertSubscription(t.Context(), billdb.InsertSubscriptionParams{ID: s.ID, AccountID: s.AccountID,
		PackageCode: s.PackageCode, Cycle: s.Cycle, Quantity: s.Quantity, Status: s.Status, PeriodPriceMinor: s.PeriodPriceMinor,
		PeriodStart: s.PeriodStart, PeriodEnd: s.PeriodEnd, NextPaymentAt: s.NextPaymentAt, RegisteredFrom: s.RegisteredFrom, TrialEnd: s.TrialEnd})
	if err != nil {
		t.Fatalf("storetest: subscription %s: %v", s.ID, err)
	}
	return s.ID
}

// PaymentMethodRow is a stored payment method (billing's payment_methods).
type PaymentMethodRow struct {
	ID, AccountID, Gateway, Token, Label string
	CreatedAt                            time.Time
}

// PaymentMethod inserts the account's default payment method and returns
// its id: a new id, the sandbox gateway, label "card", created now.
func PaymentMethod(t testing.TB, db store.DBTX, m PaymentMethodRow) string {
	t.Helper()
	m.ID = cmp.Or(m.ID, uuid.NewString())
	m.Gateway = cmp.Or(m.Gateway, "sandbox")
	m.Label = cmp.Or(m.Label, "card")
	m.CreatedAt = orNow(m.CreatedAt)
	err := billdb.New(db).InsertPaymentMethod(t.Context(), billdb.InsertPaymentMethodParams{ID: m.ID, AccountID: m.AccountID,
		Gateway: m.Gateway, Token: m.Token, Label: m.Label, IsDefault: true, CreatedAt: m.CreatedAt})
	if err != nil {
		t.Fatalf("storetest: payment method %s: %v", m.ID, err)
	}
	return m.ID
}

// PendingItemRow is a charge or credit waiting for the next bill
// (billing's pending_items). Quantity and amounts are taken as given;
// the period is of dates.
type PendingItemRow struct {
	ID, AccountID, PackageCode, Description, Currency, Note string
	Quantity                                                int32
	UnitMinor, AmountMinor                                  int64
	PeriodStart, PeriodEnd                                  time.Time
	CreatedAt                                               time.Time
}

// PendingItem inserts a pending item and returns its id: a new id, EUR,
// created now.
func PendingItem(t testing.TB, db store.DBTX, p PendingItemRow) string {
	t.Helper()
	p.ID = cmp.Or(p.ID, uuid.NewString())
	p.Currency = cmp.Or(p.Currency, "EUR")
	p.CreatedAt = orNow(p.CreatedAt)
	insert(t, db, "pending item "+p.ID, insertPendingItem, p.ID, p.AccountID, p.PackageCode, p.Description, p.Quantity,
		p.UnitMinor, p.AmountMinor, p.Currency, p.PeriodStart, p.PeriodEnd, p.Note, p.CreatedAt)
	return p.ID
}

// InvoiceRow is an issued invoice (billing's invoices).
type InvoiceRow struct {
	ID, AccountID, Number, Issuer, Kind, Status, Currency string
	IssuedAt, DueAt                                       time.Time
	NetMinor, TaxMinor, GrossMinor                        int64
	Document                                              []byte
}

// Invoice inserts an invoice and returns its id: a new id, kind invoice,
// open, EUR, an empty document ({}).
func Invoice(t testing.TB, db store.DBTX, i InvoiceRow) string {
	t.Helper()
	i.ID = cmp.Or(i.ID, uuid.NewString())
	i.Kind = cmp.Or(i.Kind, "invoice")
	i.Status = cmp.Or(i.Status, "open")
	i.Currency = cmp.Or(i.Currency, "EUR")
	if i.Document == nil {
		i.Document = []byte(`{}`)
	}
	insert(t, db, "invoice "+i.Number, insertInvoice, i.ID, i.AccountID, i.Number, i.Issuer, i.Kind, i.Status, i.Currency,
		i.IssuedAt, i.DueAt, i.NetMinor, i.TaxMinor, i.GrossMinor, i.Document)
	return i.ID
}

// Renewal records the renewal of a subscription for the period starting
// at periodStart (billing's renewals), with no invoice, created now.
func Renewal(t testing.TB, db store.DBTX, subscriptionID string, periodStart time.Time) {
	t.Helper()
	insert(t, db, "renewal of "+subscriptionID, insertRenewal, subscriptionID, periodStart, time.Now())
}

// orNow is t, or now when t is zero.
func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

func insert(t testing.TB, db store.DBTX, what, sql string, args ...any) {
	t.Helper()
	if _, err := db.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("storetest: %s: %v", what, err)
	}
}
