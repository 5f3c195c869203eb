// Package billing benchmarks pbxd's renewal run against real PostgreSQL:
//
//	PBXD_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//	  go test ./bench/billing -run '^$' -bench Renewal -benchtime 1x
//
// Each iteration builds 100,000 subscriptions due for renewal (25,000
// accounts with four packages each, 70 % paying by sandbox card, 30 % by
// invoice, one in ten with a pending credit) on a fresh database and renews
// them all, one invoice and one card charge per account; the figure is
// subscriptions renewed per second.
// PBXD_BENCH_SUBS, PBXD_BENCH_WORKERS and PBXD_BENCH_BATCH change the size,
// the parallelism (default: two workers per core, as the daemon) and the
// most subscriptions per transaction (billing.renewal_batch, default 100).
package billing

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxd/pbxd/billing"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/provdb"
	"github.com/pbxd/pbxd/internal/store/storetest"
)

type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// fixture fills a fresh database with subs subscriptions due at 1 December
// 2026 (Europe/Paris), four per account (one per package), in one
// transaction through storetest's factories.
func fixture(ctx context.Context, tb testing.TB, pool *pgxpool.Pool, subs int) {
	tb.Helper()
	accounts := subs / 4
	twoCycles := []byte(`[{"cycle":"monthly","discount_bp":0},{"cycle":"annual","discount_bp":1500}]`)
	pkgs := []provdb.UpsertPackageParams{
		{Code: "fr-fixed-mobile", Name: "France fixed & mobile", PriceMinor: 4990, Cycles: twoCycles, DialContext: "pkg-fr"},
		{Code: "world", Name: "World fixed & mobile", PriceMinor: 6990, Cycles: twoCycles},
		{Code: "uk", Name: "United Kingdom", PriceMinor: 1990},
		{Code: "us", Name: "United States", PriceMinor: 1490},
	}
	cet, cest := time.FixedZone("CET", 3600), time.FixedZone("CEST", 7200)
	start, end := time.Date(2026, 11, 1, 0, 0, 0, 0, cet), time.Date(2026, 12, 1, 0, 0, 0, 0, cet)
	registered := time.Date(2026, 10, 15, 0, 0, 0, 0, cest)
	err := store.NewDB(pool).InTx(ctx, func(tx *store.Tx) error {
		for _, p := range pkgs {
			storetest.Package(tb, tx, p)
		}
		for g := 1; g <= accounts; g++ {
			id := fmt.Sprintf("00000000-0000-4000-8000-%012x", g)
			mode := "invoice" // 70 % by card
			if g%10 < 7 {
				mode = "card"
			}
			storetest.Account(tb, tx, provdb.InsertAccountParams{ID: id, Name: fmt.Sprintf("Customer %d", g), SipDomain: fmt.Sprintf("c%d.voip.example.net", g),
				PaymentMode: mode, SeatPreference: "auto_purchase", ExtLast: 899,
				BillingAddress: fmt.Appendf(nil, `{"line1": "%d rue de la Paix", "city": "Paris", "country": "FR"}`, g)})
			if mode == "card" {
				storetest.PaymentMethod(tb, tx, storetest.PaymentMethodRow{AccountID: id, Token: "sandbox_approve", Label: "Sandbox card"})
			}
			for _, p := range pkgs {
				qty := 1 + int32(math.Round(rand.Float64()*4)) // 1 to 5
				if p.Code == "world" {
					qty = int32(math.Round(rand.Float64() * 2)) // 0 to 2
				}
				storetest.Subscription(tb, tx, storetest.SubscriptionRow{AccountID: id, PackageCode: p.Code, Quantity: qty, PeriodPriceMinor: p.PriceMinor,
					PeriodStart: start, PeriodEnd: end, RegisteredFrom: registered})
			}
			if strings.HasSuffix(id, "7") { // one in ten has a pending credit
				storetest.PendingItem(tb, tx, storetest.PendingItemRow{AccountID: id, PackageCode: "world", Description: "World fixed & mobile",
					Quantity: -1, UnitMinor: 6990, AmountMinor: -3495, Note: "15 of 30 days",
					PeriodStart: time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC), PeriodEnd: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)})
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("fixture: %v", err)
	}
	// Not invoices: statistics frozen on an empty invoices table make
	// PostgreSQL check the invoice foreign keys by sequential scan, which
	// slows every renewal as the run issues invoices (a live system's
	// autovacuum re-analyzes it within a minute).
	if _, err := pool.Exec(ctx, `ANALYZE packages, accounts, payment_methods, subscriptions, pending_items`); err != nil {
		tb.Fatalf("fixture: %v", err)
	}
}

func BenchmarkRenewal(b *testing.B) {
	subs := envInt("PBXD_BENCH_SUBS", 100_000)
	workers := envInt("PBXD_BENCH_WORKERS", 2*runtime.GOMAXPROCS(0)) // as the daemon sizes it
	batch := envInt("PBXD_BENCH_BATCH", billing.DefaultRenewalBatch)
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC)
	var total time.Duration
	var renewed int64
	for b.Loop() {
		b.StopTimer()
		url := storetest.NewDatabase(b)
		cfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			b.Fatal(err)
		}
		cfg.MaxConns = int32(workers + 4)
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		fixture(ctx, b, pool, subs)
		b.Logf("fixture of %d subscriptions in %v", subs, time.Since(t0).Round(time.Millisecond))
		svc, err := billing.NewService(billing.Options{
			DB: store.NewDB(pool), Clock: fixedClock(now), Workers: workers, Registry: prometheus.NewRegistry(),
			Settings: billing.Settings{IssuerCode: "bench", Issuer: billing.Issuer{Name: "Bench Telecom"}, PaymentTermDays: 14, Dunning: billing.DefaultDunningSchedule, RenewalBatch: batch},
		})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		st, err := svc.Renew(ctx, now)
		elapsed := time.Since(start)
		b.StopTimer()
		if err != nil || st.Renewed != int64(subs) {
			b.Fatalf("renewed %+v of %d: %v", st, subs, err)
		}
		var gaps int64
		if err := pool.QueryRow(ctx, `SELECT count(*) - max(right(number, 6)::bigint) FROM invoices`).Scan(&gaps); err != nil || gaps != 0 {
			b.Fatalf("invoice numbers not gapless: %d (%v)", gaps, err)
		}
		var unsettled, perAccount int64
		if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM payment_attempts WHERE outcome = 'unknown'),
			(SELECT count(*) FROM (SELECT account_id FROM invoices GROUP BY account_id HAVING count(*) > 1) x)`).Scan(&unsettled, &perAccount); err != nil || unsettled != 0 || perAccount != 0 {
			b.Fatalf("%d payments without outcome, %d accounts with several invoices (%v)", unsettled, perAccount, err)
		}
		total += elapsed
		renewed += st.Renewed
		b.Logf("%d subscriptions (%d invoiced) in %v with %d workers, batches of up to %d: %.0f subscriptions/s",
			st.Renewed, st.Invoiced, elapsed.Round(time.Millisecond), workers, batch, float64(st.Renewed)/elapsed.Seconds())
		pool.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(renewed)/total.Seconds(), "subs/s")
}
