package billing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/provdb"
	"github.com/pbxd/pbxd/internal/store/storetest"
)

// batchRunAt renews on 31 December 2026 at noon UTC: 1 January 2027 in
// Auckland, still 2026 in Paris, so one batch issues in two years' series.
var batchRunAt = time.Date(2026, 12, 31, 12, 0, 0, 0, time.UTC)

// mixedFixture fills b with one of every kind of renewal, with the same ids
// in every database, and returns the subscriptions due at batchRunAt in
// the run's order (account, then subscription).
func mixedFixture(t *testing.T, b shellBundle) []string {
	t.Helper()
	ctx := t.Context()
	id := func(name string) string { return uuid.NewSHA1(uuid.NameSpaceURL, []byte(name)).String() }
	storetest.Package(t, b.pool, provdb.UpsertPackageParams{Code: "world", Name: "World", PriceMinor: 6990})
	account := func(name, mode, tz, token string) string {
		acct := id("account " + name)
		storetest.Account(t, b.pool, provdb.InsertAccountParams{ID: acct, Name: name, SipDomain: name + ".example.net", Timezone: tz, PaymentMode: mode})
		if token != "" {
			storetest.PaymentMethod(t, b.pool, storetest.PaymentMethodRow{ID: id("pm " + name), AccountID: acct, Token: token})
		}
		return acct
	}
	sub := func(acct, name, pkg, status string, qty int, start, end time.Time, trialEnd *time.Time) {
		storetest.Subscription(t, b.pool, storetest.SubscriptionRow{ID: id("sub " + name), AccountID: acct, PackageCode: pkg, Status: status,
			Quantity: int32(qty), PeriodPriceMinor: 4990, PeriodStart: start, PeriodEnd: end, TrialEnd: trialEnd})
	}
	pending := func(acct, name string, amount int64) {
		storetest.PendingItem(t, b.pool, storetest.PendingItemRow{ID: id("pending " + name), AccountID: acct, PackageCode: "fr", Description: "France",
			Quantity: 1, UnitMinor: 4990, AmountMinor: amount, PeriodStart: day(2026, 11, 16), PeriodEnd: day(2026, 12, 1),
			CreatedAt: time.Date(2026, 11, 16, 10, 0, 0, 0, time.UTC)})
	}
	auckland, err := time.LoadLocation("Pacific/Auckland")
	if err != nil {
		t.Fatal(err)
	}
	dec1, jan1 := time.Date(2026, 12, 1, 0, 0, 0, 0, b.paris), time.Date(2027, 1, 1, 0, 0, 0, 0, b.paris)
	nov1, oct1 := time.Date(2026, 11, 1, 0, 0, 0, 0, b.paris), time.Date(2026, 10, 1, 0, 0, 0, 0, b.paris)
	// Two subscriptions sharing a charge and a credit larger than the
	// first invoice: the credit's remainder goes to the second.
	a := account("alpha", ModeCard, "Europe/Paris", SandboxApprove)
	sub(a, "alpha fr", "fr", "active", 2, nov1, dec1, nil)
	sub(a, "alpha world", "world", "active", 1, nov1, dec1, nil)
	pending(a, "alpha charge", 1000)
	pending(a, "alpha credit", -15000)
	pending(a, "alpha small credit", -100)
	sub(account("bravo", ModeCard, "Europe/Paris", SandboxDecline), "bravo", "fr", "active", 1, nov1, dec1, nil)
	sub(account("charlie", ModeCard, "Europe/Paris", ""), "charlie", "fr", "active", 1, nov1, dec1, nil) // no payment method
	sub(account("delta", ModeInvoice, "Europe/Paris", ""), "delta", "fr", "active", 0, nov1, dec1, nil)
	trialEnd := time.Date(2026, 12, 20, 0, 0, 0, 0, b.paris)
	sub(account("echo", ModeInvoice, "Europe/Paris", ""), "echo", "fr", "trial", 3, dec1, time.Date(2027, 1, 1, 0, 0, 0, 0, b.paris), &trialEnd)
	sub(account("foxtrot", ModeCard, "Europe/Paris", SandboxError), "foxtrot", "world", "active", 1, oct1, nov1, nil) // two periods due
	sub(account("golf", ModeCard, "Pacific/Auckland", SandboxApprove), "golf", "fr", "active", 1,
		time.Date(2026, 12, 1, 0, 0, 0, 0, auckland), time.Date(2027, 1, 1, 0, 0, 0, 0, auckland), nil)
	sub(account("hotel", ModeInvoice, "Europe/Paris", ""), "hotel", "fr", "active", 4, dec1, jan1, nil) // not due
	rows, err := b.pool.Query(ctx, `SELECT s.id::text FROM subscriptions s
		WHERE ((s.status = 'active' AND s.period_end <= $1) OR (s.status = 'trial' AND s.trial_end <= $1)) ORDER BY s.account_id, s.id`, batchRunAt)
	if err != nil {
		t.Fatal(err)
	}
	due, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 8 {
		t.Fatalf("%d subscriptions due, want 8", len(due))
	}
	return due
}

