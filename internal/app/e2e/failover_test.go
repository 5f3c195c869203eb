package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pbxd/pbxd/internal/app/apptest"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/provdb"
	"github.com/pbxd/pbxd/internal/store/storetest"
)

// failoverSubs is how many subscriptions each renewal run of the failover
// test renews. By hand, at the size and the default interval:
//
//	PBXD_FAILOVER_SUBS=100000 PBXD_FAILOVER_AT=50000 PBXD_FAILOVER_CHECK=10s \
//	  go test ./internal/app/e2e -run TestLeaderFailoverWithRealProcesses -v -timeout 30m
func failoverSubs() int {
	if n, err := strconv.Atoi(os.Getenv("PBXD_FAILOVER_SUBS")); err == nil && n > 0 {
		return n
	}
	return 3000
}

// seedDue adds n invoice-paying accounts with one subscription each, due
// for renewal on 1 December 2026 (Europe/Paris).
func seedDue(t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	cet := time.FixedZone("CET", 3600)
	seedAccounts(t, pool, n, "Customer", "f", "invoice", func(tx *store.Tx, id string, _ int) {
		storetest.Subscription(t, tx, storetest.SubscriptionRow{AccountID: id, PackageCode: "fr-fixed-mobile", Quantity: 1, PeriodPriceMinor: 4990,
			PeriodStart: time.Date(2026, 11, 1, 0, 0, 0, 0, cet), PeriodEnd: time.Date(2026, 12, 1, 0, 0, 0, 0, cet),
			RegisteredFrom: time.Date(2026, 10, 15, 0, 0, 0, 0, time.FixedZone("CEST", 7200))})
	})
	if _, err := pool.Exec(t.Context(), `ANALYZE accounts, subscriptions`); err != nil {
		t.Fatalf("seed: %v", err)
	}
}

