package provisioning_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/pbxd/pbxd/provisioning"
)

// BenchmarkConfirm measures change orders confirmed per second against real
// PostgreSQL: each op previews and confirms +1 line on one of 32 accounts,
// from parallel clients (the account lock serialises per account only).
func BenchmarkConfirm(b *testing.B) {
	env := setup(b)
	var accounts []string
	for i := 0; i < 32; i++ {
		a, err := env.svc.CreateAccount(b.Context(), "bench", provisioning.NewAccount{Name: "Bench", SIPDomain: fmt.Sprintf("b%d.example.net", i),
			Currency: "EUR", Timezone: "Europe/Paris", PaymentMode: "invoice", SeatPreference: "auto_purchase", ExtFirst: 1, ExtLast: 99999})
		if err != nil {
			b.Fatal(err)
		}
		accounts = append(accounts, a.ID)
	}
	var next atomic.Int64
	qty := make([]atomic.Int64, len(accounts))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1)) % len(accounts)
			for {
				q := int(qty[i].Load()) + 1
				pv, err := env.svc.PreviewChange(b.Context(), accounts[i], provisioning.ChangeRequest{Items: []provisioning.ChangeItem{{Package: "world", Quantity: q}}})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := env.svc.ConfirmChange(b.Context(), "bench", pv.ID, ""); err == nil {
					qty[i].Store(int64(q))
					break
				}
				// Another client changed this account since the preview: preview again.
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "confirms/s")
}