// accountsOf lists the accounts of subscriptions, in order, once each.
func accountsOf(t *testing.T, b shellBundle, subs []string) []string {
	t.Helper()
	var out []string
	for _, id := range subs {
		var acct string
		if err := b.pool.QueryRow(t.Context(), `SELECT account_id::text FROM subscriptions WHERE id = $1`, id).Scan(&acct); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(out, acct) {
			out = append(out, acct)
		}
	}
	return out
}

// billingState is everything a renewal writes, one string per row, sorted;
// without the random ids, and without the invoices' place in their series,
// which differs when a subscription catches up on several periods (one by
// one they are consecutive, in batches they are not).
func billingState(t *testing.T, b shellBundle) []string {
	t.Helper()
	queries := []string{
		`SELECT 'invoice', id::text, left(number, 4), status, net_minor, tax_minor, gross_minor, payment_ref <> '', document - 'Number' - 'PaymentRef' FROM invoices`,
		`SELECT 'renewal', subscription_id::text, period_start, invoice_id::text FROM renewals`,
		`SELECT 'subscription', id::text, status, period_start, period_end, next_payment_at, period_price_minor, version FROM subscriptions`,
		`SELECT 'pending', account_id::text, amount_minor, invoice_id::text, note FROM pending_items`,
		`SELECT 'attempt', invoice_id::text, payment_method_id::text, amount_minor, outcome, reference <> '', detail FROM payment_attempts`,
		`SELECT 'dunning', invoice_id::text, failures, first_failure, next_retry_at FROM dunning`,
		`SELECT 'audit', account_id::text, action, object, details FROM audit_log WHERE actor = 'billing'`,
		`SELECT 'counter', issuer, year, last FROM invoice_counters`,
	}
	var out []string
	for _, q := range queries {
		rows, err := b.pool.Query(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintln(vals...))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(out)
	return out
}

// Renewing in one batch writes exactly what renewing one subscription per
// transaction writes: same invoices, same use of pending charges and
// credits, same dunning.
func TestRenewBatchMatchesOneByOne(t *testing.T) {
	t.Parallel()
	cat := func(b shellBundle) map[string]Package {
		c, err := catalog(t.Context(), b.pool)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	one := setupShell(t)
	due := mixedFixture(t, one)
	accounts := accountsOf(t, one, due)
	t1 := &renewalTally{s: one.svc}
	for _, id := range accounts {
		one.svc.renewChunk(t.Context(), cat(one), []string{id}, batchRunAt, t1)
	}
	batch := setupShell(t)
	if got := mixedFixture(t, batch); !slices.Equal(got, due) {
		t.Fatalf("fixtures differ: %v, %v", got, due)
	}
	tb := &renewalTally{s: batch.svc}
	batch.svc.renewChunk(t.Context(), cat(batch), accounts, batchRunAt, tb)

	for name, tally := range map[string]*renewalTally{"one by one": t1, "batch": tb} {
		if p := tally.firstErr.Load(); p != nil {
			t.Fatalf("%s: %v", name, *p)
		}
		// Eight subscriptions, one of them renewed twice (catch-up); alpha's
		// two share one invoice.
		if tally.renewed.Load() != 9 || tally.invoiced.Load() != 7 {
			t.Fatalf("%s: renewed %d, invoiced %d; want 9 and 7", name, tally.renewed.Load(), tally.invoiced.Load())
		}
	}
	want, got := billingState(t, one), billingState(t, batch)
	if !slices.Equal(want, got) {
		for _, r := range want {
			if !slices.Contains(got, r) {
				t.Errorf("one by one only: %s", r)
			}
		}
		for _, r := range got {
			if !slices.Contains(want, r) {
				t.Errorf("batch only:      %s", r)
			}
		}
		t.FailNow()
	}
	// What both wrote is right: two series, gapless, numbers in the documents.
	rows, err := batch.pool.Query(t.Context(), `SELECT number FROM invoices WHERE document #>> '{Number}' = number ORDER BY number`)
	if err != nil {
		t.Fatal(err)
	}
	numbers, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	wantNumbers := []string{"2026-000001", "2026-000002", "2026-000003", "2026-000004", "2026-000005", "2026-000006", "2027-000001"}
	if !slices.Equal(numbers, wantNumbers) {
		t.Fatalf("invoice numbers %v, want %v", numbers, wantNumbers)
	}
	// Alpha, one invoice: France 2 × 49.90 + World 69.90 + 10.00 charge
	// − 1.00 small credit − 150.00 credit = 28.70.
	var nets []int64
	if err := batch.pool.QueryRow(t.Context(), `SELECT array_agg(i.net_minor ORDER BY i.number) FROM invoices i JOIN accounts a ON a.id = i.account_id WHERE a.name = 'alpha'`).Scan(&nets); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(nets, []int64{2*4990 + 6990 + 1000 - 100 - 15000}) {
		t.Fatalf("alpha's invoices net %v", nets)
	}
	var open int64
	if err := batch.pool.QueryRow(t.Context(), `SELECT count(*) FROM pending_items WHERE invoice_id IS NULL`).Scan(&open); err != nil || open != 0 {
		t.Fatalf("%d pending items left (%v), want none", open, err)
	}
	var dunning int64
	if err := batch.pool.QueryRow(t.Context(), `SELECT count(*) FROM dunning`).Scan(&dunning); err != nil || dunning != 4 {
		t.Fatalf("%d invoices in dunning (%v); want 4 (declined, no method, two gateway errors)", dunning, err)
	}
}

func TestRenewBatchSize(t *testing.T) {
	for _, c := range []struct{ due, workers, limit, want int }{
		{100_000, 4, 0, DefaultRenewalBatch}, // a big run: full batches
		{100_000, 4, 1, 1},                   // renewal_batch: 1
		{100_000, 4, 250, 250},
		{24, 3, 0, 2}, // a small run still reaches every worker
		{3, 4, 0, 1},
		{0, 4, 0, 1},
	} {
		if got := batchSize(c.due, c.workers, c.limit); got != c.want {
			t.Errorf("batchSize(%d, %d, %d) = %d, want %d", c.due, c.workers, c.limit, got, c.want)
		}
	}
}

// A batch that fails is retried one subscription per transaction: only the
// subscription at fault is left, and the numbers stay gapless.
func TestRenewBatchFailureIsIsolated(t *testing.T) {
	t.Parallel()
	b := setupShell(t)
	var ids, subs []string
	for range 5 {
		acct, sub := b.account(t, SandboxApprove, 1)
		ids, subs = append(ids, acct), append(subs, sub)
	}
	// A renewal row for the period the run would bill, without the
	// subscription having advanced: the primary key refuses to bill it.
	bad := subs[2]
	storetest.Renewal(t, b.pool, bad, time.Date(2026, 12, 1, 0, 0, 0, 0, b.paris))
	cat, err := catalog(t.Context(), b.pool)
	if err != nil {
		t.Fatal(err)
	}
	tally := &renewalTally{s: b.svc}
	b.svc.renewChunk(t.Context(), cat, ids, time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC), tally)
	var failure error
	if p := tally.firstErr.Load(); p != nil {
		failure = *p
	}
	if tally.renewed.Load() != 4 || tally.failed.Load() != 1 || failure == nil || !strings.Contains(failure.Error(), ids[2]) {
		t.Fatalf("renewed %d, failed %d, error %v; want 4, 1 and an error naming %s", tally.renewed.Load(), tally.failed.Load(), failure, ids[2])
	}
	var n, top int64
	var badInvoices int64
	if err := b.pool.QueryRow(t.Context(), `SELECT count(*), max(right(number, 6)::bigint), count(*) FILTER (WHERE account_id = (SELECT account_id FROM subscriptions WHERE id = $1)) FROM invoices`, bad).
		Scan(&n, &top, &badInvoices); err != nil || n != 4 || top != 4 || badInvoices != 0 {
		t.Fatalf("%d invoices, highest number %d, %d for the failed subscription (%v); want 4, 4, 0", n, top, badInvoices, err)
	}
}

// Two runs at once (two instances sharing the database) split the work:
// every subscription is renewed once, the numbers stay gapless, and
// pending credits are used once.
func TestRenewConcurrentRunsShareTheWork(t *testing.T) {
	t.Parallel()
	b := setupShell(t)
	st := b.svc.cfg()
	st.RenewalBatch = 7
	if err := b.svc.SetSettings(st); err != nil {
		t.Fatal(err)
	}
	storetest.Package(t, b.pool, provdb.UpsertPackageParams{Code: "world", Name: "World", PriceMinor: 6990,
		Cycles: []byte(`[{"cycle":"monthly","discount_bp":0},{"cycle":"annual","discount_bp":1500}]`)})
	const n = 120
	for i := range n {
		token := SandboxApprove
		if i%3 == 0 {
			token = "" // invoice account
		}
		acct, _ := b.account(t, token, 1+i%4)
		storetest.Subscription(t, b.pool, storetest.SubscriptionRow{AccountID: acct, PackageCode: "world", Cycle: "annual", Quantity: 1,
			PeriodPriceMinor: 71298, PeriodStart: time.Date(2025, 12, 1, 0, 0, 0, 0, b.paris), PeriodEnd: time.Date(2026, 12, 1, 0, 0, 0, 0, b.paris)})
		if i%5 == 0 {
			storetest.PendingItem(t, b.pool, storetest.PendingItemRow{AccountID: acct, PackageCode: "fr", Description: "France",
				Quantity: -1, UnitMinor: 4990, AmountMinor: -2495, PeriodStart: day(2026, 11, 16), PeriodEnd: day(2026, 12, 1)})
		}
	}
	at := time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC)
	results := make(chan RenewalStats, 2)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			st, err := b.svc.Renew(t.Context(), at)
			results <- st
			errs <- err
		}()
	}
	var renewed int64
	for range 2 {
		st := <-results
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		renewed += st.Renewed
	}
	var renewals, invoices, top, credits int64
	if err := b.pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM renewals), (SELECT count(*) FROM invoices), (SELECT max(right(number, 6)::bigint) FROM invoices),
		(SELECT count(*) FROM invoices WHERE document->'Lines' @> '[{"AmountMinor": -2495}]')`).Scan(&renewals, &invoices, &top, &credits); err != nil {
		t.Fatal(err)
	}
	// One invoice per account: its two subscriptions are due together.
	if renewed != 2*n || renewals != 2*n || invoices != n || top != n || credits != n/5 {
		t.Fatalf("runs renewed %d; %d renewals, %d invoices numbered up to %d, %d invoices with a credit; want %d, %d, %d, %d, %d",
			renewed, renewals, invoices, top, credits, 2*n, 2*n, n, n, n/5)
	}
}

// gatedGateway approves charges once two of them are in flight together,
// and remembers the most it saw at once.
type gatedGateway struct {
	inFlight, most atomic.Int64
	both           chan struct{}
	once           sync.Once
}

func (g *gatedGateway) Name() string { return "gated" }

func (g *gatedGateway) Lookup(context.Context, string) (ChargeResult, bool, error) {
	return ChargeResult{}, false, nil
}

func (g *gatedGateway) Refund(context.Context, string) (string, error) { return "", nil }

func (g *gatedGateway) Charge(ctx context.Context, token string, amount Money, key string) (ChargeResult, error) {
	n := g.inFlight.Add(1)
	defer g.inFlight.Add(-1)
	for m := g.most.Load(); n > m && !g.most.CompareAndSwap(m, n); m = g.most.Load() {
	}
	if n >= 2 {
		g.once.Do(func() { close(g.both) })
	}
	select {
	case <-g.both:
		return ChargeResult{Outcome: OutcomeApproved, TransactionRef: "gated-" + key}, nil
	case <-time.After(5 * time.Second):
		return ChargeResult{Message: "charges were taken one at a time"}, errors.New("gated: no second charge in flight")
	}
}

// A batch's card charges are taken several at a time (a real gateway
// answers slowly, and the batch's subscriptions stay locked meanwhile).
func TestRenewBatchChargesConcurrently(t *testing.T) {
	t.Parallel()
	b := setupShell(t)
	gw := &gatedGateway{both: make(chan struct{})}
	svc, err := NewService(Options{DB: store.NewDB(b.pool), Clock: testClock(time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC)), Registry: prometheus.NewRegistry(),
		Gateways: map[string]Gateway{gw.Name(): gw}, Settings: b.svc.cfg()})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 3 * chargeConcurrency {
		acct, _ := b.account(t, "", 1)
		if _, err := b.pool.Exec(t.Context(), `UPDATE accounts SET payment_mode = 'card' WHERE id = $1`, acct); err != nil {
			t.Fatal(err)
		}
		storetest.PaymentMethod(t, b.pool, storetest.PaymentMethodRow{AccountID: acct, Gateway: "gated", Token: "tok"})
		ids = append(ids, acct)
	}
	cat, err := catalog(t.Context(), b.pool)
	if err != nil {
		t.Fatal(err)
	}
	tally := &renewalTally{s: svc}
	svc.renewChunk(t.Context(), cat, ids, time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC), tally)
	if p := tally.firstErr.Load(); p != nil {
		t.Fatal(*p)
	}
	var paid int
	if err := b.pool.QueryRow(t.Context(), `SELECT count(*) FROM invoices WHERE status = 'paid' AND payment_ref LIKE 'gated-%'`).Scan(&paid); err != nil || paid != len(ids) {
		t.Fatalf("%d of %d invoices paid (%v)", paid, len(ids), err)
	}
	if m := gw.most.Load(); m < 2 || m > chargeConcurrency {
		t.Fatalf("at most %d charges in flight, want 2 to %d", m, chargeConcurrency)
	}
}
