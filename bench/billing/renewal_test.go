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
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxd/pbxd/billing"
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
// 2026 (Europe/Paris), four per account (one per package).
func fixture(ctx context.Context, tb testing.TB, pool *pgxpool.Pool, subs int) {
	tb.Helper()
	accounts := subs / 4
	stmts := []string{
		`INSERT INTO packages (code, name, price_minor, currency, cycles, dial_context, updated_at) VALUES
			('fr-fixed-mobile', 'France fixed & mobile', 4990, 'EUR', '[{"cycle":"monthly","discount_bp":0},{"cycle":"annual","discount_bp":1500}]', 'pkg-fr', now()),
			('world', 'World fixed & mobile', 6990, 'EUR', '[{"cycle":"monthly","discount_bp":0},{"cycle":"annual","discount_bp":1500}]', 'pkg-world', now()),
			('uk', 'United Kingdom', 1990, 'EUR', '[{"cycle":"monthly","discount_bp":0}]', 'pkg-uk', now()),
			('us', 'United States', 1490, 'EUR', '[{"cycle":"monthly","discount_bp":0}]', 'pkg-us', now())`,
		`INSERT INTO accounts (id, name, sip_domain, currency, timezone, vat_bp, payment_mode, seat_preference, ext_first, ext_last, billing_address, created_at)
			SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, 'Customer ' || g, 'c' || g || '.voip.example.net', 'EUR', 'Europe/Paris', 2000,
			       CASE WHEN g % 10 < 7 THEN 'card' ELSE 'invoice' END, 'auto_purchase', 100, 899,
			       jsonb_build_object('line1', g || ' rue de la Paix', 'city', 'Paris', 'country', 'FR'), now()
			FROM generate_series(1, $1) g`,
		`INSERT INTO payment_methods (id, account_id, gateway, token, label, is_default, created_at)
			SELECT gen_random_uuid(), id, 'sandbox', 'sandbox_approve', 'Sandbox card', true, now() FROM accounts WHERE payment_mode = 'card'`,
		`INSERT INTO subscriptions (id, account_id, package_code, cycle, quantity, status, period_price_minor, period_start, period_end, next_payment_at, registered_from)
			SELECT gen_random_uuid(), a.id, p.code, 'monthly', CASE WHEN p.code = 'world' THEN (random() * 2)::int ELSE 1 + (random() * 4)::int END, 'active',
			       p.price_minor, '2026-11-01 00:00+01', '2026-12-01 00:00+01', '2026-12-01 00:00+01', '2026-10-15 00:00+02'
			FROM accounts a CROSS JOIN packages p`,
		`INSERT INTO pending_items (id, account_id, package_code, description, quantity, unit_minor, amount_minor, currency, period_start, period_end, note, created_at)
			SELECT gen_random_uuid(), id, 'world', 'World fixed & mobile', -1, 6990, -3495, 'EUR', '2026-11-16', '2026-12-01', '15 of 30 days', now()
			FROM accounts WHERE right(id::text, 1) = '7'`,
		// Not invoices: statistics frozen on an empty invoices table make
		// PostgreSQL check the invoice foreign keys by sequential scan,
		// which slows every renewal as the run issues invoices (a live
		// system's autovacuum re-analyzes it within a minute).
		`ANALYZE packages, accounts, payment_methods, subscriptions, pending_items`,
	}
	for i, q := range stmts {
		var err error
		if i == 1 {
			_, err = pool.Exec(ctx, q, accounts)
		} else {
			_, err = pool.Exec(ctx, q)
		}
		if err != nil {
			tb.Fatalf("fixture statement %d: %v", i, err)
		}
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
		fixture(ctx, b, pool, subs)
		svc, err := billing.NewService(billing.Options{
			Pool: pool, Clock: fixedClock(now), Workers: workers, Registry: prometheus.NewRegistry(),
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
