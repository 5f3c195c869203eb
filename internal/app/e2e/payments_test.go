package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pbxd/pbxd/internal/app/apptest"
	"github.com/pbxd/pbxd/internal/config"
	"github.com/pbxd/pbxd/internal/store/storetest"
)

// moneyCounts are the figures that must agree after recovery.
type moneyCounts struct {
	GatewayApproved  int64 // charges the sandbox gateway took and did not refund
	DBApproved       int64 // approved attempts not refunded
	PaidInvoices     int64 // invoices paid by card
	Unsettled        int64 // attempts without outcome, refunds not finished
	PaidNotApplied   int64 // approved change payments neither applied nor refunded
	ChangeNotPaid    int64 // confirmed changes whose invoice is not paid
	Lines            int64 // lines created (each confirm of the load adds one)
	ApprovedAttempts int64 // all approved attempts, refunded or not
}

func countMoney(t *testing.T, pool *pgxpool.Pool) moneyCounts {
	t.Helper()
	var c moneyCounts
	err := pool.QueryRow(t.Context(), `SELECT
		(SELECT count(*) FROM sandbox_charges WHERE outcome = 'approved' AND NOT refunded),
		(SELECT count(*) FROM payment_attempts WHERE outcome = 'approved' AND refund_state IS NULL),
		(SELECT count(*) FROM invoices WHERE status = 'paid' AND payment_ref LIKE 'sbx_%'),
		(SELECT count(*) FROM payment_attempts WHERE outcome = 'unknown' OR refund_state = 'requested'),
		(SELECT count(*) FROM payment_attempts WHERE change_id IS NOT NULL AND outcome = 'approved' AND invoice_id IS NULL AND refund_state IS NULL),
		(SELECT count(*) FROM change_orders c WHERE c.status = 'confirmed' AND c.result->>'invoice_id' IS NOT NULL
			AND NOT EXISTS (SELECT 1 FROM invoices i WHERE i.id = (c.result->>'invoice_id')::uuid AND i.status = 'paid')),
		(SELECT count(*) FROM lines WHERE state <> 'deleted'),
		(SELECT count(*) FROM payment_attempts WHERE outcome = 'approved')`).
		Scan(&c.GatewayApproved, &c.DBApproved, &c.PaidInvoices, &c.Unsettled, &c.PaidNotApplied, &c.ChangeNotPaid, &c.Lines, &c.ApprovedAttempts)
	if err != nil {
		t.Fatalf("count money: %v", err)
	}
	return c
}

// checkMoney asserts that nobody was charged for nothing and nothing was
// given without payment: gateway approved = database approved = paid
// invoices = lines created, nothing left unsettled.
func checkMoney(t *testing.T, pool *pgxpool.Pool) moneyCounts {
	t.Helper()
	c := countMoney(t, pool)
	if c.GatewayApproved != c.DBApproved || c.DBApproved != c.PaidInvoices || c.PaidInvoices != c.Lines ||
		c.Unsettled != 0 || c.PaidNotApplied != 0 || c.ChangeNotPaid != 0 {
		t.Errorf("money after recovery: %+v", c)
	}
	return c
}

