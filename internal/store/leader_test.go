package store_test

import (
	"testing"

	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/storetest"
)

// A job's leader lock has one holder at a time; each new holder starts a
// new fence epoch; released, the lock can be taken again, and other jobs'
// locks are independent.
func TestTryLead(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := store.NewDB(storetest.NewPool(t))
	first, ok, err := db.TryLead(ctx, "job")
	if err != nil || !ok || first.Fence != (store.Fence{Job: "job", Epoch: 1}) {
		t.Fatalf("first: %v, %v, %+v", ok, err, first)
	}
	if err := first.Alive(ctx); err != nil {
		t.Fatalf("alive: %v", err)
	}
	if _, ok, err := db.TryLead(ctx, "job"); err != nil || ok {
		t.Fatalf("second while held: %v, %v; want not taken", ok, err)
	}
	other, ok, err := db.TryLead(ctx, "other job")
	if err != nil || !ok {
		t.Fatalf("another job's lock: %v, %v", ok, err)
	}
	other.Release(ctx)
	first.Release(ctx)
	again, ok, err := db.TryLead(ctx, "job")
	if err != nil || !ok || again.Fence.Epoch != 2 {
		t.Fatalf("after release: %v, %v, %+v; want epoch 2", ok, err, again)
	}
	again.Release(ctx)
}
