package provisioning_test

import (
	"context"
	"crypto/rand"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxd/pbxd/internal/clock"
	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/storetest"
	"github.com/pbxd/pbxd/pbx"
	"github.com/pbxd/pbxd/pbx/asterisk"
	"github.com/pbxd/pbxd/pbx/asterisk/aritest"
	"github.com/pbxd/pbxd/provisioning"
)

// twoNodes is a provisioning service over two ARI test servers, ast1 and
// ast2, with one account on ast1.
type twoNodes struct {
	// bound is how long a wait may last: generous, and longer with more
	// lines.
	bound time.Duration
	// poll is how often waits look, and moves advance (MoveInterval):
	// each look counts the account's lines.
	poll time.Duration
	pool *pgxpool.Pool
	svc  *provisioning.Service
	reg  *prometheus.Registry
	srv  map[string]*aritest.Server
	acct string
}

const objectPrefix = "pbxd-"

func setupTwoNodes(t *testing.T) *twoNodes {
	t.Helper()
	pool := storetest.NewPool(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	reg := prometheus.NewRegistry()
	svc, err := provisioning.New(provisioning.Options{Subscriptions: billingSubscriptions{}, DB: store.NewDB(pool), Clock: clock.Real{}, SecretKey: key, Logger: slog.New(slog.DiscardHandler), Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	svc.SetNodes([]provisioning.Node{{Name: "ast1", Registrar: "pbx1.example.net"}, {Name: "ast2", Registrar: "pbx2.example.net"}})
	ctx := context.Background()
	if err := svc.SyncCatalog(ctx, []provisioning.Package{{Code: "world", Name: "World", Kind: "package", PriceMinor: 6990, Currency: "EUR",
		Cycles: []provisioning.Cycle{{Cycle: "monthly"}}, DialContext: "pkg-world"}}); err != nil {
		t.Fatal(err)
	}
	acct, err := svc.CreateAccount(ctx, "test", provisioning.NewAccount{Name: "Acme", SIPDomain: "acme.example.net", Currency: "EUR",
		Timezone: "Europe/Paris", PaymentMode: "invoice", SeatPreference: "auto_purchase", ExtFirst: 1000, ExtLast: 99999})
	if err != nil {
		t.Fatal(err)
	}
	if acct.PBXNode != "ast1" {
		t.Fatalf("the first account was placed on %q, want ast1 (both empty: the first node)", acct.PBXNode)
	}
	return &twoNodes{bound: 5 * time.Minute, poll: 20 * time.Millisecond, pool: pool, svc: svc, reg: reg, acct: acct.ID,
		srv: map[string]*aritest.Server{"ast1": aritest.NewTest(t, aritest.Options{}), "ast2": aritest.NewTest(t, aritest.Options{})}}
}

// instance is one pbxd's backend and reconciler over the two nodes.
type instance struct {
	reg    *prometheus.Registry
	rec    *provisioning.Reconciler
	b      *asterisk.Backend
	cancel context.CancelFunc
	done   chan struct{}
}

// start runs a backend and a reconciler, as one pbxd instance does.
func (tn *twoNodes) start(t *testing.T) *instance {
	t.Helper()
	cfg := asterisk.Config{Transport: "transport-udp", RequestTimeout: 5 * time.Second, BackoffMin: 10 * time.Millisecond,
		BackoffMax: 100 * time.Millisecond, HealthInterval: 50 * time.Millisecond}
	for _, name := range []string{"ast1", "ast2"} {
		cfg.Nodes = append(cfg.Nodes, asterisk.NodeConfig{Name: name, URL: tn.srv[name].URL(), Username: "pbxd", Password: "pbxd-secret"})
	}
	reg := prometheus.NewRegistry()
	b, err := asterisk.New(cfg, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	rec := tn.svc.NewReconciler(b, provisioning.ReconcilerOptions{Concurrency: 8, ResyncInterval: time.Hour,
		RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond, MoveInterval: tn.poll,
		Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{reg: reg, rec: rec, b: b, cancel: cancel, done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = b.Run(ctx) }()
	go func() { defer wg.Done(); _ = rec.Run(ctx) }()
	go func() { wg.Wait(); close(in.done) }()
	t.Cleanup(in.stop)
	return in
}

// stop ends the instance as a crash would: nothing is finished first.
func (in *instance) stop() {
	in.cancel()
	<-in.done
}

// held lists the line ids whose auth object the node holds.
func (tn *twoNodes) held(node string) map[string]bool {
	out := map[string]bool{}
	for _, id := range tn.srv[node].ObjectIDs("auth") {
		if line, ok := strings.CutPrefix(id, objectPrefix); ok {
			out[line] = true
		}
	}
	return out
}

// liveLines lists the account's live lines, and which of them have a
// revision applied.
func (tn *twoNodes) liveLines(t *testing.T) (live, applied map[string]bool) {
	t.Helper()
	live, applied, err := tn.readLines()
	if err != nil {
		t.Fatal(err)
	}
	return live, applied
}

func (tn *twoNodes) readLines() (live, applied map[string]bool, err error) {
	rows, err := tn.pool.Query(context.Background(), `SELECT id::text, applied_at IS NOT NULL FROM lines WHERE account_id = $1 AND state <> 'deleted'`, tn.acct)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	live, applied = map[string]bool{}, map[string]bool{}
	for rows.Next() {
		var id string
		var a bool
		if err := rows.Scan(&id, &a); err != nil {
			return nil, nil, err
		}
		live[id] = true
		if a {
			applied[id] = true
		}
	}
	return live, applied, rows.Err()
}

func (tn *twoNodes) setLines(t *testing.T, qty int) {
	t.Helper()
	pv, err := tn.svc.PreviewChange(t.Context(), tn.acct, provisioning.ChangeRequest{Items: []provisioning.ChangeItem{{Package: "world", Quantity: qty}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tn.svc.ConfirmChange(t.Context(), "test", pv.ID, ""); err != nil {
		t.Fatal(err)
	}
}

// waitUntil waits for cond with a bound generous enough for a loaded
// machine; it never asserts speed.
func waitUntil(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	waitEvery(t, bound, 20*time.Millisecond, what, cond)
}

func waitEvery(t *testing.T, bound, every time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", bound, what)
		}
		time.Sleep(every)
	}
}

// wait waits for cond within tn's bound, looking every tn.poll.
func (tn *twoNodes) wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitEvery(t, tn.bound, tn.poll, what, cond)
}

// waitOn waits until the node holds exactly the account's live lines and
// every line's latest revision is applied (auths come first: holding them
// is not yet holding the lines).
func (tn *twoNodes) waitOn(t *testing.T, node string) {
	t.Helper()
	tn.wait(t, "every live line on "+node, func() bool {
		var pending int
		if err := tn.pool.QueryRow(t.Context(), `SELECT count(*) FROM lines WHERE account_id = $1 AND revision > applied_revision`, tn.acct).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		if pending > 0 {
			return false
		}
		live, _ := tn.liveLines(t)
		held := tn.held(node)
		if len(held) != len(live) {
			return false
		}
		for id := range live {
			if !held[id] {
				return false
			}
		}
		return true
	})
}

func (tn *twoNodes) waitDone(t *testing.T, moveID string) provisioning.Move {
	t.Helper()
	var m provisioning.Move
	start, copied := time.Now(), time.Duration(0)
	tn.wait(t, "the move to be done", func() bool {
		var err error
		m, err = tn.svc.GetMove(t.Context(), tn.acct, moveID)
		if err != nil {
			t.Fatal(err)
		}
		if m.State != provisioning.MoveCopying && copied == 0 {
			copied = time.Since(start)
		}
		return m.State == provisioning.MoveDone
	})
	t.Logf("copy seen done after %s, removal after %s more", copied.Round(time.Millisecond), (time.Since(start) - copied).Round(time.Millisecond))
	return m
}

// checkFinal asserts the end state of a move to ast2: every live line on
// ast2 with its current config, nothing of the account left on ast1.
func (tn *twoNodes) checkFinal(t *testing.T) {
	t.Helper()
	live, _ := tn.liveLines(t)
	on1, on2 := tn.held("ast1"), tn.held("ast2")
	if len(on1) != 0 {
		t.Errorf("%d lines left on ast1 after the move", len(on1))
	}
	for id := range live {
		if !on2[id] {
			t.Errorf("live line %s is not on ast2", id)
		}
	}
	for id := range on2 {
		if !live[id] {
			t.Errorf("ast2 holds line %s, which is not live", id)
		}
	}
	if len(live) != len(on2) {
		t.Errorf("%d live lines, %d on ast2", len(live), len(on2))
	}
}

// A move of 1,000 lines while lines are added, removed and changed: no
// line is ever on neither node, and at the end every live line is on the
// new node only, the phone files name the new node's registrar.
func TestMoveUnderConcurrentChanges(t *testing.T) {
	n := 1000
	if v := os.Getenv("PBXD_TEST_MOVE_LINES"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	tn := setupTwoNodes(t)
	tn.bound = time.Duration(max(1, n/1000)) * 5 * time.Minute
	tn.poll = time.Duration(max(1, n/1000)) * 20 * time.Millisecond
	tn.start(t)
	pushed := time.Now()
	tn.setLines(t, n)
	tn.waitOn(t, "ast1")
	t.Logf("pushed %d new lines to ast1 in %s", n, time.Since(pushed).Round(time.Millisecond))
	if reg, err := tn.svc.PhoneRegistrar(t.Context(), tn.acct); err != nil || reg != "pbx1.example.net" {
		t.Fatalf("phone registrar before the move = %q, %v; want pbx1.example.net", reg, err)
	}

	// Never on neither node: a line live and applied before a look at both
	// nodes, and still live after it, is on one of them.
	// Each look copies every id under the test servers' lock: fewer of
	// them with more lines, so the figure measures the move.
	every := time.Duration(max(1, n/1000)) * 30 * time.Millisecond
	quiet := os.Getenv("PBXD_TEST_MOVE_QUIET") != "" // by hand: the move alone, for its time
	if quiet {
		every = time.Hour
	}
	stopWatch := make(chan struct{})
	watchDone := make(chan struct{})
	var lost []string
	go func() {
		defer close(watchDone)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(every):
			}
			_, before, err1 := tn.readLines()
			on1, on2 := tn.held("ast1"), tn.held("ast2")
			after, _, err2 := tn.readLines()
			if err1 != nil || err2 != nil {
				continue
			}
			for id := range before {
				if after[id] && !on1[id] && !on2[id] {
					lost = append(lost, id)
				}
			}
		}
	}()

	start := time.Now()
	m, err := tn.svc.StartMove(t.Context(), "test", tn.acct, "ast2")
	if err != nil {
		t.Fatal(err)
	}
	if m.State != provisioning.MoveCopying || m.From != "ast1" || m.To != "ast2" || m.LinesTotal != n {
		t.Fatalf("started move = %+v", m)
	}
	// Concurrent changes while the move runs: more lines, fewer lines,
	// a password reset.
	qty := n
	changes := 6
	if quiet {
		changes = 0
	}
	for i := range changes {
		if i%2 == 0 { // within the 10,000 seats a package allows
			qty -= 25
		} else {
			qty += 15
		}
		tn.setLines(t, qty)
		lines, err := tn.svc.Lines(t.Context(), tn.acct)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tn.svc.ResetPassword(t.Context(), "test", tn.acct, lines[i].ID); err != nil {
			t.Fatal(err)
		}
	}
	m = tn.waitDone(t, m.ID)
	took := time.Since(start)
	close(stopWatch)
	<-watchDone
	if len(lost) > 0 {
		t.Errorf("%d lines were on neither node during the move (first %s)", len(lost), lost[0])
	}
	tn.checkFinal(t)
	// Every line's current config, password included, is on ast2 (a
	// sample of 1,000 with more lines).
	lines, err := tn.svc.Lines(t.Context(), tn.acct)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(lines); i += max(1, len(lines)/1000) {
		l := lines[i]
		pw, err := tn.svc.RevealPassword(t.Context(), "test", tn.acct, l.ID)
		if err != nil {
			t.Fatal(err)
		}
		auth, ok := tn.srv["ast2"].Object("auth", objectPrefix+l.ID)
		if !ok || auth["password"] != pw || auth["username"] != l.SIPUsername {
			t.Errorf("line %s: auth on ast2 missing or stale", l.ID)
		}
		if ep, ok := tn.srv["ast2"].Object("endpoint", l.SIPUsername+"@acme.example.net"); !ok || ep["auth"] != objectPrefix+l.ID {
			t.Errorf("line %s: endpoint on ast2 missing or not the line's", l.ID)
		}
	}
	if m.LinesTotal != qty || m.LinesDone != qty || m.LinesRemoved < n {
		t.Errorf("done move = %+v, want %d lines total and done, at least %d removed", m, qty, n)
	}
	if reg, err := tn.svc.PhoneRegistrar(t.Context(), tn.acct); err != nil || reg != "pbx2.example.net" {
		t.Errorf("phone registrar after the move = %q, %v; want pbx2.example.net", reg, err)
	}
	if got := counter(t, tn.reg, "pbxd_account_moves_total", "done"); got != 1 {
		t.Errorf("pbxd_account_moves_total{state=done} = %v, want 1", got)
	}
	t.Logf("moved %d lines (%d at the end) from ast1 to ast2 in %s", n, qty, took.Round(time.Millisecond))
}

// A move interrupted twice, once while copying and once while removing,
// resumes in a new instance (nothing in memory survives) and ends with
// every line on the new node only. A copy left behind on the old node
// after the move is removed by the next full resync.
func TestMoveResumesAfterACrash(t *testing.T) {
	const n = 400
	tn := setupTwoNodes(t)
	first := tn.start(t)
	tn.setLines(t, n)
	tn.waitOn(t, "ast1")
	// Slow ast2 down so the crash lands in the middle of the copy.
	tn.srv["ast2"].SetLatency(5 * time.Millisecond)
	m, err := tn.svc.StartMove(t.Context(), "test", tn.acct, "ast2")
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 3*time.Minute, "part of the copy", func() bool { return len(tn.held("ast2")) >= n/4 })
	first.stop()
	mid, err := tn.svc.GetMove(t.Context(), tn.acct, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if mid.State != provisioning.MoveCopying || mid.LinesDone >= n {
		t.Fatalf("after the first crash the move is %+v; want it copying, not every line done", mid)
	}
	if got := len(tn.held("ast1")); got != n {
		t.Fatalf("ast1 holds %d lines mid-copy, want all %d (removal waits for the copy)", got, n)
	}

	// Second instance: finishes the copy; crash it in the removal.
	tn.srv["ast2"].SetLatency(0)
	tn.srv["ast1"].SetLatency(5 * time.Millisecond)
	second := tn.start(t)
	waitUntil(t, 3*time.Minute, "part of the removal", func() bool {
		mv, err := tn.svc.GetMove(t.Context(), tn.acct, m.ID)
		return err == nil && mv.State == provisioning.MoveRemoving && len(tn.held("ast1")) < n
	})
	second.stop()
	mv, err := tn.svc.GetMove(t.Context(), tn.acct, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if mv.State == provisioning.MoveDone {
		t.Log("the second crash came after the removal ended")
	}
	// Third instance: resumes the removal and ends the move.
	tn.srv["ast1"].SetLatency(0)
	third := tn.start(t)
	tn.waitDone(t, m.ID)
	tn.checkFinal(t)
	// A resync that started before the move ended may count the copies
	// the move was removing meanwhile; one that starts after it counts
	// nothing: settle on one.
	if err := third.rec.Resync(t.Context()); err != nil {
		t.Fatal(err)
	}
	before := counter(t, third.reg, "pbxd_reconcile_drift_repaired_total", "misplaced")

	// A late copy on ast1 (an apply that landed after the removal) is not
	// left there: the next resync removes it.
	lines, err := tn.svc.Lines(t.Context(), tn.acct)
	if err != nil {
		t.Fatal(err)
	}
	if err := third.b.Apply(t.Context(), pbx.LineConfig{ID: lines[0].ID, Node: "ast1", Domain: "acme.example.net",
		Username: lines[0].SIPUsername, Extension: strconv.Itoa(lines[0].Extension), Context: "pkg-world", Password: "late-copy-secret1", MaxContacts: 1}); err != nil {
		t.Fatal(err)
	}
	if !tn.held("ast1")[lines[0].ID] {
		t.Fatal("the late copy did not reach ast1")
	}
	if err := third.rec.Resync(t.Context()); err != nil {
		t.Fatal(err)
	}
	tn.checkFinal(t)
	if got := counter(t, third.reg, "pbxd_reconcile_drift_repaired_total", "misplaced") - before; got != 1 {
		t.Errorf("misplaced drift = %v, want 1", got)
	}
}

// Refusals name the field and change nothing.
func TestMoveRefusals(t *testing.T) {
	tn := setupTwoNodes(t)
	for _, tc := range []struct {
		node, field string
		kind        fault.Kind
	}{
		{"", "node", fault.Invalid},
		{"ast9", "node", fault.Invalid},
		{"ast1", "node", fault.Invalid}, // already there
	} {
		_, err := tn.svc.StartMove(t.Context(), "test", tn.acct, tc.node)
		f, ok := fault.As(err)
		if !ok || f.Field != tc.field || f.Kind != tc.kind {
			t.Errorf("move to %q: %v, want a %v fault on %s", tc.node, err, tc.kind, tc.field)
		}
	}
	if _, err := tn.svc.StartMove(t.Context(), "test", tn.acct, "ast2"); err != nil {
		t.Fatal(err)
	}
	_, err := tn.svc.StartMove(t.Context(), "test", tn.acct, "ast1")
	f, ok := fault.As(err)
	if !ok || f.Field != "node" || f.Kind != fault.Conflict {
		t.Errorf("a second move while one runs: %v, want a conflict on node", err)
	}
	acct, err := tn.svc.Account(t.Context(), tn.acct)
	if err != nil || acct.PBXNode != "ast2" {
		t.Errorf("account node = %q, %v; want ast2 (the first move's)", acct.PBXNode, err)
	}
	// Capacity: a node without room for the account refuses the move.
	tn.svc.SetNodes([]provisioning.Node{{Name: "ast1", Capacity: 1}, {Name: "ast2"}, {Name: "ast3", Capacity: 5}})
	tn2 := tn.svc
	other, err := tn2.CreateAccount(t.Context(), "test", provisioning.NewAccount{Name: "Beta", SIPDomain: "beta.example.net", Currency: "EUR",
		Timezone: "Europe/Paris", PaymentMode: "invoice", SeatPreference: "auto_purchase", ExtFirst: 100, ExtLast: 999, PBXNode: "ast2"})
	if err != nil {
		t.Fatal(err)
	}
	pv, err := tn.svc.PreviewChange(t.Context(), other.ID, provisioning.ChangeRequest{Items: []provisioning.ChangeItem{{Package: "world", Quantity: 6}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tn.svc.ConfirmChange(t.Context(), "test", pv.ID, ""); err != nil {
		t.Fatal(err)
	}
	_, err = tn.svc.StartMove(t.Context(), "test", other.ID, "ast3")
	if f, ok := fault.As(err); !ok || f.Field != "node" || f.Kind != fault.Conflict {
		t.Errorf("a move over capacity: %v, want a conflict on node", err)
	}
}

// Accounts created without a node are placed by capacity and weight; a
// named node must be a configured one.
func TestPlacementAtCreation(t *testing.T) {
	tn := setupTwoNodes(t) // Acme on ast1, no lines
	tn.svc.SetNodes([]provisioning.Node{{Name: "ast1"}, {Name: "ast2", Weight: 2}, {Name: "ast3", Capacity: 1}})
	tn.setLines(t, 10) // ast1: 10 lines
	create := func(domain, node string) (provisioning.Account, error) {
		return tn.svc.CreateAccount(t.Context(), "test", provisioning.NewAccount{Name: domain, SIPDomain: domain, Currency: "EUR",
			Timezone: "Europe/Paris", PaymentMode: "invoice", SeatPreference: "auto_purchase", ExtFirst: 100, ExtLast: 999, PBXNode: node})
	}
	// ast2 and ast3 are empty: ast2 comes first in the config.
	a, err := create("b.example.net", "")
	if err != nil || a.PBXNode != "ast2" {
		t.Fatalf("placed on %q, %v; want ast2", a.PBXNode, err)
	}
	// ast2 has an account, ast3 none: ast3 (accounts per weight 1/2 vs 0).
	a, err = create("c.example.net", "")
	if err != nil || a.PBXNode != "ast3" {
		t.Fatalf("placed on %q, %v; want ast3", a.PBXNode, err)
	}
	if _, err := create("d.example.net", "ast9"); err == nil {
		t.Fatal("an unknown node was accepted")
	} else if f, ok := fault.As(err); !ok || f.Field != "pbx_node" || f.Kind != fault.Invalid {
		t.Fatalf("unknown node: %v, want invalid pbx_node", err)
	}
	loads, err := tn.svc.NodeLoads(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []provisioning.NodeLoad{{Node: "ast1", Lines: 10, Accounts: 1, Weight: 1}, {Node: "ast2", Accounts: 1, Weight: 2}, {Node: "ast3", Accounts: 1, Capacity: 1, Weight: 1}}
	for i := range want {
		if loads[i] != want[i] {
			t.Errorf("load %d = %+v, want %+v", i, loads[i], want[i])
		}
	}
}

// A number routed to a line of a moving account is routed on the new node
// when the move is done and no longer on the old one; at no moment of the
// move is it routed on neither.
func TestMoveCarriesNumberRoutes(t *testing.T) {
	tn := setupTwoNodes(t)
	ctx := t.Context()
	if err := tn.svc.SyncCatalog(ctx, []provisioning.Package{
		{Code: "world", Name: "World", Kind: "package", PriceMinor: 6990, Currency: "EUR", Cycles: []provisioning.Cycle{{Cycle: "monthly"}}, DialContext: "pkg-world"},
		{Code: "did", Name: "Number", Kind: "addon", PriceMinor: 300, Currency: "EUR", Cycles: []provisioning.Cycle{{Cycle: "monthly"}}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := tn.svc.ImportNumbers(ctx, "test", provisioning.NumberImport{Country: "FR", Kind: "local", Addon: "did",
		Numbers: []string{"+33142000001"}}); err != nil {
		t.Fatal(err)
	}
	tn.setLines(t, 50)
	pv, err := tn.svc.PreviewChange(ctx, tn.acct, provisioning.ChangeRequest{Items: []provisioning.ChangeItem{},
		Numbers: []provisioning.NumberOrder{{Number: "+33142000001"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tn.svc.ConfirmChange(ctx, "test", pv.ID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := tn.svc.AssignNumber(ctx, "test", tn.acct, "+33142000001", "", false); err != nil {
		t.Fatal(err)
	}
	tn.start(t)
	const global, target = "PBXD_DID_33142000001", "1000@acme.example.net"
	routed := func(node string) bool { v, ok := tn.srv[node].Global(global); return ok && v == target }
	waitUntil(t, tn.bound, "the route on ast1", func() bool { return routed("ast1") })

	stop, watched := make(chan struct{}), make(chan int)
	go func() {
		gaps := 0
		defer func() { watched <- gaps }()
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if !routed("ast1") && !routed("ast2") {
				gaps++
			}
		}
	}()
	tn.srv["ast2"].SetLatency(2 * time.Millisecond)
	m, err := tn.svc.StartMove(ctx, "test", tn.acct, "ast2")
	if err != nil {
		t.Fatal(err)
	}
	tn.waitDone(t, m.ID)
	close(stop)
	if gaps := <-watched; gaps > 0 {
		t.Errorf("the number was routed on neither node in %d samples", gaps)
	}
	if !routed("ast2") || routed("ast1") {
		t.Errorf("after the move: routed on ast1 %v, on ast2 %v; want only ast2", routed("ast1"), routed("ast2"))
	}
	tn.checkFinal(t)
}
