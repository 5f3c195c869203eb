package provisioning_test

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxd/pbxd/internal/clock"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/storetest"
	"github.com/pbxd/pbxd/provisioning"
)

// flakyCharger fails with an error that says nothing about the payment
// until ok is set, then approves; it counts charges by ref.
type flakyCharger struct {
	mu    sync.Mutex
	ok    bool
	calls map[string]int
}

func (f *flakyCharger) ChargeOneOff(_ context.Context, _ provisioning.Account, ref string, _ []provisioning.OneOffItem, _ time.Time) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[ref]++
	if !f.ok {
		return "", errors.New("gateway timeout")
	}
	return "6f1d7c52-4f0e-4a55-9c43-2b0f4d1a9e77", nil
}

// A purchase whose charge outcome is unknown stays pending, keeps its
// stock, and is settled later with the same reference (the gateway's
// idempotency key), creating its units once.
func TestHardwareOrderLeftPendingIsSettledLater(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	ch := &flakyCharger{calls: map[string]int{}}
	tc := clock.NewTest(time.Date(2026, 11, 16, 9, 0, 0, 0, time.UTC))
	svc, err := provisioning.New(provisioning.Options{Subscriptions: billingSubscriptions{}, DB: store.NewDB(storetest.NewPool(t)), Clock: tc, SecretKey: key, Charger: ch,
		Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	one := 1
	if err := svc.SyncCatalog(ctx, []provisioning.Package{{Code: "t54w", Name: "Yealink T54W", Kind: "hardware", PriceMinor: 18900,
		Currency: "EUR", Stock: &one, Vendor: "yealink", Model: "T54W"}}); err != nil {
		t.Fatal(err)
	}
	acct, err := svc.CreateAccount(ctx, "test", provisioning.NewAccount{Name: "Acme", SIPDomain: "acme.example.net", Currency: "EUR",
		Timezone: "Europe/Paris", PaymentMode: "invoice", SeatPreference: "auto_purchase", ExtFirst: 100, ExtLast: 999})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.BuyHardware(ctx, "test", acct.ID, "t54w", 1); err == nil {
		t.Fatal("a charge with an unknown outcome reported success")
	}
	if _, err := svc.BuyHardware(ctx, "test", acct.ID, "t54w", 1); err == nil {
		t.Fatal("the pending order's unit was sold twice")
	}
	orders, _ := svc.HardwareOrders(ctx, acct.ID)
	if len(orders) != 1 || orders[0].State != "pending" {
		t.Fatalf("orders = %+v", orders)
	}
	ch.mu.Lock()
	ch.ok = true
	ch.mu.Unlock()
	if err := svc.SettleHardwareOrders(ctx, tc.Now()); err != nil {
		t.Fatal(err)
	}
	if orders, _ := svc.HardwareOrders(ctx, acct.ID); orders[0].State != "pending" {
		t.Fatal("an order less than a minute old was settled while its charge may be in flight")
	}
	_ = tc.Advance(2 * time.Minute)
	for range 2 {
		if err := svc.SettleHardwareOrders(ctx, tc.Now()); err != nil {
			t.Fatal(err)
		}
	}
	orders, _ = svc.HardwareOrders(ctx, acct.ID)
	if orders[0].State != "paid" || len(orders[0].Units) != 1 || ch.calls["hardware:"+orders[0].ID] != 2 {
		t.Fatalf("after settling: %+v, charges %v", orders, ch.calls)
	}
}
