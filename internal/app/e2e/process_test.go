package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pbxd/pbxd/internal/app/apptest"
)

// buildPbxd builds the real pbxd binary into the test's directory.
func buildPbxd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pbxd")
	build := exec.Command("go", "build", "-o", bin, "github.com/pbxd/pbxd/cmd/pbxd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build pbxd: %v\n%s", err, out)
	}
	return bin
}

// pbxdProcess runs the real pbxd binary on databaseURL.
type pbxdProcess struct {
	cmd  *exec.Cmd
	base string // http://host:port of the API
	sip  string // UDP address of the built-in registrar

	mu   sync.Mutex
	logs []string // the last lines of its log
}

var (
	readyAddr = regexp.MustCompile(`pbxd ready.*http=(\S+)`)
	sipAddr   = regexp.MustCompile(`sip registrar listening.*udp=(\S+)`)
)

// pbxdOptions adjust a daemon: more environment (a later variable wins)
// and command-line arguments.
type pbxdOptions struct {
	Env  []string
	Args []string
}

func startPbxd(t *testing.T, bin, databaseURL, stateDir string) *pbxdProcess {
	t.Helper()
	return startPbxdWith(t, bin, databaseURL, stateDir, pbxdOptions{})
}

func startPbxdWith(t *testing.T, bin, databaseURL, stateDir string, o pbxdOptions) *pbxdProcess {
	t.Helper()
	cmd := exec.Command(bin, o.Args...)
	cmd.Env = append(os.Environ(), "PBXD_DATABASE_URL="+databaseURL, "PBXD_STATE_DIR="+stateDir, "PBXD_HTTP_LISTEN=127.0.0.1:0",
		"PBXD_SIP_LISTEN=127.0.0.1:0", "PBXD_OPERATOR_TOKEN="+apptest.OperatorToken, "PBXD_SECRET_KEY=uFkGzN1vNFsOCwVd0y6CqvbmTzQ2R+kaZiGm3cKpZ0Y=",
		"PBXD_TEST_CLOCK=2026-11-16T10:00:00+01:00")
	cmd.Env = append(cmd.Env, o.Env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = nil
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &pbxdProcess{cmd: cmd}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("pbxd %s log tail:\n%s", p.base, p.logTail())
		}
	})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			if m := sipAddr.FindStringSubmatch(line); m != nil {
				p.sip = m[1]
			}
			if m := readyAddr.FindStringSubmatch(line); m != nil {
				p.base = "http://" + m[1]
			}
			if p.logs = append(p.logs, line); len(p.logs) > 200 {
				p.logs = p.logs[1:]
			}
			done := p.base != "" && !sent
			p.mu.Unlock()
			if done {
				sent = true
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(60 * time.Second):
		t.Fatalf("pbxd did not become ready:\n%s", p.logTail())
	}
	return p
}

func (p *pbxdProcess) logTail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.logs, "\n")
}

// sipAddress waits for the registrar's address in the log.
func (p *pbxdProcess) sipAddress(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		p.mu.Lock()
		a := p.sip
		p.mu.Unlock()
		if a != "" {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("no sip address in the log:\n%s", p.logTail())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitLog waits for a log line containing s logged after since, and
// returns how long after since it was logged (by the line's own time).
func (p *pbxdProcess) waitLog(t *testing.T, since time.Time, s string) time.Duration {
	t.Helper()
	_, took := waitLogAny(t, since, s, p)
	return took
}

// waitLogAny waits until one of ps logs a line containing s, stamped after
// since, and tells which one and how long after since.
func waitLogAny(t *testing.T, since time.Time, s string, ps ...*pbxdProcess) (*pbxdProcess, time.Duration) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		for _, p := range ps {
			if took, ok := p.loggedSince(since, s); ok {
				return p, took
			}
		}
		if time.Now().After(deadline) {
			var tails strings.Builder
			for _, p := range ps {
				tails.WriteString(p.logTail())
			}
			t.Fatalf("no %q in the log since %v:\n%s", s, since, tails.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// loggedSince reports whether p logged a line containing s stamped after
// since, and how long after.
func (p *pbxdProcess) loggedSince(since time.Time, s string) (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.logs {
		if !strings.Contains(l, s) || !strings.HasPrefix(l, "time=") {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, strings.Fields(l)[0][len("time="):])
		if err == nil && at.After(since) {
			return at.Sub(since), true
		}
	}
	return 0, false
}
