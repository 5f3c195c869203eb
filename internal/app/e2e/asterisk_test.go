package e2e

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxd/pbxd/internal/app/apptest"
	"github.com/pbxd/pbxd/internal/config"
	"github.com/pbxd/pbxd/pbx/asterisk"
	"github.com/pbxd/pbxd/pbx/asterisk/aritest"
	"github.com/pbxd/pbxd/pbx/pbxtest"
)

// startAsterisk runs a daemon with the asterisk backend on one node, the
// ARI test server srv.
func startAsterisk(t *testing.T, srv *aritest.Server) *apptest.Daemon {
	t.Helper()
	return apptest.Start(t, func(c *config.Config) {
		c.Backend = "asterisk"
		c.Asterisk.Nodes = []config.AsteriskNode{{Name: "a1", URL: srv.URL(), Username: srv.Username(), Password: srv.Password(), App: "pbxd"}}
		c.Asterisk.RequestTimeout = config.Duration(2 * time.Second)
	})
}

// eventually retries cond every 20ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pendingLines counts the account's lines not yet applied to the PBX.
func pendingLines(t *testing.T, d *apptest.Daemon, account string) int {
	t.Helper()
	var n int
	if err := d.App.Pool().QueryRow(t.Context(), `SELECT count(*) FROM lines WHERE account_id = $1 AND revision > applied_revision`, account).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func waitApplied(t *testing.T, d *apptest.Daemon, account string) {
	t.Helper()
	eventually(t, 90*time.Second, "every line applied", func() bool { return pendingLines(t, d, account) == 0 })
}

// dialContext is the package's PBX context from the catalog.
func dialContext(t *testing.T, d *apptest.Daemon, pkg string) string {
	t.Helper()
	var ctx string
	if err := d.App.Pool().QueryRow(t.Context(), `SELECT dial_context FROM packages WHERE code = $1`, pkg).Scan(&ctx); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// lineObjects lists the PBX's objects of typ but the AOR queue probe,
// which pbxd keeps on a node during big pushes (pbx/asterisk/probe.go).
func lineObjects(srv *aritest.Server, typ string) []string {
	return slices.DeleteFunc(srv.ObjectIDs(typ), func(id string) bool { return strings.HasSuffix(id, "queue-probe") })
}

func epName(l lineView) string { return l.SIPUsername + "@" + l.SIPDomain }

// A change order reaches Asterisk: each line's endpoint, aor and auth hold
// the right fields. A suspension swaps the endpoint's auth for an unusable
// one; a decrease removes all three objects.
func TestAsteriskChangeOrderSuspensionRemoval(t *testing.T) {
	t.Parallel()
	srv := aritest.NewTest(t, aritest.Options{})
	d := startAsterisk(t, srv)
	domain := "acme.voip.example.net"
	acct := d.CreateAccount(t, map[string]any{"sip_domain": domain})
	d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 2}, map[string]any{"package": "world", "quantity": 1})
	waitApplied(t, d, acct)

	ls := lines(t, d, apptest.OperatorToken, acct)
	if len(ls) != 3 {
		t.Fatalf("%d lines", len(ls))
	}
	for _, l := range ls {
		var pw struct{ Password string }
		d.Op(t, http.StatusOK, "GET", "/v1/accounts/"+acct+"/lines/"+l.ID+"/password", nil).JSON(t, &pw)
		authID := "pbxd-" + l.ID
		ep, ok := srv.Object("endpoint", epName(l))
		if !ok {
			t.Fatalf("no endpoint %s", epName(l))
		}
		want := map[string]string{"auth": authID, "aors": epName(l), "context": dialContext(t, d, l.Package),
			"accountcode": authID, "from_domain": domain}
		for k, v := range want {
			if ep[k] != v {
				t.Errorf("endpoint %s: %s = %q, want %q", epName(l), k, ep[k], v)
			}
		}
		if !strings.HasSuffix(ep["callerid"], fmt.Sprintf("<%d>", l.Extension)) {
			t.Errorf("endpoint callerid = %q", ep["callerid"])
		}
		auth, ok := srv.Object("auth", authID)
		if !ok || auth["username"] != l.SIPUsername || auth["realm"] != domain || auth["password"] != pw.Password {
			t.Errorf("auth %s wrong or missing", authID)
		}
		if aor, ok := srv.Object("aor", epName(l)); !ok || aor["max_contacts"] != fmt.Sprint(d.Config.SIP.MaxContacts) {
			t.Errorf("aor %s = %v", epName(l), aor)
		}
	}

	// Suspension (billing's dunning does this through the same columns).
	victim := ls[0]
	if _, err := d.App.Pool().Exec(t.Context(), `UPDATE lines SET state='suspended', revision=revision+1, changed_at=now() WHERE id=$1`, victim.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.App.Pool().Exec(t.Context(), `SELECT pg_notify('pbxd_lines','')`); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "suspended auth on the endpoint", func() bool {
		ep, _ := srv.Object("endpoint", epName(victim))
		return ep["auth"] == "pbxd-"+victim.ID+"-suspended"
	})
	if sa, ok := srv.Object("auth", "pbxd-"+victim.ID+"-suspended"); !ok || len(sa["password"]) < 32 {
		t.Error("suspended auth missing or weak")
	}

	// Removal: fr-fixed-mobile 2 → 1.
	res := d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 1}, map[string]any{"package": "world", "quantity": 1})
	removed, _ := res["lines_removed"].([]any)
	if len(removed) != 1 {
		t.Fatalf("lines_removed = %v", res["lines_removed"])
	}
	waitApplied(t, d, acct)
	var gone lineView
	for _, l := range ls {
		if strings.Contains(fmt.Sprint(removed[0]), l.ID) {
			gone = l
		}
	}
	if gone.ID == "" {
		t.Fatalf("removed line %v not among %v", removed[0], ls)
	}
	for _, o := range [][2]string{{"endpoint", epName(gone)}, {"aor", epName(gone)}, {"auth", "pbxd-" + gone.ID}, {"auth", "pbxd-" + gone.ID + "-suspended"}} {
		if _, ok := srv.Object(o[0], o[1]); ok {
			t.Errorf("%s %s still on the PBX after removal", o[0], o[1])
		}
	}
	if n := len(srv.ObjectIDs("endpoint")); n != 2 {
		t.Errorf("%d endpoints left, want 2", n)
	}
}

