// Package apptest starts whole pbxd daemons in-process for integration
// tests: a fresh database each, listeners on loopback port 0, the test clock,
// and a small JSON client.
package apptest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxd/pbxd/internal/app"
	"github.com/pbxd/pbxd/internal/config"
	"github.com/pbxd/pbxd/internal/store/storetest"
)

// OperatorToken is the operator token of test daemons.
const OperatorToken = "op-test-token"

// Daemon is a running in-process pbxd.
type Daemon struct {
	App      *app.App
	Config   *config.Config
	Registry *prometheus.Registry
	URL      string
	cancel   context.CancelFunc
	done     chan error
}

// Start runs a daemon on a fresh database with the test clock at
// 2026-11-16T10:00:00+01:00 unless a mutator changes it; it stops when the
// test ends.
func Start(t testing.TB, mutate ...func(*config.Config)) *Daemon {
	t.Helper()
	cfg := config.Defaults()
	cfg.Database.URL = storetest.NewDatabase(t)
	cfg.StateDir = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.SIP.Listen = "127.0.0.1:0"
	cfg.HTTP.OperatorToken = OperatorToken
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cfg.SecretKey = base64.StdEncoding.EncodeToString(key)
	cfg.TestClock = "2026-11-16T10:00:00+01:00"
	cfg.Reconciler.RetryMin = config.Duration(50 * time.Millisecond)
	for _, m := range mutate {
		m(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("apptest: config: %v", err)
	}
	return StartConfig(t, cfg)
}

// StartConfig runs a daemon with exactly cfg.
func StartConfig(t testing.TB, cfg *config.Config) *Daemon {
	t.Helper()
	out := io.Discard
	if os.Getenv("PBXD_TEST_LOG") != "" {
		out = os.Stderr
	}
	logger, level := app.NewLogger(cfg, out)
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, app.Options{Logger: logger.With("daemon", t.Name()), Level: level, Registry: reg})
	if err != nil {
		cancel()
		t.Fatalf("apptest: start daemon: %v", err)
	}
	d := &Daemon{App: a, Config: cfg, Registry: reg, URL: "http://" + a.HTTPAddr(), cancel: cancel, done: make(chan error, 1)}
	go func() { d.done <- a.Run(ctx) }()
	t.Cleanup(func() { d.Stop(t) })
	return d
}

// Stop shuts the daemon down and fails the test if that fails.
func (d *Daemon) Stop(t testing.TB) {
	if d.cancel == nil {
		return
	}
	d.cancel()
	d.cancel = nil
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("apptest: daemon stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("apptest: daemon did not stop within 30s")
	}
}

// Response is an HTTP answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test on error.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// Map decodes the body as a JSON object.
func (r Response) Map(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	r.JSON(t, &m)
	return m
}

// Call sends a request with a bearer token (empty: none) and a JSON body
// (nil: none). Extra headers come in pairs.
func (d *Daemon) Call(t testing.TB, token, method, path string, body any, headers ...string) Response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, d.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }() // read to its end below
	b, _ := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// Op calls as the operator and fails the test unless the status is want.
func (d *Daemon) Op(t testing.TB, want int, method, path string, body any, headers ...string) Response {
	t.Helper()
	r := d.Call(t, OperatorToken, method, path, body, headers...)
	if r.Status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	return r
}

// SetClock moves the test clock (jobs that became due run before it
// answers).
func (d *Daemon) SetClock(t testing.TB, now string) {
	t.Helper()
	d.Op(t, http.StatusOK, "POST", "/v1/test-clock", map[string]string{"now": now})
}

// CreateAccount creates an account with sensible defaults overridden by
// fields, and returns its id.
func (d *Daemon) CreateAccount(t testing.TB, fields map[string]any) string {
	t.Helper()
	body := map[string]any{
		"name": "Acme", "sip_domain": fmt.Sprintf("acme-%d.voip.example.net", time.Now().UnixNano()),
		"currency": "EUR", "timezone": "Europe/Paris", "vat_percent": 20, "payment_mode": "invoice",
		"seat_preference": "auto_purchase", "extension_range": map[string]int{"first": 100, "last": 899},
		"billing_address": map[string]string{"line1": "1 rue de la Paix", "city": "Paris", "country": "FR"},
	}
	for k, v := range fields {
		body[k] = v
	}
	var acct struct{ ID string }
	d.Op(t, http.StatusCreated, "POST", "/v1/accounts", body).JSON(t, &acct)
	return acct.ID
}

// Change previews and confirms target quantities as the operator and
// returns the confirm result.
func (d *Daemon) Change(t testing.TB, account string, items ...map[string]any) map[string]any {
	t.Helper()
	pv := d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+account+"/changes", map[string]any{"items": items}).Map(t)
	return d.Op(t, http.StatusOK, "POST", "/v1/changes/"+pv["id"].(string)+"/confirm", nil).Map(t)
}

// LogBuffer is a goroutine-safe sink for a daemon's logs in tests.
type LogBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write appends p.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
