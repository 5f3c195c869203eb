package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pbxd/pbxd/internal/store/storetest"
)

// The README's shell examples are run exactly as printed: the blocks after a
// "<!-- readme-test: NAME -->" marker, in order, in one bash, against a real
// pbxd started from the binaries scripts/run builds, the way the block
// marked "NAME daemon" starts it. Each "# → text" line in a block is output
// the README promises; the run must print it.

// readmeCase is one example of the README: how its daemon starts and the
// shell blocks run against it.
type readmeCase struct {
	daemonEnv []string // NAME=VALUE pairs the README puts before scripts/run
	script    string
	expect    []string // the "# → " lines, whitespace-normalised
}

var (
	readmeMarker   = regexp.MustCompile(`^<!-- readme-test: ([a-z-]+)( daemon)? -->$`)
	readmeStartCmd = regexp.MustCompile(`^((?:[A-Z_]+=\S+ )*)scripts/run$`)
)

func readmeCases(t *testing.T, readme string) map[string]*readmeCase {
	t.Helper()
	cases := map[string]*readmeCase{}
	lines := strings.Split(readme, "\n")
	for i := 0; i < len(lines); i++ {
		m := readmeMarker.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		if i+1 >= len(lines) || lines[i+1] != "```sh" {
			t.Fatalf("README.md:%d: a readme-test marker must be followed by a ```sh block", i+1)
		}
		var block []string
		for i += 2; i < len(lines) && lines[i] != "```"; i++ {
			block = append(block, lines[i])
		}
		c := cases[m[1]]
		if c == nil {
			c = &readmeCase{}
			cases[m[1]] = c
		}
		if m[2] != "" {
			s := readmeStartCmd.FindStringSubmatch(strings.Join(block, "\n"))
			if s == nil || c.daemonEnv != nil {
				t.Fatalf("README.md: %s's daemon block must be one [VAR=value ...] scripts/run line, once: %q", m[1], block)
			}
			c.daemonEnv = append([]string{}, strings.Fields(s[1])...)
			continue
		}
		for _, l := range block {
			if e, ok := strings.CutPrefix(l, "# → "); ok {
				c.expect = append(c.expect, strings.Join(strings.Fields(e), " "))
			}
		}
		c.script += strings.Join(block, "\n") + "\n"
	}
	return cases
}

func TestReadme(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	cases := readmeCases(t, string(readme))

	// The figures the README states must stay among what the test checks.
	want := map[string][]string{
		"walk-through": {"[100,101,102,103]"},
		"seed-case":    {"24.95 EUR net + 4.99 tax = 29.94 EUR", "credit next bill: 34.95 EUR", "credit_balance: 34.95", "-34.95 15 of 30 days", "164.65 EUR net + 32.93 tax = 197.58 EUR"},
	}
	for name, figures := range want {
		c := cases[name]
		if c == nil || c.daemonEnv == nil || c.script == "" {
			t.Fatalf("README.md has no %q example with its daemon block", name)
		}
		for _, f := range figures {
			if !strings.Contains(strings.Join(c.expect, "\n"), f) {
				t.Errorf("README.md %s: no `# → ` line states %q", name, f)
			}
		}
	}
	if len(cases) != len(want) {
		t.Errorf("README.md has readme-test examples %v; this test knows %v", cases, want)
	}

	bin := buildBinaries(t, root)
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			runReadmeCase(t, root, bin, c)
		})
	}
}

// buildBinaries builds what scripts/run builds, into a temporary bin/.
func buildBinaries(t *testing.T, root string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bin")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", bin+"/", "./cmd/pbxd", "./cmd/pbxctl")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func runReadmeCase(t *testing.T, root, bin string, c *readmeCase) {
	// The shell's working directory stands for the repository: the
	// binaries in bin/, the state directories beside them, sip/testdata.
	dir := t.TempDir()
	if err := os.Symlink(bin, filepath.Join(dir, "bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "sip"), filepath.Join(dir, "sip")); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PBXD_") {
			env = append(env, kv)
		}
	}

	// The daemon as the README starts it, except for what a test must
	// choose: its own database and loopback port 0.
	daemonEnv := append(append([]string{}, env...), c.daemonEnv...)
	daemonEnv = append(daemonEnv,
		"PBXD_DATABASE_URL="+storetest.NewDatabase(t),
		"PBXD_HTTP_LISTEN=127.0.0.1:0",
		"PBXD_SIP_LISTEN=127.0.0.1:0",
	)
	url := startBinary(t, dir, filepath.Join(bin, "pbxd"), daemonEnv)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	sh := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", c.script)
	sh.Dir = dir
	sh.Env = append(env, "PBXD_URL="+url)
	out, err := sh.CombinedOutput()
	t.Logf("README blocks:\n%s\noutput:\n%s", c.script, out)
	if err != nil {
		t.Fatalf("the README's blocks fail as printed: %v", err)
	}
	var got []string
	for _, l := range strings.Split(string(out), "\n") {
		got = append(got, strings.Join(strings.Fields(l), " "))
	}
	printed := strings.Join(got, "\n")
	for _, e := range c.expect {
		if !strings.Contains(printed, e) {
			t.Errorf("the README says the output has %q; it has not", e)
		}
	}
}

// startBinary runs pbxd until the test ends and returns its API's URL, read
// from its "pbxd ready" log line. It must stop cleanly on SIGTERM.
func startBinary(t *testing.T, dir, path string, env []string) string {
	t.Helper()
	cmd := exec.Command(path)
	cmd.Dir, cmd.Env = dir, env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		mu  sync.Mutex
		log bytes.Buffer
	)
	addr := make(chan string, 1)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			log.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if m := readyLine.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	logText := func() string { mu.Lock(); defer mu.Unlock(); return log.String() }
	stop := func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-drained
		return cmd.Wait()
	}
	select {
	case a := <-addr:
		t.Cleanup(func() {
			if err := stop(); err != nil {
				t.Errorf("pbxd did not stop cleanly on SIGTERM: %v\n%s", err, logText())
			}
			if strings.Contains(logText(), "level=ERROR") {
				t.Errorf("pbxd logged an error:\n%s", logText())
			}
		})
		return "http://" + a
	case <-time.After(time.Minute):
		err := stop()
		t.Fatalf("pbxd not ready within a minute (%v):\n%s", errors.Join(err), logText())
	}
	return ""
}

var readyLine = regexp.MustCompile(`msg="pbxd ready".* http=(\S+)`)
