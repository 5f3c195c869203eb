package sip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pbxd/pbxd/sip/sipptest"
)

// These tests drive the registrar over the wire with sipp (Debian package
// sip-tester). A missing sipp fails the test: CI installs it.

const sippDomain = "sipp.example.net"

// running starts a registrar with Run on ephemeral ports and stops it when
// the test ends.
func running(t *testing.T, store BindingStore, mod func(*Config)) *Registrar {
	t.Helper()
	return start(t, store, mod, true)
}

// start is running with a choice: drain the events like the daemon does, or
// leave them to the test.
func start(t *testing.T, store BindingStore, mod func(*Config), drain bool) *Registrar {
	t.Helper()
	cfg := testConfig()
	if mod != nil {
		mod(&cfg)
	}
	if store == nil {
		store = &MemoryStore{}
	}
	r, err := New(cfg, store, SystemClock{}, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	if drain {
		go func() {
			for range r.Events() {
			}
		}()
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for !r.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("registrar not running")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return r
}

// freePort returns a currently free local port for sipp (UDP and TCP).
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		u, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		_ = u.Close()
		if err == nil {
			_ = l.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

type sippRun struct {
	out      string // stdout+stderr
	messages string // -trace_msg log
	err      error
}

// sipp runs one scenario once (-m 1) as user/password against target over
// transport "u1" (UDP) or "t1" (TCP).
func sipp(t *testing.T, target, transport, scenario, user, password string, extra ...string) sippRun {
	t.Helper()
	return sippPort(t, freePort(t), target, transport, scenario, user, password, extra...)
}

// sippPort is sipp with a chosen local port (so successive runs present the
// same Contact).
func sippPort(t *testing.T, port int, target, transport, scenario, user, password string, extra ...string) sippRun {
	t.Helper()
	r := sipptest.Run(t, target, transport, sipptest.Scenario(scenario), sippDomain, user, password, port, extra...)
	return sippRun{out: r.Out, messages: r.Messages, err: r.Err}
}

func (s sippRun) mustPass(t *testing.T, what string) {
	t.Helper()
	sipptest.Result{Out: s.out, Messages: s.messages, Err: s.err}.MustPass(t, what)
}

func sippTargets(r *Registrar) map[string]string {
	return map[string]string{"u1": r.Addrs().UDP, "t1": r.Addrs().TCP}
}

func TestSippRegisterRefreshUnregister(t *testing.T) {
	t.Parallel()
	r := running(t, nil, nil)
	ctx := context.Background()
	for tr, target := range sippTargets(r) {
		t.Run(tr, func(t *testing.T) {
			id, user := "line-"+tr, "200"+tr[:1]
			if err := r.Apply(ctx, lineCfg(id, user, sippDomain, "pw-"+tr)); err != nil {
				t.Fatal(err)
			}
			port := freePort(t)
			sippPort(t, port, target, tr, "register.xml", user, "pw-"+tr).mustPass(t, "register")
			bs := r.Contacts(id)
			if len(bs) != 1 || !strings.HasPrefix(bs[0].Source, map[string]string{"u1": "udp:", "t1": "tcp:"}[tr]) ||
				bs[0].UserAgent != "pbxd-sipp-test" || time.Until(bs[0].ExpiresAt) < 3500*time.Second {
				t.Fatalf("bindings after register: %+v", bs)
			}
			sippPort(t, port, target, tr, "refresh.xml", user, "pw-"+tr).mustPass(t, "refresh")
			if bs := r.Contacts(id); len(bs) != 1 || time.Until(bs[0].ExpiresAt) > 1800*time.Second {
				t.Fatalf("bindings after refresh: %+v", bs)
			}
			sippPort(t, port, target, tr, "unregister.xml", user, "pw-"+tr).mustPass(t, "unregister")
			if bs := r.Contacts(id); len(bs) != 0 {
				t.Fatalf("bindings after unregister: %+v", bs)
			}
		})
	}
	if got := testutil.ToFloat64(r.m.registers.WithLabelValues(resultOK)); got < 10 {
		t.Fatalf("ok registrations %v", got)
	}
}

var wsNonce = regexp.MustCompile(`nonce="[^"]*"|tag=[^;\s>]+|branch=[^;\s]+|Call-ID:.*|CSeq:.*|Via:.*|From:.*|To:.*|Date:.*`)

// lastFinal401 extracts the last 401 response sipp received.
func lastFinal401(t *testing.T, log string) string {
	t.Helper()
	i := strings.LastIndex(log, "SIP/2.0 401")
	if i < 0 {
		t.Fatalf("no 401 in\n%s", log)
	}
	msg := log[i:]
	if j := strings.Index(msg, "\n\n"); j > 0 {
		msg = msg[:j]
	}
	if j := strings.Index(msg, "\r\n\r\n"); j > 0 {
		msg = msg[:j]
	}
	return wsNonce.ReplaceAllString(msg, "X")
}

func TestSippWrongPasswordAndUnknownUser(t *testing.T) {
	t.Parallel()
	r := running(t, nil, nil)
	_ = r.Apply(context.Background(), lineCfg("L1", "300", sippDomain, "right"))
	target := r.Addrs().UDP
	wrong := sipp(t, target, "u1", "auth-fail.xml", "300", "wrong")
	wrong.mustPass(t, "wrong password")
	unknown := sipp(t, target, "u1", "auth-fail.xml", "399", "right")
	unknown.mustPass(t, "unknown user")
	a, b := lastFinal401(t, wrong.messages), lastFinal401(t, unknown.messages)
	if a != b {
		t.Fatalf("wrong password and unknown user are distinguishable:\n%s\n---\n%s", a, b)
	}
	if len(r.Contacts("L1")) != 0 {
		t.Fatal("wrong password registered")
	}
	if got := testutil.ToFloat64(r.m.authFailures); got != 2 {
		t.Fatalf("auth failures %v", got)
	}
}

func TestSippStaleNonce(t *testing.T) {
	t.Parallel()
	r := running(t, nil, func(c *Config) { c.NonceLifetime = time.Second })
	_ = r.Apply(context.Background(), lineCfg("L1", "301", sippDomain, "pw"))
	sipp(t, r.Addrs().UDP, "u1", "stale.xml", "301", "pw").mustPass(t, "stale")
	if len(r.Contacts("L1")) != 1 {
		t.Fatal("not registered after the stale round trip")
	}
}

func TestSippIntervalTooBrief(t *testing.T) {
	t.Parallel()
	r := running(t, nil, nil)
	_ = r.Apply(context.Background(), lineCfg("L1", "302", sippDomain, "pw"))
	run := sipp(t, r.Addrs().TCP, "t1", "too-brief.xml", "302", "pw")
	run.mustPass(t, "too brief")
	if !strings.Contains(run.messages, "Min-Expires: 60") {
		t.Fatalf("no Min-Expires: 60 in\n%s", run.messages)
	}
}

func TestSippSuspendedLine(t *testing.T) {
	t.Parallel()
	r := running(t, nil, nil)
	lc := lineCfg("L1", "303", sippDomain, "pw")
	_ = r.Apply(context.Background(), lc)
	sipp(t, r.Addrs().UDP, "u1", "register.xml", "303", "pw").mustPass(t, "register")
	lc.Suspended = true
	_ = r.Apply(context.Background(), lc)
	if len(r.Contacts("L1")) != 0 {
		t.Fatal("suspension kept the binding")
	}
	sipp(t, r.Addrs().UDP, "u1", "forbidden.xml", "303", "pw").mustPass(t, "suspended")
}

func TestSippThrottle(t *testing.T) {
	t.Parallel()
	r := running(t, nil, func(c *Config) { c.ThrottleFailures = 3 })
	_ = r.Apply(context.Background(), lineCfg("L1", "304", sippDomain, "pw"))
	target := r.Addrs().UDP
	for i := range 3 {
		sipp(t, target, "u1", "auth-fail.xml", "304", "guess").mustPass(t, fmt.Sprintf("failure %d", i))
	}
	if got := testutil.ToFloat64(r.m.throttled); got != 1 {
		t.Fatalf("throttled_total %v", got)
	}
	sipp(t, target, "u1", "throttled.xml", "304", "pw").mustPass(t, "blocked source")
	if len(r.Contacts("L1")) != 0 {
		t.Fatal("a blocked source registered")
	}
}

func TestSippOptions(t *testing.T) {
	t.Parallel()
	r := running(t, nil, nil)
	for tr, target := range sippTargets(r) {
		sipp(t, target, tr, "options.xml", "x", "y").mustPass(t, "options "+tr)
	}
}

func TestRunReloadsBindings(t *testing.T) {
	t.Parallel()
	store := &MemoryStore{}
	ctx := context.Background()
	lc := lineCfg("L1", "305", sippDomain, "pw")
	func() {
		r, err := New(testConfig(), store, SystemClock{}, nil, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(rctx) }()
		for !r.Connected() {
			time.Sleep(5 * time.Millisecond)
		}
		_ = r.Apply(ctx, lc)
		sipp(t, r.Addrs().UDP, "u1", "register.xml", "305", "pw").mustPass(t, "register")
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if _, ok := <-r.Events(); ok {
			// events may remain buffered; the channel must still close
			for range r.Events() {
			}
		}
	}()
	if s, _ := store.LoadBindings(ctx); len(s) != 1 {
		t.Fatalf("not flushed at shutdown: %+v", s)
	}
	// Restart: bindings come back, attached when the line is applied.
	r := running(t, store, nil)
	_ = r.Apply(ctx, lc)
	bs := r.Contacts("L1")
	if len(bs) != 1 || r.ActiveContacts() != 1 {
		t.Fatalf("after restart: %+v", bs)
	}
	lines, _ := r.List(ctx)
	if len(lines) != 1 {
		t.Fatalf("list %+v", lines)
	}
}

func TestRunReturnsOnListenerFailure(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	r, err := New(cfg, nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	for !r.Connected() {
		time.Sleep(5 * time.Millisecond)
	}
	_ = r.tcpLns[0].Close() // simulate the listener dying
	select {
	case err := <-done:
		if err == nil || errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}
