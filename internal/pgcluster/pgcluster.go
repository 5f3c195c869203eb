// Package pgcluster starts a private PostgreSQL cluster under a directory.
// pbxd uses it when no database URL is configured (the zero-set-up default),
// and the test harness uses it when no test database URL is given.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Cluster is a running private PostgreSQL server.
type Cluster struct {
	Dir  string // data directory
	Port int
	bin  string
	as   *user.User // non-nil when run as another user (root → postgres)
}

// URL returns a connection URL for database db.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// FindBin returns the directory holding initdb, pg_ctl and postgres: the
// newest /usr/lib/postgresql/*/bin (Debian), else the one on PATH.
func FindBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("no PostgreSQL server binaries found (install Debian's postgresql package, or set PBXD_DATABASE_URL)")
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// Start initialises dir if it holds no cluster yet and starts PostgreSQL on a
// free loopback port, with trust auth for local connections only. As root it
// runs the server as the postgres user, since PostgreSQL refuses to run as
// root. A server already running on dir (left by a crash) is stopped first.
func Start(ctx context.Context, dir string) (*Cluster, error) {
	bin, err := FindBin()
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the postgres user: %w", err)
		}
		c.as = u
	}
	if c.as != nil {
		if dir, err = c.placeData(dir); err != nil {
			return nil, err
		}
		c.Dir = dir
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	if err := c.chown(dir); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if out, err := c.run(ctx, "initdb", "-D", dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions"); err != nil {
			return nil, fmt.Errorf("initdb: %w: %s", err, out)
		}
	}
	_, _ = c.run(ctx, "pg_ctl", "-D", dir, "-m", "fast", "stop") // a leftover from a crash
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	c.Port = port
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c max_connections=200", port, dir)
	if out, err := c.run(ctx, "pg_ctl", "-D", dir, "-l", filepath.Join(dir, "server.log"), "-o", opts, "-w", "-t", "60", "start"); err != nil {
		return nil, fmt.Errorf("pg_ctl start: %w: %s", err, out)
	}
	return c, nil
}

// Stop stops the server (fast shutdown: open sessions are disconnected).
func (c *Cluster) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := c.run(ctx, "pg_ctl", "-D", c.Dir, "-m", "fast", "-w", "stop"); err != nil {
		return fmt.Errorf("pg_ctl stop: %w: %s", err, out)
	}
	return nil
}

// StopWhenExits stops the server and removes its directory once process pid
// is gone: the test harness's private cluster must not outlive the test
// binary, which has no hook that runs at exit.
func (c *Cluster) StopWhenExits(pid int) error {
	stop := filepath.Join(c.bin, "pg_ctl") + " -D " + c.Dir + " -m immediate stop"
	if c.as != nil {
		stop = "runuser -u " + c.as.Username + " -- " + stop
	}
	script := fmt.Sprintf("while kill -0 %d 2>/dev/null; do sleep 1; done; %s >/dev/null 2>&1; rm -rf %s", pid, stop, c.Dir)
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start cluster reaper: %w", err)
	}
	return cmd.Process.Release()
}

func (c *Cluster) run(ctx context.Context, tool string, args ...string) (string, error) {
	path := filepath.Join(c.bin, tool)
	var cmd *exec.Cmd
	if c.as != nil {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.as.Username, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// placeData decides where the cluster's files go when the server runs as
// the postgres user: in dir itself when postgres can reach it, else in a
// directory of postgres's own home (/var/lib/postgresql/pbxd/...) that dir
// becomes a symbolic link to. No permission of dir's parents (a home
// directory, typically /root at 0700) is ever changed. It returns the real
// data directory.
func (c *Cluster) placeData(dir string) (string, error) {
	switch target, err := os.Readlink(dir); {
	case err == nil: // placed by an earlier start
		return target, nil
	case !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.EINVAL):
		return "", fmt.Errorf("inspect %s: %w", dir, err)
	}
	unreachable := c.unreachableParent(dir)
	if unreachable == "" {
		return dir, nil
	}
	if _, err := os.Stat(dir); err == nil {
		return "", fmt.Errorf("the postgres user cannot reach %s (%s is closed to it): remove it, or open %s to others (chmod o+x)", dir, unreachable, unreachable)
	}
	home := filepath.Join(c.as.HomeDir, "pbxd")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", home, err)
	}
	target, err := os.MkdirTemp(home, "cluster-")
	if err != nil {
		return "", fmt.Errorf("create a data directory under %s: %w", home, err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return "", err
	}
	if err := os.Symlink(target, dir); err != nil {
		return "", fmt.Errorf("link %s to %s: %w", dir, target, err)
	}
	return target, nil
}

// unreachableParent returns the first parent of dir that the postgres user
// may not traverse, or "" when it can reach dir.
func (c *Cluster) unreachableParent(dir string) string {
	uid, _ := strconv.Atoi(c.as.Uid)
	gid, _ := strconv.Atoi(c.as.Gid)
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err == nil {
			st, _ := fi.Sys().(*syscall.Stat_t)
			perm := fi.Mode().Perm()
			ok := perm&0o001 != 0 ||
				(st != nil && int(st.Uid) == uid && perm&0o100 != 0) ||
				(st != nil && int(st.Gid) == gid && perm&0o010 != 0)
			if !ok {
				return p
			}
		}
		if p == "/" || p == "." {
			return ""
		}
	}
}

// chown hands the data directory to the server's user.
func (c *Cluster) chown(dir string) error {
	if c.as == nil {
		return nil
	}
	uid, _ := strconv.Atoi(c.as.Uid)
	gid, _ := strconv.Atoi(c.as.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return fmt.Errorf("chown %s to postgres: %w", dir, err)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	return port, nil
}