// seedAccounts adds n accounts paying by mode, "<name> 1" to "<name> n"
// with ids in that order, at <domain><g>.voip.example.net, and calls with
// on each to add its rows: all through storetest's factories, in one
// transaction.
func seedAccounts(t *testing.T, pool *pgxpool.Pool, n int, name, domain, mode string, with func(tx *store.Tx, id string, g int)) {
	t.Helper()
	err := store.NewDB(pool).InTx(t.Context(), func(tx *store.Tx) error {
		for g := 1; g <= n; g++ {
			id := fmt.Sprintf("00000000-0000-4000-8000-%012x", g)
			storetest.Account(t, tx, provdb.InsertAccountParams{ID: id, Name: fmt.Sprintf("%s %d", name, g), SipDomain: fmt.Sprintf("%s%d.voip.example.net", domain, g),
				PaymentMode: mode, SeatPreference: "auto_purchase", ExtLast: 899})
			with(tx, id, g)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
}

// setClock moves a daemon's test clock, which runs the jobs that became
// due before it answers; it reports whether the daemon answered 200 (a
// daemon killed meanwhile does not).
func setClock(base, now string) bool {
	req, _ := http.NewRequest("POST", base+"/v1/test-clock", bytes.NewReader([]byte(`{"now":"`+now+`"}`)))
	req.Header.Set("Authorization", "Bearer "+apptest.OperatorToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close() // the status is all this probe reads
	return resp.StatusCode == http.StatusOK
}

// leaderOf moves both daemons' clocks to now at once and returns the one
// that runs the due jobs (its answer waits for them) and the other.
func leaderOf(t *testing.T, a, b *pbxdProcess, now string) (leader, follower *pbxdProcess, leaderDone <-chan bool) {
	t.Helper()
	da, db := make(chan bool, 1), make(chan bool, 1)
	go func() { da <- setClock(a.base, now) }()
	go func() { db <- setClock(b.base, now) }()
	select {
	case ok := <-da:
		if !ok {
			t.Fatal("setting A's clock failed")
		}
		return b, a, db
	case ok := <-db:
		if !ok {
			t.Fatal("setting B's clock failed")
		}
		return a, b, da
	case <-time.After(60 * time.Second):
		t.Fatal("neither daemon answered")
	}
	return nil, nil, nil
}

func count(t *testing.T, pool *pgxpool.Pool, q string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(t.Context(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// waitRenewals waits until n renewals are committed.
func waitRenewals(t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		got := count(t, pool, `SELECT count(*) FROM renewals`)
		if got == n {
			return
		}
		if got > n || time.Now().After(deadline) {
			t.Fatalf("%d renewals, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkBilledOnce asserts one renewal and one invoice per subscription and
// period, and invoice numbers without gaps.
func checkBilledOnce(t *testing.T, pool *pgxpool.Pool, subs, periods int) {
	t.Helper()
	if n := count(t, pool, `SELECT count(*) FROM renewals`); n != subs*periods {
		t.Errorf("%d renewals, want %d", n, subs*periods)
	}
	if n := count(t, pool, `SELECT count(*) FROM (SELECT account_id FROM invoices GROUP BY account_id HAVING count(*) <> `+strconv.Itoa(periods)+`) x`); n != 0 {
		t.Errorf("%d accounts without exactly %d invoices", n, periods)
	}
	// Numbers run per issuer and year: PREFIX-000001 on.
	if n := count(t, pool, `SELECT count(*) FROM (SELECT left(number, -6), count(*) AS c, count(DISTINCT number) AS d, max(right(number, 6)::int) AS m
		FROM invoices GROUP BY 1) x WHERE c <> m OR c <> d`); n != 0 {
		t.Errorf("invoice numbers not gapless or not unique in %d series", n)
	}
}

// killWhen kills the leader (SIGKILL) once the count q returns passes at,
// and returns when; it fails the test if the leader's run (done) had
// finished by then.
func killWhen(t *testing.T, pool *pgxpool.Pool, leader *pbxdProcess, done <-chan bool, q string, at int) time.Time {
	t.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	for count(t, pool, q) <= at {
		if time.Now().After(deadline) {
			t.Fatalf("%s never passed %d", q, at)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := leader.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if <-done {
		t.Fatal("the leader finished its run before it was killed: give it more work")
	}
	return killed
}

// The leader dies (kill -9) in the middle of a renewal run: the other
// instance takes the job within scheduler.check_interval and finishes it.
// Then the new leader's lock session is cut (pg_terminate_backend) in the
// middle of the next run: it stops, a restarted instance takes over. Each
// time: one invoice per subscription and period, gapless numbers.
func TestLeaderFailoverWithRealProcesses(t *testing.T) {
	t.Parallel()
	check := time.Second // PBXD_FAILOVER_CHECK overrides it (by hand: the default, 10s)
	if d, err := time.ParseDuration(os.Getenv("PBXD_FAILOVER_CHECK")); err == nil {
		check = d
	}
	a, b, start, pool := startCluster(t, "scheduler:\n  check_interval: "+check.String()+"\n")
	n := failoverSubs()
	seedDue(t, pool, n)

	// PBXD_FAILOVER_AT: kill after this many renewals (default: the first).
	killAt, _ := strconv.Atoi(os.Getenv("PBXD_FAILOVER_AT"))
	leader, follower, done := leaderOf(t, a, b, "2026-12-01T02:00:00+01:00")
	killed := killWhen(t, pool, leader, done, `SELECT count(*) FROM renewals`, killAt)
	at := count(t, pool, `SELECT count(*) FROM renewals`)
	took := follower.waitLog(t, killed, `msg="job started" component=scheduler job=billing.renewals`)
	waitRenewals(t, pool, n)
	t.Logf("kill -9 after %d of %d renewals; the other instance took the job %v later and finished it", at, n, took.Round(time.Millisecond))
	if took > 5*check+5*time.Second {
		t.Errorf("takeover took %v with check_interval %v", took, check)
	}
	checkBilledOnce(t, pool, n, 1)

	// The next month: a restarted instance beside the leader, whose lock
	// session is cut during the run.
	restarted := start()
	leader, _, done = leaderOf(t, follower, restarted, "2027-01-01T02:00:00+01:00")
	for count(t, pool, `SELECT count(*) FROM renewals`) <= n+killAt {
		time.Sleep(2 * time.Millisecond)
	}
	if _, err := pool.Exec(t.Context(), `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND objsubid = 1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	at = count(t, pool, `SELECT count(*) FROM renewals`)
	if at == 2*n {
		t.Fatal("the run finished before the cut: raise PBXD_FAILOVER_SUBS")
	}
	other := restarted
	if leader == restarted {
		other = follower
	}
	// Whichever instance takes the free lock first (the cut leader, on a
	// new session, may win the race) runs on under a new fencing epoch.
	taker, took := waitLogAny(t, cut, `msg="job started" component=scheduler job=billing.renewals`, other, leader)
	waitRenewals(t, pool, 2*n)
	<-done
	who := "the other instance"
	if taker == leader {
		who = "the cut leader, on a new session,"
	}
	t.Logf("lock session cut after %d of %d renewals; %s took the job %v later and finished it", at-n, n, who, took.Round(time.Millisecond))
	// It stops either at its next lock check or at once, when the cut
	// connection was the one its run was using.
	if tail := leader.logTail(); !strings.Contains(tail, "leader lock lost") && !strings.Contains(tail, "terminating connection due to administrator command") {
		t.Errorf("the leader whose session was cut did not stop:\n%s", leader.logTail())
	}
	checkBilledOnce(t, pool, n, 2)
}

// The leader dies (kill -9) in the middle of dunning (charging open card
// invoices): the other instance takes the job and finishes it, and the
// recovery job settles the charge the dead leader had in flight. Each
// invoice is paid, by exactly one approved charge.
func TestLeaderKilledDuringDunning(t *testing.T) {
	t.Parallel()
	a, b, _, pool := startCluster(t, "scheduler:\n  check_interval: 1s\n")
	const n = 300
	cet := time.FixedZone("CET", 3600)
	seedAccounts(t, pool, n, "Card", "d", "card", func(tx *store.Tx, id string, g int) {
		storetest.PaymentMethod(t, tx, storetest.PaymentMethodRow{AccountID: id, Token: "sandbox_approve", Label: "Sandbox card"})
		storetest.Invoice(t, tx, storetest.InvoiceRow{AccountID: id, Number: fmt.Sprintf("DUN-2026-%06d", g), Issuer: "demo",
			IssuedAt: time.Date(2026, 11, 16, 9, 0, 0, 0, cet), DueAt: time.Date(2026, 11, 30, 9, 0, 0, 0, cet), NetMinor: 4990, TaxMinor: 998, GrossMinor: 5988})
	})
	leader, follower, done := leaderOf(t, a, b, "2026-11-16T10:15:00+01:00")
	killed := killWhen(t, pool, leader, done, `SELECT count(*) FROM sandbox_charges`, 0)
	charged := count(t, pool, `SELECT count(*) FROM sandbox_charges`)
	took := follower.waitLog(t, killed, `msg="job started" component=scheduler job=billing.dunning`)
	// Dunning done: every invoice paid but those whose charge the dead
	// leader left in flight (outcome unknown), which recovery settles once
	// they are old enough.
	deadline := time.Now().Add(2 * time.Minute)
	for count(t, pool, `SELECT count(*) FROM invoices i WHERE status <> 'paid' AND NOT EXISTS
		(SELECT 1 FROM payment_attempts p WHERE p.invoice_id = i.id AND p.outcome = 'unknown')`) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("dunning never finished")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !setClock(follower.base, "2026-11-16T10:45:00+01:00") {
		t.Fatal("moving the survivor's clock failed")
	}
	deadline = time.Now().Add(time.Minute)
	for count(t, pool, `SELECT count(*) FROM invoices WHERE status = 'paid'`) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d invoices paid", count(t, pool, `SELECT count(*) FROM invoices WHERE status = 'paid'`), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("kill -9 after %d of %d charges; the other instance took dunning %v later and finished it", charged, n, took.Round(time.Millisecond))
	if n := count(t, pool, `SELECT count(*) FROM (SELECT i.id FROM invoices i LEFT JOIN sandbox_charges c
		ON split_part(c.idempotency_key, ':', 2) = i.id::text AND c.outcome = 'approved' GROUP BY i.id HAVING count(c.*) <> 1) x`); n != 0 {
		t.Errorf("%d invoices without exactly one approved charge", n)
	}
}
