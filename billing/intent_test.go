package billing

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pbxd/pbxd/internal/store"
)

// renewalMoney asserts that the sandbox's approved charges, the approved
// attempts and the paid card invoices agree, with nothing left unknown.
func renewalMoney(t *testing.T, pool *pgxpool.Pool) (approved int64) {
	t.Helper()
	var gw, db, paid, unknown, open int64
	if err := pool.QueryRow(t.Context(), `SELECT
		(SELECT count(*) FROM sandbox_charges WHERE outcome = 'approved' AND NOT refunded),
		(SELECT count(*) FROM payment_attempts WHERE outcome = 'approved'),
		(SELECT count(*) FROM invoices WHERE status = 'paid' AND payment_ref LIKE 'sbx_%'),
		(SELECT count(*) FROM payment_attempts WHERE outcome = 'unknown'),
		(SELECT count(*) FROM invoices WHERE status = 'open')`).Scan(&gw, &db, &paid, &unknown, &open); err != nil {
		t.Fatal(err)
	}
	if gw != db || db != paid || unknown != 0 || open != 0 {
		t.Errorf("gateway approved %d, database approved %d, paid invoices %d, unknown %d, open %d", gw, db, paid, unknown, open)
	}
	return db
}

// Connections terminated (pg_terminate_backend) during a renewal run, and
// a crash between the gateway's answers and their record (a hook that
// drops them): the next run and the recovery job leave every renewal
// invoiced once and paid once, the gateway agreeing with the database.
func TestRenewalPaymentsSurviveFaults(t *testing.T) {
	t.Parallel()
	b := setupShell(t)
	const n = 60
	for range n {
		b.account(t, SandboxApprove, 1)
	}
	at := time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC)
	var dropped atomic.Int64
	reg := prometheus.NewRegistry()
	crashy, err := NewService(Options{DB: store.NewDB(b.pool), Clock: testClock(at), Workers: 4, Registry: reg, Settings: b.svc.cfg(), Lines: b.lines,
		AfterCharge: func(string) error {
			if dropped.Add(1)%3 == 0 {
				return ErrAbandoned // as if the process died here
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	st := crashy.cfg()
	st.RenewalBatch = 5
	if err := crashy.SetSettings(st); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	killer := make(chan int64)
	go func() {
		var killed int64
		defer func() { killer <- killed }()
		for {
			select {
			case <-stop:
				return
			case <-time.After(3 * time.Millisecond):
			}
			var k int64
			_ = b.pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'`).Scan(&k)
			killed += k
		}
	}()
	_, runErr := crashy.Renew(t.Context(), at)
	close(stop)
	t.Logf("run under faults: %v; %d backends terminated, %d answers seen", runErr, <-killer, dropped.Load())
	// The database is back: a connection the last kill hit as its query
	// ended may sit in the pool yet (as after a restart, the next job run
	// would retry). Start the runs below from fresh connections.
	b.pool.Reset()
	if got, want := testutil.ToFloat64(crashy.m.attempts.WithLabelValues("approved")), countOutcome(t, b.pool, "approved"); got != float64(want) {
		t.Errorf("metric approved = %v, database %d", got, want)
	}
	// The next run, then recovery a minute later, settle everything.
	if _, err := b.svc.Renew(t.Context(), at); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if err := b.svc.Recover(t.Context(), at.Add(2*time.Minute), nil); err != nil {
		t.Fatal(err)
	}
	// A charge that never reached the gateway (its batch's commit answer
	// lost with the connection) was voided into dunning: the next retry
	// takes it.
	if err := b.svc.RunDunning(t.Context(), at.Add(25*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := renewalMoney(t, b.pool); got != n {
		t.Errorf("%d renewals paid, want %d", got, n)
	}
	var renewals, recovered int64
	if err := b.pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM renewals), (SELECT count(*) FROM audit_log WHERE action = 'payment.recovered')`).Scan(&renewals, &recovered); err != nil || renewals != n {
		t.Fatalf("%d renewals (%v), want %d", renewals, err, n)
	}
	if recovered == 0 {
		t.Error("no payment was recovered: the faults did not bite")
	}
}

func countOutcome(t *testing.T, pool *pgxpool.Pool, outcome string) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM payment_attempts WHERE outcome = $1`, outcome).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// dropsAnswers is a service on b's database that loses every gateway
// answer before recording it, as a process dying there would.
func dropsAnswers(t *testing.T, b shellBundle, at time.Time) *Service {
	t.Helper()
	svc, err := NewService(Options{DB: store.NewDB(b.pool), Clock: testClock(at), Registry: prometheus.NewRegistry(), Settings: b.svc.cfg(),
		AfterCharge: func(string) error { return ErrAbandoned }})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// An invoice whose card charge has no recorded answer cannot be marked
// paid by transfer meanwhile: that could take the money twice. Recovery
// records the answer, after which the invoice is paid once.
func TestMarkPaidWaitsForAChargeInFlight(t *testing.T) {
	t.Parallel()
	b := setupShell(t)
	b.account(t, SandboxApprove, 1)
	at := time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC)
	crashy := dropsAnswers(t, b, at)
	if _, err := crashy.Renew(t.Context(), at); err != nil {
		t.Fatal(err)
	}
	var inv string
	if err := b.pool.QueryRow(t.Context(), `SELECT id::text FROM invoices WHERE status = 'open'`).Scan(&inv); err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.MarkPaid(t.Context(), "operator", inv, "SEPA-1"); err == nil || !strings.Contains(err.Error(), "in progress") {
		t.Fatalf("mark-paid with a charge in flight: %v", err)
	}
	if err := b.svc.Recover(t.Context(), at.Add(2*time.Minute), nil); err != nil {
		t.Fatal(err)
	}
	if got := renewalMoney(t, b.pool); got != 1 {
		t.Fatalf("%d paid after recovery, want 1", got)
	}
}

// Attempts left unknown by a process that is gone are settled by the next
// recovery at once, without waiting the minute that protects a request in
// flight; those of a process still running wait for that minute.
func TestRecoverSettlesAGoneOwnersAttemptsAtOnce(t *testing.T) {
	t.Parallel()
	b := setupShell(t)
	b.account(t, SandboxApprove, 1)
	at := time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC)
	crashy := dropsAnswers(t, b, at)
	ctx, cancel := context.WithCancel(t.Context())
	held := make(chan error, 1)
	go func() { held <- crashy.HoldOwnership(ctx) }()
	for crashy.owner.Load() == 0 {
		select {
		case err := <-held:
			t.Fatalf("owner lock: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if _, err := crashy.Renew(t.Context(), at); err != nil {
		t.Fatal(err)
	}
	var owner *int32
	if err := b.pool.QueryRow(t.Context(), `SELECT owner FROM payment_attempts WHERE outcome = 'unknown'`).Scan(&owner); err != nil || owner == nil || *owner != crashy.owner.Load() {
		t.Fatalf("the unknown attempt's owner: %v (%v), want %d", owner, err, crashy.owner.Load())
	}
	// Its owner runs: the charge may still be in flight.
	if err := b.svc.Recover(t.Context(), at, nil); err != nil {
		t.Fatal(err)
	}
	if n := countOutcome(t, b.pool, "unknown"); n != 1 {
		t.Fatalf("%d unknown attempts after recovering with the owner alive, want 1", n)
	}
	// The owner is gone (its session ends with it): settled at once.
	key := crashy.owner.Load()
	cancel()
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	// The server ends the closed session, and frees its lock, a moment
	// after the client has gone: wait for that (generously, under load).
	for deadline := time.Now().Add(30 * time.Second); ; {
		var free bool
		if err := b.pool.QueryRow(t.Context(), `SELECT pg_try_advisory_xact_lock($1, $2)`, int32(ownerLockClass), key).Scan(&free); err != nil {
			t.Fatal(err)
		}
		if free {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the gone owner's lock is still held after 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := b.svc.Recover(t.Context(), at, nil); err != nil {
		t.Fatal(err)
	}
	if got := renewalMoney(t, b.pool); got != 1 {
		t.Fatalf("%d paid after recovery, want 1", got)
	}
}
