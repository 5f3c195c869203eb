// Package numbers benchmarks the number inventory through a whole
// in-process daemon (HTTP API, provisioning, billing) on real PostgreSQL:
//
//	go test ./bench/numbers -run '^$' -bench . -benchtime 5x
//
// BenchmarkImport: each op imports 10,000 new numbers in one call
// (numbers/s). BenchmarkOrder: each op previews and confirms an order of
// one number by prefix on one of 32 accounts, from parallel clients
// (orders/s); the claim is SELECT … FOR UPDATE SKIP LOCKED, so orders do
// not wait for each other's numbers.
package numbers

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/pbxd/pbxd/internal/app/apptest"
)

const batch = 10_000

func importBatch(b *testing.B, d *apptest.Daemon, first int) {
	nums := make([]string, batch)
	for i := range nums {
		nums[i] = fmt.Sprintf("+3315%07d", first+i)
	}
	r := d.Call(b, apptest.OperatorToken, "POST", "/v1/numbers/import", map[string]any{
		"country": "FR", "area": "+3315", "kind": "local", "addon": "local-number", "numbers": nums})
	if r.Status != http.StatusOK {
		b.Fatalf("import: %d %s", r.Status, r.Body)
	}
	if got := r.Map(b)["imported"]; got != float64(batch) {
		b.Fatalf("imported %v of %d", got, batch)
	}
}

func BenchmarkImport(b *testing.B) {
	d := apptest.Start(b)
	b.ResetTimer()
	for i := range b.N {
		importBatch(b, d, i*batch)
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "numbers/s")
}

func BenchmarkOrder(b *testing.B) {
	d := apptest.Start(b)
	for i := 0; i*batch < b.N+batch; i++ {
		importBatch(b, d, i*batch)
	}
	accounts := make([]string, 32)
	for i := range accounts {
		accounts[i] = d.CreateAccount(b, map[string]any{"sip_domain": fmt.Sprintf("bench%d.voip.example.net", i)})
	}
	var next, conflicts atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			acct := accounts[int(next.Add(1))%len(accounts)]
			for {
				pv := d.Call(b, apptest.OperatorToken, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{
					"items": []any{}, "numbers": []map[string]any{{"prefix": "+3315", "quantity": 1}}})
				if pv.Status != http.StatusCreated {
					b.Fatalf("preview: %d %s", pv.Status, pv.Body)
				}
				r := d.Call(b, apptest.OperatorToken, "POST", "/v1/changes/"+pv.Map(b)["id"].(string)+"/confirm", nil)
				if r.Status == http.StatusOK {
					break
				}
				if r.Status != http.StatusConflict { // the same account's quantity moved: preview again
					b.Fatalf("confirm: %d %s", r.Status, r.Body)
				}
				conflicts.Add(1)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "orders/s")
	b.ReportMetric(float64(conflicts.Load())/float64(b.N), "retries/op")
}
