// Package sipptest runs sipp (Debian's sip-tester) scenarios from tests, so
// the registrar is exercised by a real SIP client. The scenarios live in
// sip/testdata/sipp.
package sipptest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// Result is one sipp run.
type Result struct {
	Out      string // sipp's output and error log
	Messages string // the -trace_msg log
	Err      error  // non-nil when a check of the scenario failed
}

// MustPass fails the test unless every check of the scenario passed.
func (r Result) MustPass(t testing.TB, what string) {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("%s: sipp failed: %v\n%s\n--- messages ---\n%s", what, r.Err, Tail(r.Out, 3000), Tail(r.Messages, 4000))
	}
}

// MustFail fails the test if the scenario passed.
func (r Result) MustFail(t testing.TB, what string) {
	t.Helper()
	if r.Err == nil {
		t.Fatalf("%s: sipp passed, want a failure\n--- messages ---\n%s", what, Tail(r.Messages, 4000))
	}
}

// Scenario returns the path of a scenario file in sip/testdata/sipp.
func Scenario(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "sipp", name)
}

// Run runs scenario once (-m 1) as user/password of domain against target
// over transport "u1" (UDP) or "t1" (TCP), from local port port (0: a free
// one). A missing sipp fails the test: CI installs it.
func Run(t testing.TB, target, transport, scenario, domain, user, password string, port int, extra ...string) Result {
	t.Helper()
	bin, err := exec.LookPath("sipp")
	if err != nil {
		t.Fatal("sipp not installed (apt-get install sip-tester): the registrar integration tests need it")
	}
	if port == 0 {
		port = FreePort(t)
	}
	dir := t.TempDir()
	csv := filepath.Join(dir, "users.csv")
	if err := os.WriteFile(csv, []byte("SEQUENTIAL\n"+user+";"+password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	msgs := filepath.Join(dir, "messages.log")
	args := []string{target, "-sf", scenario, "-inf", csv, "-key", "sipdomain", domain, "-auth_uri", domain,
		"-i", "127.0.0.1", "-p", fmt.Sprint(port), "-t", transport, "-m", "1",
		"-timeout", "20s", "-recv_timeout", "6000", "-nostdin", "-trace_msg", "-message_file", msgs,
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log")}
	args = append(args, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	m, _ := os.ReadFile(msgs)
	e, _ := os.ReadFile(filepath.Join(dir, "errors.log"))
	return Result{Out: string(out) + string(e), Messages: string(m), Err: err}
}

// FreePort returns a UDP and TCP port free on 127.0.0.1 right now.
func FreePort(t testing.TB) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		u, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		_ = u.Close() // only probing that the port is free
		if err == nil {
			_ = l.Close() // only probing that the port is free
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// Tail returns the last n bytes of s.
func Tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
