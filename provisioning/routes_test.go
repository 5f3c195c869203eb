package provisioning_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxd/pbxd/pbx"
	"github.com/pbxd/pbxd/provisioning"
)

// routerPBX is fakePBX with number routes (node|number → target).
type routerPBX struct {
	*fakePBX
	mu      sync.Mutex
	routes  map[string]string
	failing bool
	writes  int
}

func (r *routerPBX) RouteTarget(l pbx.LineConfig) string { return l.Username + "@" + l.Domain }
func (r *routerPBX) SetRoute(_ context.Context, node, number, target string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failing {
		return fmt.Errorf("fake: %w", pbx.ErrUnavailable)
	}
	r.writes++
	if target == "" {
		delete(r.routes, node+"|"+number)
	} else {
		r.routes[node+"|"+number] = target
	}
	return nil
}
func (r *routerPBX) HeldRoute(_ context.Context, node, number string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failing {
		return "", fmt.Errorf("fake: %w", pbx.ErrUnavailable)
	}
	return r.routes[node+"|"+number], nil
}
func (r *routerPBX) route(number string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.routes["|"+number]
}

// Routes follow assignments, are retried with back-off while the PBX
// fails, written only when they change, and repaired by a resync (read
// back: a route lost or altered on the PBX is set again).
func TestNumberRoutes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	if err := b.svc.SyncCatalog(ctx, []provisioning.Package{
		{Code: "world", Name: "World", Kind: "package", PriceMinor: 6990, Currency: "EUR", Cycles: []provisioning.Cycle{{Cycle: "monthly"}}, DialContext: "pkg-world"},
		{Code: "did", Name: "Number", Kind: "addon", PriceMinor: 300, Currency: "EUR", Cycles: []provisioning.Cycle{{Cycle: "monthly"}}},
	}); err != nil {
		t.Fatal(err)
	}
	router := &routerPBX{fakePBX: newFake(), routes: map[string]string{}}
	rec := b.svc.NewReconciler(router, provisioning.ReconcilerOptions{Concurrency: 4, ResyncInterval: time.Hour,
		RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond, Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	if _, err := b.svc.ImportNumbers(ctx, "test", provisioning.NumberImport{Country: "FR", Kind: "local", Addon: "did",
		Numbers: []string{"+33142000001"}}); err != nil {
		t.Fatal(err)
	}
	b.order(t, 1)
	pv, err := b.svc.PreviewChange(ctx, b.acct, provisioning.ChangeRequest{Items: []provisioning.ChangeItem{},
		Numbers: []provisioning.NumberOrder{{Number: "+33142000001"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.ConfirmChange(ctx, "test", pv.ID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.AssignNumber(ctx, "test", b.acct, "+33142000001", "", false); err != nil {
		t.Fatal(err)
	}

	router.failing = true
	next, err := rec.ApplyPending(ctx)
	if err != nil || next.IsZero() {
		t.Fatalf("with the PBX failing: next retry %v, err %v; want a retry time", next, err)
	}
	router.mu.Lock()
	router.failing = false
	router.mu.Unlock()
	time.Sleep(time.Until(next))
	if next, err = rec.ApplyPending(ctx); err != nil || !next.IsZero() {
		t.Fatalf("after the PBX is back: next %v, err %v", next, err)
	}
	if got := router.route("+33142000001"); got != "100@acme.example.net" {
		t.Fatalf("route = %q", got)
	}
	writes := router.writes
	if _, err := rec.ApplyPending(ctx); err != nil || router.writes != writes {
		t.Fatalf("an unchanged route was written again (%d → %d writes, %v)", writes, router.writes, err)
	}

	router.mu.Lock()
	router.routes["|+33142000001"] = "999@elsewhere"
	router.mu.Unlock()
	if err := rec.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := router.route("+33142000001"); got != "100@acme.example.net" {
		t.Fatalf("altered route after a resync = %q", got)
	}

	if _, err := b.svc.UnassignNumber(ctx, "test", b.acct, "+33142000001"); err != nil {
		t.Fatal(err)
	}
	if _, err := rec.ApplyPending(ctx); err != nil {
		t.Fatal(err)
	}
	if got := router.route("+33142000001"); got != "" {
		t.Fatalf("route of an unassigned number = %q", got)
	}
}
