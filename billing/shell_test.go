package billing

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/provdb"
	"github.com/pbxd/pbxd/internal/store/storetest"
)

type testClock time.Time

func (c testClock) Now() time.Time { return time.Time(c) }

// fakeLines records line switches (provisioning is not imported here).
type fakeLines struct {
	mu    sync.Mutex
	calls []bool
}

func (f *fakeLines) SetSubscriptionLines(ctx context.Context, tx *store.Tx, subID string, suspended bool, reason string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, suspended)
	return 1, nil
}

type shellBundle struct {
	svc   *Service
	pool  *pgxpool.Pool
	lines *fakeLines
	paris *time.Location
}

func setupShell(t *testing.T) shellBundle {
	t.Helper()
	pool := storetest.NewPool(t)
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	fl := &fakeLines{}
	svc, err := NewService(Options{DB: store.NewDB(pool), Clock: testClock(time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC)), Workers: 4, Registry: prometheus.NewRegistry(),
		Settings: Settings{IssuerCode: "test", Issuer: Issuer{Name: "Test Telecom"}, CreditOnDecrease: true, PaymentTermDays: 14, Dunning: DefaultDunningSchedule},
		Lines:    fl})
	if err != nil {
		t.Fatal(err)
	}
	storetest.Package(t, pool, provdb.UpsertPackageParams{Code: "fr", Name: "France", PriceMinor: 4990,
		Cycles: []byte(`[{"cycle":"monthly","discount_bp":0},{"cycle":"annual","discount_bp":1500}]`)})
	return shellBundle{svc: svc, pool: pool, lines: fl, paris: paris}
}

// day is a date (for date columns).
func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// account inserts a card (token != "") or invoice account with one
// subscription of qty France lines for November 2026.
func (b shellBundle) account(t *testing.T, token string, qty int) (acct, sub string) {
	t.Helper()
	ctx := t.Context()
	acct, sub = uuid.NewString(), uuid.NewString()
	mode := ModeInvoice
	if token != "" {
		mode = ModeCard
	}
	storetest.Account(t, b.pool, provdb.InsertAccountParams{ID: acct, SipDomain: acct[:8] + ".example.net", PaymentMode: mode})
	if token != "" {
		if _, err := b.svc.AddPaymentMethod(ctx, "test", acct, NewPaymentMethod{Gateway: "sandbox", Token: token, Default: true}); err != nil {
			t.Fatal(err)
		}
	}
	start, end := time.Date(2026, 11, 1, 0, 0, 0, 0, b.paris), time.Date(2026, 12, 1, 0, 0, 0, 0, b.paris)
	storetest.Subscription(t, b.pool, storetest.SubscriptionRow{ID: sub, AccountID: acct, PackageCode: "fr", Quantity: int32(qty),
		PeriodPriceMinor: 4990, PeriodStart: start, PeriodEnd: end})
	return acct, sub
}

func TestShellRenewCatchesUpAndNeverBillsTwice(t *testing.T) {
	t.Parallel()
	b := setupShell(t)
	_, sub := b.account(t, SandboxApprove, 2)
	// Down since November: three periods are due on 1 February.
	at := time.Date(2027, 2, 1, 1, 0, 0, 0, time.UTC)
	for i, want := range []int64{3, 0} {
		st, err := b.svc.Renew(t.Context(), at)
		if err != nil || st.Renewed != want || st.Invoiced != want {
			t.Fatalf("run %d: %+v, %v; want %d", i, st, err, want)
		}
	}
	rows, err := b.pool.Query(t.Context(), `SELECT r.period_start, i.number, i.net_minor, i.status FROM renewals r JOIN invoices i ON i.id = r.invoice_id
		WHERE r.subscription_id = $1 ORDER BY r.period_start`, sub)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var ps time.Time
		var num, status string
		var net int64
		if err := rows.Scan(&ps, &num, &net, &status); err != nil {
			t.Fatal(err)
		}
		if net != 9980 || status != "paid" {
			t.Errorf("period %v: net %d, %s", ps, net, status)
		}
		got = append(got, DateOf(ps, b.paris).String()+" "+num)
	}
	// Issued on the day of the catch-up run, so all in 2027's series.
	want := []string{"2026-12-01 2027-000001", "2027-01-01 2027-000002", "2027-02-01 2027-000003"}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("renewals = %v, want %v", got, want)
	}
}

