package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pbxd/pbxd/internal/app/apptest"
	"github.com/pbxd/pbxd/internal/store/storetest"
	"github.com/pbxd/pbxd/sip/sipptest"
)

// startCluster starts two real pbxd processes on one new database with the
// extra configuration yaml and environment env, and returns them, a
// function starting one more, and a pool on their database.
func startCluster(t *testing.T, yaml string, env ...string) (a, b *pbxdProcess, start func() *pbxdProcess, pool *pgxpool.Pool) {
	t.Helper()
	bin := buildPbxd(t)
	dbURL := storetest.NewDatabase(t)
	cfg := filepath.Join(t.TempDir(), "pbxd.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := pbxdOptions{Env: env, Args: []string{"-config", cfg}}
	start = func() *pbxdProcess { return startPbxdWith(t, bin, dbURL, t.TempDir(), opts) }
	a, b = start(), start()
	pool, err := pgxpool.New(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return a, b, start, pool
}

// metricSum is the sum of the series of a metric on a daemon's /metrics.
func metricSum(t *testing.T, p *pbxdProcess, name string) float64 {
	t.Helper()
	mf := scrapeFamilies(t, p.base)[name]
	if mf == nil {
		t.Fatalf("%s: no metric %s", p.base, name)
	}
	sum := 0.0
	for _, m := range mf.GetMetric() {
		sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
	}
	return sum
}

// Two real pbxd processes on one database, two registrar addresses: a
// phone registered through A is seen by B (its registrar's view and the
// lines view), moves to B keeping one binding, and its binding expires
// exactly once although both instances sweep.
func TestTwoProcessesShareRegistrations(t *testing.T) {
	t.Parallel()
	a, b, _, pool := startCluster(t, "sip:\n  min_expires: 1s\n  sweep_interval: 200ms\n  throttle_failures: 0\n  throttle_source_failures: 0\n",
		"PBXD_TEST_CLOCK=") // the real clock: bindings expire by it
	da, db := &apptest.Daemon{URL: a.base}, &apptest.Daemon{URL: b.base}
	const domain = "cluster.example.net"
	acct := da.CreateAccount(t, map[string]any{"sip_domain": domain})
	da.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 1})
	l := lines(t, db, apptest.OperatorToken, acct)[0]
	var pw struct{ Password string }
	db.Op(t, http.StatusOK, "GET", "/v1/accounts/"+acct+"/lines/"+l.ID+"/password", nil).JSON(t, &pw)
	port := sipptest.FreePort(t)
	contact := fmt.Sprintf("sip:%s@127.0.0.1:%d", l.SIPUsername, port)
	register := func(p *pbxdProcess, expires int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for { // until the line has reached that instance
			res := sipptest.Run(t, p.sipAddress(t), "u1", sipptest.Scenario("register-contact.xml"), domain, l.SIPUsername, pw.Password, port,
				"-key", "contact", contact, "-key", "expires", fmt.Sprint(expires))
			if res.Err == nil {
				return
			}
			if time.Now().After(deadline) {
				res.MustPass(t, "register through "+p.sipAddress(t))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	active := func(p *pbxdProcess, want float64) {
		t.Helper()
		eventually(t, 20*time.Second, fmt.Sprintf("%s holding %v registrations", p.base, want), func() bool {
			return metricSum(t, p, "pbxd_sip_registrations_active") == want
		})
	}
	registered := func(d *apptest.Daemon, want bool) {
		t.Helper()
		eventually(t, 20*time.Second, fmt.Sprintf("lines view on %s registered=%v", d.URL, want), func() bool {
			return lines(t, d, apptest.OperatorToken, acct)[0].Registered == want
		})
	}
	stored := func() int {
		var n int
		if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM sip_bindings WHERE line_id = $1`, l.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	register(a, 3600)
	active(b, 1) // B's registrar follows A's
	registered(db, true)

	register(b, 3600) // the phone moves to B
	active(a, 1)
	active(b, 1)
	if n := stored(); n != 1 {
		t.Fatalf("%d stored bindings after the move, want 1", n)
	}

	register(b, 1) // lapses in a second; both instances sweep
	active(a, 0)
	active(b, 0)
	registered(da, false)
	eventually(t, 20*time.Second, "the stored binding to expire", func() bool { return stored() == 0 })
	time.Sleep(500 * time.Millisecond) // two more sweeps each: none may count it again
	ea, eb := metricSum(t, a, "pbxd_sip_bindings_expired_total"), metricSum(t, b, "pbxd_sip_bindings_expired_total")
	if ea+eb != 1 {
		t.Fatalf("expired on A %v, on B %v: want once in all", ea, eb)
	}
}