// The ARI server restarts (memory wizard: it forgets everything) in the
// middle of a 1,000-line sync: everything converges, nothing is lost and
// nothing duplicated.
func TestAsteriskRestartDuringLargeSync(t *testing.T) {
	t.Parallel()
	srv := aritest.NewTest(t, aritest.Options{Wizard: aritest.Memory})
	d := startAsterisk(t, srv)
	domain := "big.voip.example.net"
	acct := d.CreateAccount(t, map[string]any{"sip_domain": domain, "extension_range": map[string]int{"first": 1000, "last": 2999}})
	eventually(t, 10*time.Second, "backend connected", d.App.Backend().Connected)
	d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 1000})
	eventually(t, 30*time.Second, "sync under way", func() bool { return len(srv.ObjectIDs("endpoint")) >= 150 })
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.ObjectIDs("endpoint")); n >= 1000 {
		t.Fatalf("%d endpoints right after the restart: the restart came too late to test anything", n)
	}
	waitApplied(t, d, acct)
	ls := lines(t, d, apptest.OperatorToken, acct)
	if len(ls) != 1000 {
		t.Fatalf("%d lines in the database", len(ls))
	}
	var wantEP, wantAuth []string
	for _, l := range ls {
		wantEP = append(wantEP, epName(l))
		wantAuth = append(wantAuth, "pbxd-"+l.ID)
	}
	slices.Sort(wantEP)
	slices.Sort(wantAuth)
	eventually(t, 60*time.Second, "the PBX holds exactly the 1,000 lines", func() bool {
		return slices.Equal(lineObjects(srv, "endpoint"), wantEP) && slices.Equal(lineObjects(srv, "aor"), wantEP) &&
			slices.Equal(lineObjects(srv, "auth"), wantAuth)
	})
	// And a full resync finds nothing left to repair. Under heavy load a
	// resync's reads can time out; that is retried, as the reconciler does.
	eventually(t, 120*time.Second, "a full resync completes", func() bool {
		err := d.App.Reconciler().Resync(t.Context())
		if err != nil {
			t.Logf("resync: %v", err)
		}
		return err == nil
	})
	if !slices.Equal(srv.ObjectIDs("endpoint"), wantEP) || !slices.Equal(srv.ObjectIDs("auth"), wantAuth) {
		t.Error("a resync after convergence changed the object set")
	}
}

