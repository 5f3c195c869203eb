package app_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pbxd/pbxd/internal/app"
	"github.com/pbxd/pbxd/internal/app/apptest"
	"github.com/pbxd/pbxd/internal/store/storetest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }() // only its port was wanted
	return l.Addr().String()
}

func baseEnv(t *testing.T) map[string]string {
	return map[string]string{
		"PBXD_DATABASE_URL":   storetest.NewDatabase(t),
		"PBXD_STATE_DIR":      t.TempDir(),
		"PBXD_HTTP_LISTEN":    freeAddr(t),
		"PBXD_SIP_LISTEN":     "127.0.0.1:0",
		"PBXD_OPERATOR_TOKEN": "t",
	}
}

// The daemon tells systemd READY=1 only once it serves, RELOADING=1 then
// READY=1 around a SIGHUP, pings the watchdog, and STOPPING=1 then exits 0
// on SIGTERM within the shutdown bound.
func TestLifecycleNotifiesSystemd(t *testing.T) {
	dir := t.TempDir()
	sockPath := filepath.Join(dir, "notify.sock")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sock.Close() }() // the test's receiving end
	msgs := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := sock.Read(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	env := baseEnv(t)
	env["NOTIFY_SOCKET"] = sockPath
	env["WATCHDOG_USEC"] = "200000"
	cfgFile := filepath.Join(dir, "pbxd.yaml")
	if err := os.WriteFile(cfgFile, []byte("log:\n  level: info\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := startMain([]string{"-config", cfgFile}, env)
	signals, logs, exit := m.signals, m.logs, m.exit

	expect := func(want string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case m := <-msgs:
				// STATUS= lines are matched by their start: the lines
				// gauge may not be filled yet when pbxd is ready.
				if m == want || strings.HasSuffix(want, "…") && strings.HasPrefix(m, strings.TrimSuffix(want, "…")) {
					return
				}
			case <-deadline:
				t.Fatalf("no %q from the daemon; logs:\n%s", want, logs.String())
			}
		}
	}
	expect("READY=1")
	expect("STATUS=ready; …")
	// Ready means serving: /healthz answers now.
	conn, err := net.DialTimeout("tcp", env["PBXD_HTTP_LISTEN"], time.Second)
	if err != nil {
		t.Fatalf("READY=1 before the HTTP listener: %v", err)
	}
	if err := conn.Close(); err != nil { // an open idle connection would hold the shutdown for 5 s
		t.Fatal(err)
	}
	expect("WATCHDOG=1")

	if err := os.WriteFile(cfgFile, []byte("log:\n  level: debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	signals <- syscall.SIGHUP
	expect("RELOADING=1")
	expect("READY=1")
	expect("STATUS=ready; …")
	if !strings.Contains(logs.String(), "configuration reloaded") {
		t.Fatalf("no reload in the logs:\n%s", logs.String())
	}

	start := time.Now()
	signals <- syscall.SIGTERM
	expect("STOPPING=1")
	expect("STATUS=stopping")
	select {
	case code := <-exit:
		if code != 0 {
			t.Fatalf("exit code %d after SIGTERM; logs:\n%s", code, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit within the shutdown bound")
	}
	t.Logf("shutdown took %s", time.Since(start))
	// The socket came from Main's getenv only: the process environment,
	// shared by every daemon in it, is left alone.
	if v, ok := os.LookupEnv("NOTIFY_SOCKET"); ok {
		t.Errorf("Main set NOTIFY_SOCKET=%q in the process environment", v)
	}
}

// mainRun is app.Main running in the background, as cmd/pbxd runs it.
type mainRun struct {
	signals chan os.Signal
	logs    *apptest.LogBuffer
	exit    chan int
}

// startMain runs app.Main with args and env until it is sent SIGTERM.
func startMain(args []string, env map[string]string) mainRun {
	m := mainRun{signals: make(chan os.Signal, 1), logs: &apptest.LogBuffer{}, exit: make(chan int, 1)}
	go func() { m.exit <- app.Main(args, func(k string) string { return env[k] }, m.signals, m.logs) }()
	return m
}

// A reload with a broken file leaves the running configuration in place.
func TestBadReloadKeepsRunning(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "pbxd.yaml")
	if err := os.WriteFile(cfgFile, []byte("log:\n  level: info\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := baseEnv(t)
	m := startMain([]string{"-config", cfgFile}, env)
	signals, logs, exit := m.signals, m.logs, m.exit
	waitFor(t, logs, "pbxd ready")
	if err := os.WriteFile(cfgFile, []byte("log:\n  levle: debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	signals <- syscall.SIGHUP
	waitFor(t, logs, "reload failed")
	if !strings.Contains(logs.String(), "unknown key log.levle") {
		t.Fatalf("the reload error does not name the key:\n%s", logs.String())
	}
	signals <- syscall.SIGTERM
	if code := <-exit; code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func waitFor(t *testing.T, logs *apptest.LogBuffer, s string) {
	t.Helper()
	for i := 0; i < 300; i++ {
		if strings.Contains(logs.String(), s) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("never logged %q:\n%s", s, logs.String())
}

// Bad start-up conditions give one clear line and a non-zero exit, never a
// panic.
func TestStartupFailures(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = busy.Close() }() // holds the port for the test
	dir := t.TempDir()
	badYAML := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(badYAML, []byte("http:\n  listn: x\n"), 0o600)
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		want string
		code int // a configuration error is one systemd must not restart on
	}{
		{"missing config", []string{"-config", filepath.Join(dir, "absent.yaml")}, nil, "read config", app.ExitConfig},
		{"unknown key", []string{"-config", badYAML}, nil, "unknown key http.listn", app.ExitConfig},
		{"bad DSN", nil, map[string]string{"PBXD_DATABASE_URL": "mysql://x"}, "database.url", app.ExitConfig},
		{"unreachable database", []string{"-config", writeConf(t, "database:\n  connect_wait: 1s\n")}, map[string]string{"PBXD_DATABASE_URL": "postgres://postgres@127.0.0.1:1/x?connect_timeout=1"}, "database unreachable", 1},
		{"port in use", nil, map[string]string{"PBXD_HTTP_LISTEN": busy.Addr().String()}, "address already in use", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := baseEnv(t)
			for k, v := range c.env {
				env[k] = v
			}
			var logs apptest.LogBuffer
			code := app.Main(c.args, func(k string) string { return env[k] }, make(chan os.Signal), &logs)
			if code != c.code || !strings.Contains(logs.String(), c.want) || strings.Contains(logs.String(), "panic") {
				t.Fatalf("exit %d, logs:\n%s\nwant exit %d mentioning %q", code, logs.String(), c.code, c.want)
			}
		})
	}
}

func writeConf(t *testing.T, body string) string {
	p := filepath.Join(t.TempDir(), fmt.Sprintf("c%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Secrets generated into the state directory warn once, when generated; a
// restart that reuses them says so at info level.
func TestGeneratedSecretsWarnOnce(t *testing.T) {
	env := baseEnv(t)
	delete(env, "PBXD_OPERATOR_TOKEN")
	for i, want := range []string{"level=WARN msg=\"no operator token configured: generating", "level=INFO msg=\"no operator token configured: using the one"} {
		m := startMain(nil, env)
		signals, logs, exit := m.signals, m.logs, m.exit
		waitFor(t, logs, "pbxd ready")
		signals <- syscall.SIGTERM
		if code := <-exit; code != 0 {
			t.Fatalf("start %d: exit %d:\n%s", i+1, code, logs.String())
		}
		if !strings.Contains(logs.String(), want) || (i > 0 && strings.Contains(logs.String(), "level=WARN msg=\"no ")) {
			t.Fatalf("start %d: want %q and no other warning about secrets:\n%s", i+1, want, logs.String())
		}
	}
}

// Under systemd (JOURNAL_STREAM set) each line carries its syslog priority,
// so journalctl -p warning shows pbxd's warnings and errors.
func TestJournalPriorities(t *testing.T) {
	env := baseEnv(t)
	delete(env, "PBXD_OPERATOR_TOKEN") // generating one is a warning
	env["JOURNAL_STREAM"] = "8:12345"
	cfgFile := writeConf(t, "log:\n  level: debug\n")
	m := startMain([]string{"-config", cfgFile}, env)
	signals, logs, exit := m.signals, m.logs, m.exit
	waitFor(t, logs, "pbxd ready")
	if err := os.WriteFile(cfgFile, []byte("log:\n  levle: debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	signals <- syscall.SIGHUP
	waitFor(t, logs, "reload failed")
	signals <- syscall.SIGTERM
	if code := <-exit; code != 0 {
		t.Fatalf("exit %d", code)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		level := ""
		if _, rest, ok := strings.Cut(line, " level="); ok {
			level, _, _ = strings.Cut(rest, " ")
		}
		want := map[string]string{"DEBUG": "<7>", "INFO": "<6>", "WARN": "<4>", "ERROR": "<3>"}[level]
		if want == "" || !strings.HasPrefix(line, want+"time=") {
			t.Errorf("line without its priority prefix (want %q): %q", want, line)
		}
		seen[level] = true
	}
	if len(seen) != 4 {
		t.Errorf("levels seen: %v; the test should see all four", seen)
	}

	// A configuration error before the logger exists is prefixed too.
	logs = &apptest.LogBuffer{}
	code := app.Main([]string{"-config", filepath.Join(t.TempDir(), "absent.yaml")}, func(k string) string { return env[k] }, nil, logs)
	if code != app.ExitConfig || !strings.HasPrefix(logs.String(), "<3>") {
		t.Errorf("exit %d, log %q: want %d and a <3> line", code, logs.String(), app.ExitConfig)
	}
}