// confirmLoad previews and confirms +1 world line on the accounts from
// several clients until stop is closed; errors (refused, connection lost,
// daemon killed) are expected and ignored. It returns how many confirms
// answered 200.
func confirmLoad(base, token string, accounts []string, stop <-chan struct{}) int64 {
	var ok atomic.Int64
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	call := func(method, path string, body any) (int, map[string]any) {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, base+path, rd)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil
		}
		defer func() { _ = resp.Body.Close() }() // read to its end below
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	for _, acct := range accounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				st, pkgs := call("GET", "/v1/accounts/"+acct+"/packages", nil)
				if st != http.StatusOK {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				qty := 0
				if list, _ := pkgs["packages"].([]any); list != nil {
					for _, p := range list {
						if m, _ := p.(map[string]any); m["package"] == "world" || m["code"] == "world" {
							if q, ok := m["quantity"].(float64); ok {
								qty = int(q)
							}
						}
					}
				}
				st, pv := call("POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []map[string]any{{"package": "world", "quantity": qty + 1}}})
				if st != http.StatusCreated {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				if st, _ := call("POST", "/v1/changes/"+pv["id"].(string)+"/confirm", nil); st == http.StatusOK {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return ok.Load()
}

func cardAccounts(t *testing.T, d *apptest.Daemon, n int) []string {
	t.Helper()
	var out []string
	for range n {
		acct := d.CreateAccount(t, map[string]any{"payment_mode": "card"})
		addMethod(t, d, acct, "sandbox_approve")
		out = append(out, acct)
	}
	return out
}

// refuseInvoices makes every invoice insert fail, as a dropped connection
// at that point would.
func refuseInvoices(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	if _, err := pool.Exec(t.Context(), `CREATE FUNCTION refuse_invoice() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'invoice insert refused (test)'; END $$;
		CREATE TRIGGER refuse_invoice BEFORE INSERT ON invoices FOR EACH ROW EXECUTE FUNCTION refuse_invoice()`); err != nil {
		t.Fatal(err)
	}
}

// A confirm whose invoice cannot be written (a trigger fails the insert,
// as a dropped connection would) leaves a recorded payment, which the
// recovery job applies once the database accepts it again: the card is
// never charged for nothing.
func TestPaymentSurvivesFailedInvoiceInsert(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	pool := d.App.Pool()
	acct := cardAccounts(t, d, 1)[0]
	refuseInvoices(t, pool)
	pv := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []map[string]any{{"package": "world", "quantity": 1}}}).Map(t)
	if r := d.Call(t, apptest.OperatorToken, "POST", "/v1/changes/"+pv["id"].(string)+"/confirm", nil); r.Status < 500 {
		t.Fatalf("confirm with the invoice insert failing: %d %s", r.Status, r.Body)
	}
	c := countMoney(t, pool)
	if c.GatewayApproved != 1 || c.DBApproved != 1 || c.PaidNotApplied != 1 || c.Lines != 0 {
		t.Fatalf("after the failed confirm: %+v; want the payment recorded, not applied", c)
	}
	if got := metric(t, d.Registry, "pbxd_billing_payment_attempts_total", map[string]string{"outcome": "approved"}); got != float64(c.ApprovedAttempts) {
		t.Errorf("metric approved = %v, database %d", got, c.ApprovedAttempts)
	}
	if _, err := pool.Exec(t.Context(), `DROP TRIGGER refuse_invoice ON invoices`); err != nil {
		t.Fatal(err)
	}
	d.SetClock(t, "2026-11-16T10:10:00+01:00") // the recovery job runs
	c = checkMoney(t, pool)
	if c.Lines != 1 {
		t.Fatalf("recovery applied %d lines, want 1", c.Lines)
	}
	var audited int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM audit_log WHERE account_id = $1 AND action = 'change.confirm' AND actor = 'billing'`, acct).Scan(&audited); err != nil || audited != 1 {
		t.Fatalf("recovery's apply audited %d times (%v)", audited, err)
	}
	// Confirming again returns the applied result, charging nothing more.
	res := d.Op(t, http.StatusOK, "POST", "/v1/changes/"+pv["id"].(string)+"/confirm", nil).Map(t)
	if res["invoice_id"] == nil || countMoney(t, pool).GatewayApproved != 1 {
		t.Fatalf("second confirm: %v", res)
	}
}

// A paid change that no longer applies when recovery comes (the account
// changed meanwhile) is refunded through the gateway, with an audit record.
func TestPaymentRefundedWhenChangeNoLongerApplies(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	pool := d.App.Pool()
	acct := cardAccounts(t, d, 1)[0]
	refuseInvoices(t, pool)
	pv := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []map[string]any{{"package": "world", "quantity": 1}}}).Map(t)
	d.Call(t, apptest.OperatorToken, "POST", "/v1/changes/"+pv["id"].(string)+"/confirm", nil)
	if _, err := pool.Exec(t.Context(), `DROP TRIGGER refuse_invoice ON invoices; UPDATE packages SET price_minor = 7990 WHERE code = 'world'`); err != nil {
		t.Fatal(err)
	}
	d.SetClock(t, "2026-11-16T10:10:00+01:00")
	c := checkMoney(t, pool)
	var refunded, audits int
	if err := pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM sandbox_charges WHERE refunded),
		(SELECT count(*) FROM audit_log WHERE account_id = $1 AND action = 'payment.refunded')`, acct).Scan(&refunded, &audits); err != nil {
		t.Fatal(err)
	}
	if c.Lines != 0 || refunded != 1 || audits != 1 {
		t.Fatalf("lines %d, refunded at the gateway %d, audited %d; want 0, 1, 1", c.Lines, refunded, audits)
	}
	if r := d.Call(t, apptest.OperatorToken, "POST", "/v1/changes/"+pv["id"].(string)+"/confirm", nil); r.Status != http.StatusConflict {
		t.Fatalf("confirming a refunded change: %d %s", r.Status, r.Body)
	}
}