// Drift behind pbxd's back is repaired by the reconciler's resync: a
// deleted endpoint comes back, an altered one is restored, an orphan pbxd
// owns is removed, and hand-made objects are left alone.
func TestAsteriskDriftRepair(t *testing.T) {
	t.Parallel()
	srv := aritest.NewTest(t, aritest.Options{})
	d := startAsterisk(t, srv)
	domain := "drift.voip.example.net"
	acct := d.CreateAccount(t, map[string]any{"sip_domain": domain})
	d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 3})
	waitApplied(t, d, acct)
	ls := lines(t, d, apptest.OperatorToken, acct)
	ctxName := dialContext(t, d, "fr-fixed-mobile")

	// Behind pbxd's back.
	srv.Forget("endpoint", epName(ls[0]))
	srv.Forget("auth", "pbxd-"+ls[1].ID)
	if err := srv.Tamper("endpoint", epName(ls[2]), "context", "free-international"); err != nil {
		t.Fatal(err)
	}
	// An orphan pbxd owns (a line unknown to the database), pushed by a
	// pbxd using the same prefix.
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := asterisk.Config{Nodes: []asterisk.NodeConfig{{Name: "a1", URL: srv.URL(), Username: srv.Username(), Password: srv.Password()}}}
	ours, err := asterisk.New(cfg, logger, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	orphan := pbxtest.NewLine()
	if err := ours.Apply(t.Context(), orphan); err != nil {
		t.Fatal(err)
	}
	// Hand-made objects: one from pjsip.conf, one pushed by another tool
	// (another prefix, so not pbxd's), one named like a line of the account.
	if err := srv.Seed("endpoint", "reception", map[string]string{"context": "default"}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Seed("endpoint", "999@"+domain, map[string]string{"context": "lab", "auth": "lab-auth"}); err != nil {
		t.Fatal(err)
	}
	cfg.ObjectPrefix = "other-"
	foreignB, err := asterisk.New(cfg, logger, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	foreign := pbxtest.NewLine()
	if err := foreignB.Apply(t.Context(), foreign); err != nil {
		t.Fatal(err)
	}
	foreignName := foreign.Username + "@" + foreign.Domain

	if err := d.App.Reconciler().Resync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if ep, ok := srv.Object("endpoint", epName(ls[0])); !ok || ep["context"] != ctxName {
		t.Errorf("deleted endpoint not restored: %v", ep)
	}
	var pw struct{ Password string }
	d.Op(t, http.StatusOK, "GET", "/v1/accounts/"+acct+"/lines/"+ls[1].ID+"/password", nil).JSON(t, &pw)
	if a, ok := srv.Object("auth", "pbxd-"+ls[1].ID); !ok || a["password"] != pw.Password {
		t.Error("deleted auth not restored")
	}
	if ep, _ := srv.Object("endpoint", epName(ls[2])); ep["context"] != ctxName {
		t.Errorf("altered context = %q, want %q", ep["context"], ctxName)
	}
	orphanName := orphan.Username + "@" + orphan.Domain
	for _, o := range [][2]string{{"endpoint", orphanName}, {"aor", orphanName}, {"auth", "pbxd-" + orphan.ID}} {
		if _, ok := srv.Object(o[0], o[1]); ok {
			t.Errorf("orphan %s %s not removed", o[0], o[1])
		}
	}
	for _, o := range [][2]string{{"endpoint", "reception"}, {"endpoint", "999@" + domain}, {"endpoint", foreignName},
		{"aor", foreignName}, {"auth", "other-" + foreign.ID}} {
		if _, ok := srv.Object(o[0], o[1]); !ok {
			t.Errorf("hand-made %s %s was removed", o[0], o[1])
		}
	}
	if v := metric(t, d.Registry, "pbxd_reconcile_drift_repaired_total", map[string]string{"kind": "orphan"}); v < 1 {
		t.Errorf("orphan repairs counted %v", v)
	}
}

// Registration events from Asterisk reach the lines view.
func TestAsteriskRegistrationReachesLinesView(t *testing.T) {
	t.Parallel()
	srv := aritest.NewTest(t, aritest.Options{})
	d := startAsterisk(t, srv)
	acct := d.CreateAccount(t, map[string]any{"sip_domain": "reg.voip.example.net"})
	d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 2})
	waitApplied(t, d, acct)
	ls := lines(t, d, apptest.OperatorToken, acct)
	registered := func(id string) bool {
		for _, l := range lines(t, d, apptest.OperatorToken, acct) {
			if l.ID == id {
				return l.Registered
			}
		}
		return false
	}
	// Event types pbxd does not use are ignored on the way.
	srv.SendEvent(map[string]any{"type": "ApplicationRegistered"})
	srv.SendEvent(map[string]any{"type": "ChannelTransfer"})
	uri := "sip:" + ls[0].SIPUsername + "@192.0.2.10:5062"
	if err := srv.RegisterContact(epName(ls[0]), uri); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "line registered in the view", func() bool { return registered(ls[0].ID) })
	if registered(ls[1].ID) {
		t.Error("the other line shows registered")
	}
	if err := srv.UnregisterContact(epName(ls[0]), uri); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "line unregistered in the view", func() bool { return !registered(ls[0].ID) })
}

// /readyz and pbxd_pbx_backend_connected follow the ARI server going
// down and coming back; the lines come back after the restart.
func TestAsteriskReadinessFollowsConnection(t *testing.T) {
	t.Parallel()
	srv := aritest.NewTest(t, aritest.Options{})
	d := startAsterisk(t, srv)
	acct := d.CreateAccount(t, map[string]any{"sip_domain": "ready.voip.example.net"})
	d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 1})
	waitApplied(t, d, acct)
	ready := func() int { return d.Call(t, "", "GET", "/readyz", nil).Status }
	connected := func() float64 {
		return metric(t, d.Registry, "pbxd_pbx_backend_connected", map[string]string{"node": "a1"})
	}
	eventually(t, 10*time.Second, "ready", func() bool { return ready() == http.StatusOK && connected() == 1 })

	srv.Stop()
	eventually(t, 10*time.Second, "not ready while ARI is down", func() bool {
		return ready() == http.StatusServiceUnavailable && connected() == 0
	})
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 40*time.Second, "ready again", func() bool { return ready() == http.StatusOK && connected() == 1 })
	// The memory wizard forgot the line; the resync after the reconnect
	// pushes it again.
	eventually(t, 20*time.Second, "line pushed again", func() bool { return len(srv.ObjectIDs("endpoint")) == 1 })
}
