package sip

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Two instances share the nonce key: a nonce from A is genuine on B but
// stale there (B never saw its counts), so a REGISTER captured on its way
// to A cannot be replayed to B, and the phone that moves to B retries at
// once with B's nonce, without counting as a failure.
func TestNonceAcrossInstances(t *testing.T) {
	t.Parallel()
	a, b := setup(t, nil), setup(t, nil)
	for _, x := range []bundle{a, b} {
		_ = x.r.Apply(context.Background(), lineCfg("L1", "100", dom, "pw"))
	}
	p := newPhone("100", "pw", dom)
	nonce := challengeNonce(t, a.r.handleRegister(p.request(t)), algMD5)
	captured := p.authHeader(nonce, 1)
	if res := a.r.handleRegister(p.request(t, append([]string{captured}, p.contactHdr("")...)...)); res.StatusCode != 200 {
		t.Fatalf("on A: %d", res.StatusCode)
	}
	for nc, auth := range []string{captured, p.authHeader(nonce, 2)} {
		res := b.r.handleRegister(p.request(t, append([]string{auth}, p.contactHdr("")...)...))
		if res.StatusCode != 401 || !strings.Contains(res.GetHeader("WWW-Authenticate").Value(), "stale=true") {
			t.Fatalf("A's nonce (nc %d) on B: want 401 stale=true, got %s", nc+1, res)
		}
		if nc == 1 {
			fresh := challengeNonce(t, res, algMD5)
			if res := b.r.handleRegister(p.request(t, append([]string{p.authHeader(fresh, 1)}, p.contactHdr("")...)...)); res.StatusCode != 200 {
				t.Fatalf("B's own nonce: %d", res.StatusCode)
			}
		}
	}
	if testutil.ToFloat64(b.r.m.authFailures) != 0 {
		t.Fatal("a genuine nonce of another instance counted as a failure")
	}
	// Nonces of a registrar with another key are no one's: a failure.
	other := setup(t, func(c *Config) { c.Secret = []byte("another secret, another cluster!") })
	_ = other.r.Apply(context.Background(), lineCfg("L1", "100", dom, "pw"))
	res := other.r.handleRegister(p.request(t, append([]string{p.authHeader(nonce, 3)}, p.contactHdr("")...)...))
	if res.StatusCode != 401 || strings.Contains(res.String(), "stale=true") {
		t.Fatalf("a nonce of another key: %s", res)
	}
}

// sharedMemory is a SharedStore over MemoryStore, for the merge logic
// (sippg's tests run the real one against PostgreSQL).
type sharedMemory struct{ MemoryStore }

func (s *sharedMemory) LoadLines(ctx context.Context, ids []string) ([]Binding, error) {
	all, err := s.LoadBindings(ctx)
	var out []Binding
	for _, b := range all {
		if slices.Contains(ids, b.LineID) {
			out = append(out, b)
		}
	}
	return out, err
}

func (s *sharedMemory) ExpireBindings(context.Context, time.Time) ([]Binding, error) { return nil, nil }

func (s *sharedMemory) Watch(ctx context.Context, _ func([]string)) error {
	<-ctx.Done()
	return ctx.Err()
}

// A reload never overwrites a newer local state with an older stored one:
// a line with writes queued, or written after the read began, is left
// alone (and returned to be read again); a read begun after the write
// applies.
func TestReloadKeepsNewerLocalWrites(t *testing.T) {
	t.Parallel()
	store := &sharedMemory{}
	clk := &fakeClock{t: time.Date(2026, 11, 16, 10, 0, 0, 0, time.UTC)}
	r, err := New(testConfig(), store, clk, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	_ = r.Apply(context.Background(), lineCfg("L1", "100", dom, "pw"))
	g := r.wb.generation() // a reload reads the store (empty) here
	p := newPhone("100", "pw", dom)
	if res := p.register(t, r, p.contactHdr("")...); res.StatusCode != 200 {
		t.Fatalf("register: %d", res.StatusCode)
	}
	stale := map[string][]Binding{"L1": {}}
	if left := r.applyStored(stale, g); len(left) != 1 || len(r.Contacts("L1")) != 1 {
		t.Fatalf("queued write: left %v, contacts %+v", left, r.Contacts("L1"))
	}
	flush(t, r)
	if left := r.applyStored(stale, g); len(left) != 1 || len(r.Contacts("L1")) != 1 {
		t.Fatalf("written after the read began: left %v, contacts %+v", left, r.Contacts("L1"))
	}
	if left, err := r.reloadLines(context.Background(), []string{"L1"}); err != nil || len(left) != 0 || len(r.Contacts("L1")) != 1 {
		t.Fatalf("read after the write: left %v (%v), contacts %+v", left, err, r.Contacts("L1"))
	}
	// Another instance removed it: the next read drops it here too.
	_ = store.DeleteLine(context.Background(), "L1")
	if left, err := r.reloadLines(context.Background(), []string{"L1"}); err != nil || len(left) != 0 || len(r.Contacts("L1")) != 0 || r.ActiveContacts() != 0 {
		t.Fatalf("after removal elsewhere: left %v (%v), contacts %+v, active %d", left, err, r.Contacts("L1"), r.ActiveContacts())
	}
}
