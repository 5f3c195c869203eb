package e2e

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pbxd/pbxd/internal/app/apptest"
)

// Bad input is refused with a problem naming the field, and nothing is
// written: a missing or null quantity is not 0, a string is not a number,
// trailing data and unknown fields are refused, a body over 1 MiB is a 413.
func TestAPIStrictInput(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acct := d.CreateAccount(t, nil)
	d.Change(t, acct, map[string]any{"package": "world", "quantity": 2})
	pool := d.App.Pool()
	count := func() (orders, accounts int) {
		t.Helper()
		if err := pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM change_orders), (SELECT count(*) FROM accounts)`).Scan(&orders, &accounts); err != nil {
			t.Fatal(err)
		}
		return
	}
	orders, accounts := count()
	raw := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(method, d.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+apptest.OperatorToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }() // read to its end below
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		r := apptest.Response{Status: resp.StatusCode, Body: buf.Bytes()}
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s: content type %q", body[:min(len(body), 60)], ct)
		}
		return r.Status, r.Map(t)
	}
	changes := "/v1/accounts/" + acct + "/changes"
	for _, c := range []struct {
		path, body, field string
		status            int
	}{
		{changes, `{"items":[{"package":"world"}]}`, "items[0].quantity", 422},
		{changes, `{"items":[{"package":"world","quantity":null}]}`, "items[0].quantity", 422},
		{changes, `{"items":[{"package":"world","quantity":1}]} xyz`, "", 422},
		{changes, `{"items":[{"package":"world","quantity":1,"cycle":"monthly","extra":1}]}`, "items[0].extra", 422},
		{changes, `{"items":[{"package":"world","quantity":"1"}]}`, "items[0].quantity", 422},
		{changes, `{"items":[{"package":"` + strings.Repeat("x", 10<<20) + `","quantity":1}]}`, "", 413},
		{"/v1/accounts", `{"name":"A","sip_domain":"strict.example.net","currency":"EUR","timezone":"Europe/Paris","vat_percent":"20","payment_mode":"card","extension_range":{"first":100,"last":199}}`, "vat_percent", 422},
		{"/v1/accounts", `{"name":"A","sip_domain":"strict.example.net","currency":"EUR","timezone":"Europe/Paris","vat_percent":20,"payment_mode":"card","billing_address":null,"extension_range":{"first":100,"last":199}}`, "billing_address", 422},
	} {
		st, p := raw("POST", c.path, c.body)
		if st != c.status || (c.field != "" && p["field"] != c.field) {
			t.Errorf("%.80s: %d %v, want %d on %q", c.body, st, p, c.status, c.field)
		}
	}
	if o, a := count(); o != orders || a != accounts {
		t.Fatalf("refused requests wrote: change orders %d → %d, accounts %d → %d", orders, o, accounts, a)
	}
	if n := len(lines(t, d, apptest.OperatorToken, acct)); n != 2 {
		t.Fatalf("%d lines after the refusals, want 2", n)
	}
}

// A request that cannot reach the database gets 503 with Retry-After, not
// a 500: the client may retry.
func TestAPIDatabaseUnavailableIs503(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acct := d.CreateAccount(t, nil)
	// Started: the registrar has loaded its bindings (/readyz reports the
	// backend connected only then). A database gone while the daemon
	// starts stops it, for systemd to restart; that is not this test.
	deadline := time.Now().Add(30 * time.Second)
	for d.Call(t, "", "GET", "/readyz", nil).Status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the daemon never got ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The database refuses connections and drops the daemon's sessions, as
	// a server restarting would.
	cfg, err := pgx.ParseConfig(d.Config.Database.URL)
	if err != nil {
		t.Fatal(err)
	}
	db := cfg.Database
	cfg.Database = "postgres"
	admin, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = admin.Close(context.Background()) }() // the test's own connection
	if _, err := admin.Exec(t.Context(), `ALTER DATABASE `+pgx.Identifier{db}.Sanitize()+` ALLOW_CONNECTIONS false`); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if _, err := admin.Exec(context.Background(), `ALTER DATABASE `+pgx.Identifier{db}.Sanitize()+` ALLOW_CONNECTIONS true`); err != nil {
			t.Error(err)
		}
	}()
	if _, err := admin.Exec(t.Context(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, db); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/accounts/" + acct, "/v1/accounts/" + acct + "/billing", "/v1/packages"} {
		r := d.Call(t, apptest.OperatorToken, "GET", path, nil)
		if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" || r.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("GET %s with the database gone: %d %v %s", path, r.Status, r.Header, r.Body)
		}
	}
}
