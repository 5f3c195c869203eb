package pgcluster

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// As root the server runs as postgres. A state directory inside a closed
// home directory (root's is 0700) must not make pbxd open that directory:
// the cluster goes under postgres's home and the state directory links to it.
func TestRootClusterInClosedDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the postgres user is only used when running as root")
	}
	home := t.TempDir()
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(home, ".pbxd", "postgres")
	c, err := Start(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(c.Dir) })
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(home)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("the closed directory's mode changed: %v %v", fi.Mode(), err)
	}
	target, err := os.Readlink(dir)
	if err != nil || target != c.Dir || !strings.HasPrefix(target, filepath.Join(c.as.HomeDir, "pbxd")+"/") {
		t.Fatalf("%s links to %q (%v); cluster in %s", dir, target, err, c.Dir)
	}

	// The next start finds the same cluster through the link.
	again, err := Start(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := again.Stop(); err != nil {
			t.Error(err)
		}
	}()
	if again.Dir != c.Dir {
		t.Fatalf("second start used %s, first %s", again.Dir, c.Dir)
	}
	conn, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(again.Port)))
	if err != nil {
		t.Fatalf("server not listening: %v", err)
	}
	_ = conn.Close() // connecting was the check
}

// A directory postgres can reach is used in place.
func TestRootClusterInOpenDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the postgres user is only used when running as root")
	}
	home, err := os.MkdirTemp("", "pgcluster-open-") // t.TempDir's parent is 0700
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(home) })
	if err := os.Chmod(home, 0o711); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(home, "postgres")
	c, err := Start(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	}()
	if c.Dir != dir {
		t.Fatalf("cluster in %s, want %s", c.Dir, dir)
	}
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("%s: %v %v", dir, fi.Mode(), err)
	}
}
