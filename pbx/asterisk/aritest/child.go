package aritest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// An ARI test server can run in a child process, so that a benchmark's
// figures (CPU time, allocations) are not the server's: the child is the
// benchmark's own test binary, re-executed with an environment variable
// set, which its TestMain hands to ServeChild first.

// ServeChild returns at once unless the environment variable env is set.
// When it is, the process is the child: ServeChild runs a server with opts,
// prints its URL on a line, then answers each line read on stdin with
// command(server, line) on a line of its own (nothing for ""), and exits
// when stdin closes.
func ServeChild(env string, opts Options, command func(s *Server, cmd string) string) {
	if os.Getenv(env) == "" {
		return
	}
	s, err := New(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(s.URL())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if out := command(s, sc.Text()); out != "" {
			fmt.Println(out)
		}
	}
	os.Exit(0)
}

// Child is an ARI test server in a child process (StartChild).
type Child struct {
	mu  sync.Mutex
	in  io.WriteCloser
	out *bufio.Reader
	url string
}

// StartChild re-executes the test binary with env set (see ServeChild) and
// returns the child once its server listens; the child ends with the test.
func StartChild(tb testing.TB, env string) *Child {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), env+"=1")
	in, _ := cmd.StdinPipe()
	outp, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = in.Close(); _ = cmd.Wait() }) // the child ends on its stdin's close; its exit status is not the test's
	c := &Child{in: in, out: bufio.NewReader(outp)}
	u, err := c.out.ReadString('\n')
	if err != nil {
		tb.Fatal(err)
	}
	c.url = strings.TrimSpace(u)
	return c
}

// URL is the child server's base URL.
func (c *Child) URL() string { return c.url }

// Do sends the child a command and returns its answer's line.
func (c *Child) Do(tb testing.TB, cmd string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := fmt.Fprintln(c.in, cmd); err != nil {
		tb.Fatal(err)
	}
	s, err := c.out.ReadString('\n')
	if err != nil {
		tb.Fatal(err)
	}
	return strings.TrimSpace(s)
}