// Several previews of the same account state confirmed at once: only one
// is charged and applied; the others are refused with 409 before any
// gateway call, so nobody is charged then refunded. The gateway's ledger
// is slowed (a trigger) so that every confirm starts while the first
// charge is in flight.
func TestConcurrentConfirmsOfOneStateChargeOnce(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	pool := d.App.Pool()
	acct := cardAccounts(t, d, 1)[0]
	if _, err := pool.Exec(t.Context(), `CREATE FUNCTION slow_charge() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_sleep(1); RETURN NEW; END $$;
		CREATE TRIGGER slow_charge BEFORE INSERT ON sandbox_charges FOR EACH ROW EXECUTE FUNCTION slow_charge()`); err != nil {
		t.Fatal(err)
	}
	const n = 6
	var ids []string
	for range n {
		pv := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []map[string]any{{"package": "world", "quantity": 1}}}).Map(t)
		ids = append(ids, pv["id"].(string))
	}
	statuses := make([]int, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			statuses[i] = d.Call(t, apptest.OperatorToken, "POST", "/v1/changes/"+id+"/confirm", nil).Status
		}()
	}
	close(start)
	wg.Wait()
	ok, conflict := 0, 0
	for _, st := range statuses {
		switch st {
		case http.StatusOK:
			ok++
		case http.StatusConflict:
			conflict++
		}
	}
	var charges, refunded, attempts int
	if err := pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM sandbox_charges), (SELECT count(*) FROM sandbox_charges WHERE refunded),
		(SELECT count(*) FROM payment_attempts)`).Scan(&charges, &refunded, &attempts); err != nil {
		t.Fatal(err)
	}
	if ok != 1 || conflict != n-1 || charges != 1 || refunded != 0 || attempts != 1 {
		t.Fatalf("confirms %v: %d ok, %d conflicts; gateway charges %d, refunded %d; attempts %d; want 1, %d; 1, 0; 1",
			statuses, ok, conflict, charges, refunded, attempts, n-1)
	}
	if c := checkMoney(t, pool); c.Lines != 1 {
		t.Fatalf("%d lines, want 1", c.Lines)
	}
}

// Database connections killed under load (pg_terminate_backend) during
// confirms lose no money: after recovery, every charge the gateway took is
// in the database with its invoice and its line, and the metric equals the
// database.
func TestPaymentsSurviveTerminatedConnections(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	pool := d.App.Pool()
	accounts := cardAccounts(t, d, 24) // a confirm cut after its charge holds its account (409) until recovery: many accounts keep the load going
	admin, err := pgxpool.New(t.Context(), d.Config.Database.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	stop := make(chan struct{})
	var killed atomic.Int64
	go func() {
		// The kills start a little late, so that some confirms complete
		// before the accounts they cut are held (409) until recovery.
		select {
		case <-stop:
			return
		case <-time.After(300 * time.Millisecond):
		}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(40+i%60) * time.Millisecond):
			}
			var n int64
			_ = admin.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'`).Scan(&n)
			killed.Add(n)
		}
	}()
	done := make(chan int64)
	go func() { done <- confirmLoad(d.URL, apptest.OperatorToken, accounts, stop) }()
	time.Sleep(3 * time.Second)
	close(stop)
	confirmed := <-done
	t.Logf("%d confirms answered 200, %d backends terminated", confirmed, killed.Load())
	d.SetClock(t, "2026-11-16T10:10:00+01:00")
	c := checkMoney(t, pool)
	if c.Lines < confirmed || confirmed == 0 {
		t.Errorf("%d lines for %d confirms answered 200", c.Lines, confirmed)
	}
	if got := metric(t, d.Registry, "pbxd_billing_payment_attempts_total", map[string]string{"outcome": "approved"}); got != float64(c.ApprovedAttempts) {
		t.Errorf("metric approved = %v, database %d", got, c.ApprovedAttempts)
	}
}

