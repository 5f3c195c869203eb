package sippg_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxd/pbxd/internal/store/storetest"
	"github.com/pbxd/pbxd/pbx"
	"github.com/pbxd/pbxd/sip"
	"github.com/pbxd/pbxd/sip/sippg"
	"github.com/pbxd/pbxd/sip/sipptest"
)

// clock is a settable sip.Clock shared by the registrars of a test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// instance is one registrar of a shared test: what a pbxd instance runs.
type instance struct {
	r    *sip.Registrar
	reg  *prometheus.Registry
	stop func() // stops it (once; the test's cleanup does it otherwise)
}

func startShared(t *testing.T, s sip.BindingStore, clk sip.Clock, mod func(*sip.Config)) instance {
	t.Helper()
	cfg := sip.DefaultConfig()
	cfg.UDPListen, cfg.TCPListen = "127.0.0.1:0", ""
	cfg.Secret = []byte("0123456789abcdef")
	cfg.SweepInterval = time.Hour // the test sweeps by hand
	if mod != nil {
		mod(&cfg)
	}
	reg := prometheus.NewRegistry()
	r, err := sip.New(cfg, s, clk, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	go func() {
		for range r.Events() {
		}
	}()
	for !r.Connected() {
		time.Sleep(5 * time.Millisecond)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	return instance{r, reg, stop}
}

// waitContacts waits until r holds the line's bindings as ok accepts them.
func waitContacts(t *testing.T, r *sip.Registrar, what string, ok func([]sip.Binding) bool) []sip.Binding {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := r.Contacts(lineID)
		if ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: bindings %+v", what, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func storedRows(t *testing.T, s *sippg.Store) []sip.Binding {
	t.Helper()
	bs, err := s.LoadBindings(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return bs
}

// Two registrars on one database, as two pbxd instances: a phone
// registered through A is seen by B, moving to B keeps one binding (seen
// by A), and the binding expires once although both sweep at once.
func TestTwoRegistrarsShareBindings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := storetest.NewPool(t)
	clk := &clock{t: time.Now().Truncate(time.Second)}
	a := startShared(t, sippg.New(pool), clk, nil)
	b := startShared(t, sippg.New(pool), clk, nil)
	const domain, user, pw = "shared.example.net", "401", "pw-401"
	lc := lineConfig(domain, user, pw)
	for _, r := range []*sip.Registrar{a.r, b.r} {
		if err := r.Apply(ctx, lc); err != nil {
			t.Fatal(err)
		}
	}
	port := sipptest.FreePort(t)
	sipptest.Run(t, a.r.Addrs().UDP, "u1", sipptest.Scenario("register.xml"), domain, user, pw, port).MustPass(t, "register through A")
	onA := a.r.Contacts(lineID)
	if len(onA) != 1 {
		t.Fatalf("A holds %+v", onA)
	}
	onB := waitContacts(t, b.r, "B follows A", func(bs []sip.Binding) bool { return len(bs) == 1 && bs[0].CallID == onA[0].CallID })
	if onB[0].ContactURI != onA[0].ContactURI || !onB[0].ExpiresAt.Equal(onA[0].ExpiresAt.Truncate(time.Microsecond)) {
		t.Fatalf("B holds %+v, A %+v", onB, onA)
	}

	// The phone moves to B (same contact, a new Call-ID): one binding.
	sipptest.Run(t, b.r.Addrs().UDP, "u1", sipptest.Scenario("register.xml"), domain, user, pw, port).MustPass(t, "register through B")
	moved := b.r.Contacts(lineID)
	if len(moved) != 1 || moved[0].CallID == onA[0].CallID || moved[0].ContactURI != onA[0].ContactURI {
		t.Fatalf("B after the move holds %+v", moved)
	}
	waitContacts(t, a.r, "A follows the move", func(bs []sip.Binding) bool { return len(bs) == 1 && bs[0].CallID == moved[0].CallID })
	s := sippg.New(pool)
	deadline := time.Now().Add(15 * time.Second)
	for rows := storedRows(t, s); len(rows) != 1 || rows[0].CallID != moved[0].CallID; rows = storedRows(t, s) {
		if time.Now().After(deadline) {
			t.Fatalf("stored after the move: %+v", rows)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if a.r.ActiveContacts() != 1 || b.r.ActiveContacts() != 1 {
		t.Fatalf("active contacts A %d B %d, want 1 each", a.r.ActiveContacts(), b.r.ActiveContacts())
	}

	// Expiry: both sweep at once; exactly one expires the binding.
	clk.Advance(time.Hour + time.Second)
	var wg sync.WaitGroup
	var na, nb int
	wg.Go(func() { na = a.r.Sweep() })
	wg.Go(func() { nb = b.r.Sweep() })
	wg.Wait()
	ea := metricValue(t, a.reg, "pbxd_sip_bindings_expired_total")
	eb := metricValue(t, b.reg, "pbxd_sip_bindings_expired_total")
	if na+nb != 1 || ea+eb != 1 {
		t.Fatalf("expired by A %d, by B %d (metrics %v + %v), want 1 in all", na, nb, ea, eb)
	}
	if a.r.ActiveContacts() != 0 || b.r.ActiveContacts() != 0 || len(storedRows(t, s)) != 0 {
		t.Fatalf("after expiry: A %d, B %d, stored %d", a.r.ActiveContacts(), b.r.ActiveContacts(), len(storedRows(t, s)))
	}
}

// A change another instance made but whose notification was lost (here:
// written straight into the table) reaches memory at the periodic reload;
// a binding deleted behind its back leaves memory the same way.
func TestReloadRepairsLostNotifications(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := storetest.NewPool(t)
	a := startShared(t, sippg.New(pool), nil, func(c *sip.Config) { c.ReloadInterval = 100 * time.Millisecond })
	if err := a.r.Apply(ctx, lineConfig("reload.example.net", "402", "pw")); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO sip_bindings (line_id, contact_uri, params, source, call_id, cseq, expires_at, updated_at)
		VALUES ($1, 'sip:402@192.0.2.7:5060', ';reg-id=1', 'udp:192.0.2.7:5060', 'lost', 3, now() + interval '1 hour', now())`, lineID); err != nil {
		t.Fatal(err)
	}
	got := waitContacts(t, a.r, "reload finds the row", func(bs []sip.Binding) bool { return len(bs) == 1 })
	if got[0].Params != ";reg-id=1" || got[0].CallID != "lost" || got[0].CSeq != 3 {
		t.Fatalf("reloaded %+v", got[0])
	}
	if _, err := pool.Exec(ctx, `DELETE FROM sip_bindings`); err != nil {
		t.Fatal(err)
	}
	waitContacts(t, a.r, "reload drops the row", func(bs []sip.Binding) bool { return len(bs) == 0 })
	if a.r.ActiveContacts() != 0 {
		t.Fatalf("active contacts %d", a.r.ActiveContacts())
	}
}

func lineConfig(domain, user, pw string) pbx.LineConfig {
	return pbx.LineConfig{ID: lineID, Domain: domain, Username: user, HA1MD5: md5hex(user + ":" + domain + ":" + pw)}
}

// metricValue is the value of the unlabelled counter name in reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}