func TestShellPendingCreditIsCappedAndCarried(t *testing.T) {
	t.Parallel()
	b := setupShell(t)
	acct, _ := b.account(t, "", 1) // invoice account, 49.90 a month
	storetest.PendingItem(t, b.pool, storetest.PendingItemRow{AccountID: acct, PackageCode: "fr", Description: "France",
		Quantity: -2, UnitMinor: 4990, AmountMinor: -6000, PeriodStart: day(2026, 11, 10), PeriodEnd: day(2026, 12, 1)})
	if _, err := b.svc.Renew(t.Context(), time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	var net, gross int64
	var status, ref string
	if err := b.pool.QueryRow(t.Context(), `SELECT net_minor, gross_minor, status, payment_ref FROM invoices WHERE account_id = $1`, acct).Scan(&net, &gross, &status, &ref); err != nil {
		t.Fatal(err)
	}
	if net != 0 || gross != 0 || status != "paid" || ref != "credit" {
		t.Fatalf("invoice net %d gross %d %s %q; want a zero invoice settled by credit", net, gross, status, ref)
	}
	sum, err := b.svc.Summary(t.Context(), acct)
	if err != nil {
		t.Fatal(err)
	}
	if sum.CreditBalanceMinor != 6000-4990 {
		t.Fatalf("credit carried forward = %d, want %d", sum.CreditBalanceMinor, 6000-4990)
	}
}

func TestShellDunningExhaustsThenMarkPaidReactivates(t *testing.T) {
	t.Parallel()
	b := setupShell(t)
	acct, sub := b.account(t, SandboxDecline, 1)
	first := time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC)
	if _, err := b.svc.Renew(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{24 * time.Hour, 72 * time.Hour, 168 * time.Hour} {
		if err := b.svc.RunDunning(t.Context(), first.Add(d)); err != nil {
			t.Fatal(err)
		}
	}
	var status, inv string
	if err := b.pool.QueryRow(t.Context(), `SELECT s.status, r.invoice_id FROM subscriptions s JOIN renewals r ON r.subscription_id = s.id WHERE s.id = $1`, sub).Scan(&status, &inv); err != nil {
		t.Fatal(err)
	}
	if status != "inactive" || len(b.lines.calls) != 1 || !b.lines.calls[0] {
		t.Fatalf("after dunning: %s, line switches %v", status, b.lines.calls)
	}
	if _, err := b.svc.MarkPaid(t.Context(), "operator", inv, "SEPA-1"); err != nil {
		t.Fatal(err)
	}
	if err := b.pool.QueryRow(t.Context(), `SELECT status FROM subscriptions WHERE id = $1`, sub).Scan(&status); err != nil || status != "active" {
		t.Fatalf("after payment: %s %v", status, err)
	}
	if len(b.lines.calls) != 2 || b.lines.calls[1] {
		t.Fatalf("line switches %v, want suspend then resume", b.lines.calls)
	}
	if _, err := b.svc.Invoice(t.Context(), inv, uuid.NewString()); err == nil {
		t.Fatal("another account reads the invoice")
	}
	if got, err := b.svc.Invoice(t.Context(), inv, acct); err != nil || got.Status != StatusPaid || got.PaymentRef != "SEPA-1" || got.Number != "2026-000001" {
		t.Fatalf("invoice = %+v, %v", got, err)
	}
}

// Issuers racing on one counter get consecutive numbers.
func TestShellConcurrentIssuesAreGapless(t *testing.T) {
	t.Parallel()
	b := setupShell(t)
	acct, _ := b.account(t, "", 1)
	at := time.Date(2026, 11, 16, 10, 0, 0, 0, b.paris)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			err := b.svc.db.InTx(t.Context(), func(tx *store.Tx) error {
				inv, err := BuildInvoice(Draft{Issuer: Issuer{Name: "T"}, Customer: Customer{Name: "C"}, IssuedAt: at, DueAt: at, Currency: "EUR",
					Lines: []Line{{Description: "x", Quantity: 1, UnitMinor: 100, AmountMinor: 100, VATBasisPoints: 2000}}})
				if err != nil {
					return err
				}
				if err := b.svc.issueTx(t.Context(), tx, &issue{id: uuid.NewString(), accountID: acct, inv: inv, status: StatusOpen}); err != nil {
					return err
				}
				if i%4 == 0 {
					return context.Canceled // rolled back: its number goes back
				}
				return nil
			})
			if err != nil && err != context.Canceled {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var n, maxSeq int64
	if err := b.pool.QueryRow(t.Context(), `SELECT count(*), max(right(number, 6)::bigint) FROM invoices`).Scan(&n, &maxSeq); err != nil || n != 15 || maxSeq != 15 {
		t.Fatalf("%d invoices, highest number %d (%v); want 15 and 15", n, maxSeq, err)
	}
}