// kill -9 of a real pbxd during confirms, then a restart: the recovery at
// start, without waiting a minute, leaves gateway approved = database
// approved = paid invoices = lines.
func TestPaymentsSurviveKill9(t *testing.T) {
	t.Parallel()
	bin := buildPbxd(t)
	dbURL := storetest.NewDatabase(t)
	state := t.TempDir()
	p := startPbxd(t, bin, dbURL, state)
	d := &apptest.Daemon{URL: p.base}
	var accounts []string
	for i := range 6 {
		accounts = append(accounts, d.CreateAccount(t, map[string]any{"payment_mode": "card", "sip_domain": fmt.Sprintf("k%d.example.net", i)}))
		addMethod(t, d, accounts[i], "sandbox_approve")
	}
	stop := make(chan struct{})
	done := make(chan int64)
	go func() { done <- confirmLoad(p.base, apptest.OperatorToken, accounts, stop) }()
	time.Sleep(1500 * time.Millisecond)
	if err := p.cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
	close(stop)
	confirmed := <-done
	pool, err := pgxpool.New(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	// PostgreSQL ends the dead process's sessions, and with them its owner
	// lock, once it sees their sockets closed.
	for {
		var sessions int
		if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&sessions); err != nil {
			t.Fatal(err)
		}
		if sessions == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	left := countMoney(t, pool)
	// The clock does not move: what the dead process left is settled by
	// the recovery at start, at once (it is less than a minute old).
	startPbxd(t, bin, dbURL, state)
	giveUp := time.After(time.Minute) // far longer than the recovery takes
	for {
		if c := countMoney(t, pool); c.Unsettled == 0 && c.PaidNotApplied == 0 {
			break
		}
		select {
		case <-giveUp:
			t.Fatalf("not settled at start: %+v", countMoney(t, pool))
		case <-time.After(50 * time.Millisecond):
		}
	}
	c := checkMoney(t, pool)
	t.Logf("%d confirms answered before kill -9; left %+v; after recovery at start %+v", confirmed, left, c)
	if c.Lines < confirmed || confirmed == 0 {
		t.Errorf("%d lines for %d confirms answered 200", c.Lines, confirmed)
	}
}

// An account's subscriptions due on the same date are renewed on one
// invoice with one card charge, VAT computed per rate on the net total, and
// the billing summary's next_payment announced exactly that invoice.
func TestBillingOneRenewalInvoicePerAccount(t *testing.T) {
	t.Parallel()
	d := startAt(t, "2026-11-01T10:00:00+01:00")
	type nextPayment struct {
		NetMinor   int64 `json:"net_minor"`
		TaxMinor   int64 `json:"tax_minor"`
		GrossMinor int64 `json:"gross_minor"`
	}
	var summaries []nextPayment
	var accounts []string
	for _, c := range []struct{ fr, world, frLater int }{
		{1, 1, 1}, // 49.90 + 69.90 = 119.80: VAT 6.59 (2.74 + 3.84 = 6.58 if invoiced apart)
		{3, 1, 2}, // a decrease on the 16th: its credit is on the same invoice
	} {
		acct := d.CreateAccount(t, map[string]any{"payment_mode": "card", "vat_percent": 5.5})
		addMethod(t, d, acct, "sandbox_approve")
		d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": c.fr}, map[string]any{"package": "world", "quantity": c.world})
		accounts = append(accounts, acct)
	}
	d.SetClock(t, "2026-11-16T10:00:00+01:00")
	d.Change(t, accounts[1], map[string]any{"package": "fr-fixed-mobile", "quantity": 2})
	for _, acct := range accounts {
		var sum struct {
			NextPayment nextPayment `json:"next_payment"`
		}
		d.Op(t, http.StatusOK, "GET", "/v1/accounts/"+acct+"/billing", nil).JSON(t, &sum)
		summaries = append(summaries, sum.NextPayment)
	}
	if want := (nextPayment{11980, 659, 12639}); summaries[0] != want {
		t.Fatalf("next payment of France ×1 + World ×1 = %+v, want %+v", summaries[0], want)
	}
	var charges int64
	if err := d.App.Pool().QueryRow(t.Context(), `SELECT count(*) FROM sandbox_charges`).Scan(&charges); err != nil {
		t.Fatal(err)
	}
	d.SetClock(t, "2026-12-01T02:00:00+01:00")
	for i, acct := range accounts {
		invs := invoiceList(t, d, acct)
		var renewal []invoiceRow
		for _, inv := range invs {
			if inv.Number > "2026-00000" && invoiceGet(t, d, inv.ID).Lines[0].PeriodStart == "2026-12-01" {
				renewal = append(renewal, inv)
			}
		}
		if len(renewal) != 1 {
			t.Fatalf("account %d: %d December invoices, want 1: %+v", i, len(renewal), invs)
		}
		got := nextPayment{renewal[0].NetMinor, renewal[0].TaxMinor, renewal[0].GrossMinor}
		if got != summaries[i] || renewal[0].Status != "paid" {
			t.Fatalf("account %d: December invoice %+v (%s), next_payment said %+v", i, got, renewal[0].Status, summaries[i])
		}
	}
	var after int64
	if err := d.App.Pool().QueryRow(t.Context(), `SELECT count(*) FROM sandbox_charges`).Scan(&after); err != nil || after != charges+2 {
		t.Fatalf("%d card charges for the December renewals (%v), want 2", after-charges, err)
	}
}

// A subscription renews at the start of its period in the account's time
// zone (the job runs every quarter of an hour), and a change made before
// the job came is priced against the new period, never as paid before it
// is invoiced.
func TestRenewalAtLocalTime(t *testing.T) {
	t.Parallel()
	d := startAt(t, "2026-11-16T10:00:00+01:00")
	ny := d.CreateAccount(t, map[string]any{"payment_mode": "card", "timezone": "America/New_York"})
	addMethod(t, d, ny, "sandbox_approve")
	d.Change(t, ny, map[string]any{"package": "world", "quantity": 1})
	d.SetClock(t, "2026-12-01T00:10:00Z")      // a run at 00:05 UTC: still 30 November in New York
	d.SetClock(t, "2026-12-01T00:20:00-05:00") // 05:20 UTC: December began in New York 20 minutes ago
	decemberInvoices := func(d *apptest.Daemon, acct string) int {
		n := 0
		for _, inv := range invoiceList(t, d, acct) {
			if invoiceGet(t, d, inv.ID).Lines[0].PeriodStart == "2026-12-01" {
				n++
			}
		}
		return n
	}
	if n := decemberInvoices(d, ny); n != 1 {
		t.Fatalf("%d December invoices 20 minutes into December in New York, want 1", n)
	}

	// With the job not run yet, a preview renews first.
	d2 := startAt(t, "2026-11-16T10:00:00+01:00", func(c *config.Config) { c.Billing.Schedule = "0 0 1 1 *" })
	acct := d2.CreateAccount(t, map[string]any{"payment_mode": "card", "timezone": "America/New_York"})
	addMethod(t, d2, acct, "sandbox_approve")
	d2.Change(t, acct, map[string]any{"package": "world", "quantity": 1})
	d2.SetClock(t, "2026-12-01T00:30:00-05:00")
	pv := d2.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/changes", map[string]any{"items": []map[string]any{{"package": "world", "quantity": 2}}}).Map(t)
	if due := pv["due_now"].(map[string]any); due["net_minor"] != 6990.0 {
		t.Fatalf("a second line on 1 December previews %v due now, want the whole month 69.90 net", due)
	}
	if n := decemberInvoices(d2, acct); n != 1 {
		t.Fatalf("%d December invoices after the preview, want 1 (renewed first)", n)
	}
}
