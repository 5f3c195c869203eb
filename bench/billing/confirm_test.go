package billing

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/pbxd/pbxd/internal/app/apptest"
	"github.com/pbxd/pbxd/internal/config"
	"github.com/pbxd/pbxd/provisioning"
)

// BenchmarkConfirmCard measures change orders confirmed per second on card
// accounts, with payments as durable intents: each op previews and
// confirms +1 line on one of 32 card accounts (sandbox gateway, approve),
// which commits the intent, charges outside any transaction, records the
// answer, then applies the change and issues its paid invoice; 16 clients. It runs
// a whole daemon in-process and calls the provisioning service directly
// (no HTTP):
//
//	PBXD_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable \
//	  go test ./bench/billing -run '^$' -bench 'ConfirmCard$|ConfirmInvoice$' -benchtime 3000x -count 2
//
// Besides confirms/s it reports the CPU each op costs the process
// (go-cpu-µs/op: the daemon, its reconciler and the clients) and the
// PostgreSQL backends serving the database (pg-cpu-µs/op), which a shared
// machine's load changes far less than the wall time; PBXD_BENCH_SAMPLE=FILE
// adds where the backends wait (see costMeter).
func BenchmarkConfirmCard(b *testing.B) { benchConfirm(b, "card", 8, nil) }

// BenchmarkConfirmInvoice is the same on invoice accounts (nothing paid at
// confirm: the charge waits for the next bill), the reference a card
// confirm is compared with.
func BenchmarkConfirmInvoice(b *testing.B) { benchConfirm(b, "invoice", 8, nil) }

// BenchmarkConfirmCardWire runs card confirms one at a time through a
// proxy that counts what each preview + confirm costs PostgreSQL: round
// trips and transactions.
func BenchmarkConfirmCardWire(b *testing.B) { benchWire(b, "card") }

// BenchmarkConfirmInvoiceWire is BenchmarkConfirmCardWire on invoice accounts.
func BenchmarkConfirmInvoiceWire(b *testing.B) { benchWire(b, "invoice") }

func benchWire(b *testing.B, mode string) {
	var w *wireCounter
	benchConfirm(b, mode, 0, func(c *config.Config) { w, c.Database.URL = proxyDatabase(b, c.Database.URL) }, func() { w.reset() }, func() { w.report(b) })
}

// benchConfirm runs b.N previews + confirms on 32 accounts of mode, from
// parallelism×GOMAXPROCS clients (0: one client). hooks run at the timer's
// start and end.
func benchConfirm(b *testing.B, mode string, parallelism int, mutate func(*config.Config), hooks ...func()) {
	var d *apptest.Daemon
	if mutate != nil {
		d = apptest.Start(b, mutate)
	} else {
		d = apptest.Start(b)
	}
	svc := d.App.Provisioning()
	var accounts []string
	for i := range 32 {
		acct := d.CreateAccount(b, map[string]any{"payment_mode": mode, "sip_domain": fmt.Sprintf("bench%d.example.net", i),
			"extension_range": map[string]int{"first": 1, "last": 99999}})
		if mode == "card" {
			d.Op(b, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/payment-methods", map[string]any{"gateway": "sandbox", "token": "sandbox_approve", "default": true})
		}
		accounts = append(accounts, acct)
	}
	ctx := context.Background()
	var next, retries atomic.Int64
	qty := make([]atomic.Int64, len(accounts))
	op := func() {
		i := int(next.Add(1)) % len(accounts)
		for {
			q := int(qty[i].Load()) + 1
			pv, err := svc.PreviewChange(ctx, accounts[i], provisioning.ChangeRequest{Items: []provisioning.ChangeItem{{Package: "world", Quantity: q}}})
			if err != nil {
				b.Fatal(err)
			}
			res, err := svc.ConfirmChange(ctx, "bench", pv.ID, "")
			if err == nil {
				if pv.DueNow.GrossMinor > 0 && res.InvoiceID == nil {
					b.Fatal("a card confirm without its invoice")
				}
				qty[i].Store(int64(q))
				return
			}
			// Another client changed this account since the preview: preview again.
			retries.Add(1)
		}
	}
	// Through the proxy (hooks), the process's CPU would include it.
	var cost *costMeter
	if len(hooks) == 0 {
		cost = newCostMeter(d.App.Pool())
		cost.begin(b)
	} else {
		hooks[0]()
	}
	b.ResetTimer()
	if parallelism == 0 {
		for range b.N {
			op()
		}
	} else {
		// Sixteen clients on two cores: a confirm waits on PostgreSQL
		// (commits, round trips) more than it computes.
		b.SetParallelism(parallelism)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				op()
			}
		})
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "confirms/s")
	b.ReportMetric(float64(retries.Load())/float64(b.N), "retries/op")
	b.StopTimer()
	if cost != nil {
		cost.end(b)
	}
	if len(hooks) > 1 {
		hooks[1]()
	}
	var unsettled int
	if err := d.App.Pool().QueryRow(ctx, `SELECT count(*) FROM payment_attempts WHERE outcome = 'unknown' OR (change_id IS NOT NULL AND invoice_id IS NULL AND outcome = 'approved' AND refund_state IS NULL)`).Scan(&unsettled); err != nil || unsettled != 0 {
		b.Fatalf("%d payments left unsettled (%v)", unsettled, err)
	}
}
