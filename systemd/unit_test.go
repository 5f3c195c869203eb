package systemd_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pbxd/pbxd/internal/app"
)

const (
	unitFile     = "pbxd.service"
	sysusersFile = "pbxd.sysusers"
	tmpfilesFile = "pbxd.tmpfiles"

	// The real binary is not installed where tests run; verify needs an
	// executable at ExecStart=, so the test copy points at this one.
	daemonPath    = "/usr/bin/pbxd"
	stubPath      = "/bin/true"
	reloadCommand = "/bin/kill" // kept as is: it must exist on the host too
)

// unit is a minimally parsed systemd unit: section -> key -> values in order
// (keys like LoadCredential= repeat).
type unit map[string]map[string][]string

// parseUnit understands what pbxd.service uses: [Section] headers, Key=Value
// lines, '#' and ';' comments, and backslash continuation lines.
func parseUnit(t *testing.T, text string) unit {
	t.Helper()
	u := unit{}
	section := ""
	var pending string
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if pending == "" && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			pending += rest + " "
			continue
		}
		line, pending = pending+line, ""
		if strings.HasPrefix(line, "[") {
			if !strings.HasSuffix(line, "]") {
				t.Fatalf("%s:%d: bad section header %q", unitFile, n, line)
			}
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			t.Fatalf("%s:%d: not a Key=Value line inside a section: %q", unitFile, n, line)
		}
		key = strings.TrimSpace(key)
		u[section][key] = append(u[section][key], strings.TrimSpace(value))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if pending != "" {
		t.Fatalf("%s: file ends inside a continuation line", unitFile)
	}
	return u
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestUnitDirectives(t *testing.T) {
	u := parseUnit(t, readFile(t, unitFile))

	// Exact single values.
	exact := []struct{ section, key, want string }{
		{"Service", "Type", "notify"},
		{"Service", "NotifyAccess", "main"},
		{"Service", "ExecStart", daemonPath + " -config /etc/pbxd/pbxd.yaml"},
		{"Service", "ExecReload", reloadCommand + " -HUP $MAINPID"},
		{"Service", "WatchdogSec", "30s"},
		{"Service", "Restart", "on-failure"},
		{"Service", "RestartSec", "5s"},
		{"Service", "RestartPreventExitStatus", strconv.Itoa(app.ExitConfig)},
		{"Unit", "StartLimitIntervalSec", "10min"},
		{"Unit", "StartLimitBurst", "10"},
		{"Service", "TimeoutStopSec", "30s"},
		{"Service", "User", "pbxd"},
		{"Service", "Group", "pbxd"},
		{"Service", "StateDirectory", "pbxd"},
		{"Service", "ConfigurationDirectory", "pbxd"},
		{"Service", "NoNewPrivileges", "yes"},
		{"Service", "ProtectSystem", "strict"},
		{"Service", "ProtectHome", "yes"},
		{"Service", "PrivateTmp", "yes"},
		{"Service", "PrivateDevices", "yes"},
		{"Service", "ProtectKernelTunables", "yes"},
		{"Service", "ProtectKernelModules", "yes"},
		{"Service", "ProtectKernelLogs", "yes"},
		{"Service", "ProtectControlGroups", "yes"},
		{"Service", "ProtectClock", "yes"},
		{"Service", "ProtectHostname", "yes"},
		{"Service", "RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6 AF_NETLINK"},
		{"Service", "RestrictNamespaces", "yes"},
		{"Service", "RestrictRealtime", "yes"},
		{"Service", "RestrictSUIDSGID", "yes"},
		{"Service", "LockPersonality", "yes"},
		{"Service", "MemoryDenyWriteExecute", "yes"},
		{"Service", "SystemCallArchitectures", "native"},
		{"Service", "SystemCallFilter", "@system-service"},
		{"Service", "CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"},
		{"Service", "AmbientCapabilities", "CAP_NET_BIND_SERVICE"},
		{"Service", "UMask", "0077"},
		{"Service", "LimitNOFILE", "65536"},
		{"Install", "WantedBy", "multi-user.target"},
	}
	for _, d := range exact {
		got := u[d.section][d.key]
		if len(got) != 1 || got[0] != d.want {
			t.Errorf("[%s] %s=: got %q, want exactly one %q", d.section, d.key, got, d.want)
		}
	}

	// Space-separated lists that must contain some names (and may hold more).
	contains := []struct {
		section, key string
		want         []string
	}{
		{"Unit", "Wants", []string{"network-online.target"}},
		{"Unit", "After", []string{"network-online.target", "postgresql.service"}},
	}
	for _, d := range contains {
		var have []string
		for _, v := range u[d.section][d.key] {
			have = append(have, strings.Fields(v)...)
		}
		for _, w := range d.want {
			if !slices.Contains(have, w) {
				t.Errorf("[%s] %s=: %q missing from %q", d.section, d.key, w, have)
			}
		}
	}

	// Ordering after a local PostgreSQL, never pulling it in: a database
	// the operator stopped stays stopped.
	for _, key := range []string{"Wants", "Requires", "BindsTo", "Requisite"} {
		for _, v := range u["Unit"][key] {
			if strings.Contains(v, "postgresql") {
				t.Errorf("[Unit] %s=%s starts PostgreSQL with pbxd; After= orders them", key, v)
			}
		}
	}

	// The credential IDs are the file names the daemon reads from
	// $CREDENTIALS_DIRECTORY (internal/config).
	creds := map[string]string{}
	for _, v := range u["Service"]["LoadCredential"] {
		id, path, _ := strings.Cut(v, ":")
		creds[id] = path
	}
	for _, id := range []string{"database_url", "secret_key", "operator_token"} {
		if want := "/etc/pbxd/credentials/" + id; creds[id] != want {
			t.Errorf("LoadCredential=%s: path %q, want %q", id, creds[id], want)
		}
	}

	// Secrets go through credentials only, never Environment=.
	for _, v := range u["Service"]["Environment"] {
		if strings.Contains(v, "DATABASE_URL") || strings.Contains(v, "SECRET_KEY") || strings.Contains(v, "OPERATOR_TOKEN") {
			t.Errorf("secret in Environment=%s; use LoadCredential=", v)
		}
	}
}

// The user the unit runs as is the one sysusers.d creates, with its home in
// the state directory.
func TestSysusersMatchesUnit(t *testing.T) {
	u := parseUnit(t, readFile(t, unitFile))
	user := u["Service"]["User"]
	found := false
	for _, line := range strings.Split(readFile(t, sysusersFile), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "u" && len(user) == 1 && f[1] == user[0] {
			found = true
			if !strings.HasSuffix(line, " /var/lib/pbxd") {
				t.Errorf("%s: user %s should have home /var/lib/pbxd: %q", sysusersFile, f[1], line)
			}
		}
	}
	if !found {
		t.Errorf("%s declares no 'u %v' line", sysusersFile, user)
	}
}

// systemdTool finds a systemd binary or fails with how to install it.
func systemdTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if _, serr := os.Stat("/usr/bin/" + name); serr == nil {
			return "/usr/bin/" + name
		}
		t.Fatalf("%s not found (%v): install Debian's systemd package (apt-get install systemd)", name, err)
	}
	return path
}

// run runs a systemd tool with a pinned, predictable environment: inherited
// SYSTEMD_* variables (e.g. SYSTEMD_UNIT_PATH, or SYSTEMD_LOG_LEVEL=debug,
// which prints unrelated "Failed to parse system call" and "*.mount: Failed
// to load configuration" lines about the host's seccomp and units) are
// dropped. Level info is systemd's default and includes every warning.
func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, systemdTool(t, name), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SYSTEMD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env,
		"SYSTEMD_LOG_LEVEL=info",
		"SYSTEMD_LOG_TARGET=console", // stderr, never the journal
		"SYSTEMD_LOG_COLOR=0",
		"SYSTEMD_LOG_LOCATION=0",
		"SYSTEMD_LOG_TIME=0",
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	t.Logf("$ %s %s\n%s(exit: %v)", name, strings.Join(args, " "), out.String(), err)
	return out.String(), err
}

// otherUnitLine matches a message whose location is another unit, as
// "foo.service: ..." or "/lib/systemd/system/foo.service:12: ...".
var otherUnitLine = regexp.MustCompile(`^(?:\S*/)?([A-Za-z0-9:_.\\@-]+\.(?:service|socket|target|mount|automount|swap|path|timer|slice|scope|device))(?::\d+)?: `)

// verify runs systemd-analyze verify on a copy of the unit text and returns
// the output lines that are, or may be, about pbxd.service.
func verify(t *testing.T, text string) []string {
	t.Helper()
	if _, err := os.Stat(reloadCommand); err != nil {
		t.Fatalf("ExecReload= needs %s on this host: install Debian's procps package (%v)", reloadCommand, err)
	}
	old := "ExecStart=" + daemonPath + " "
	if strings.Count(text, old) != 1 {
		t.Fatalf("%s: expected exactly one %q line to substitute", unitFile, old)
	}
	text = strings.Replace(text, old, "ExecStart="+stubPath+" ", 1)
	dir := t.TempDir()
	path := filepath.Join(dir, unitFile) // the name must stay pbxd.service
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	// --man=no: Documentation= is a URL, and man pages may be absent in CI.
	// --recursive-errors=no: a non-zero exit only for problems in pbxd.service
	// itself, not in the host's own units it depends on (multi-user.target,
	// postgresql.service); their lines are still inspected below.
	out, err := run(t, "systemd-analyze", "verify", "--man=no", "--recursive-errors=no", path)
	var bad []string
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		// The only lines ignored are those systemd itself attributes to a
		// different unit and that do not mention pbxd at all: those come from
		// the host's units loaded as dependencies, not from ours.
		if m := otherUnitLine.FindStringSubmatch(line); m != nil && m[1] != unitFile && !strings.Contains(line, "pbxd") {
			continue
		}
		bad = append(bad, line)
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("systemd-analyze: %v", err)
	}
	if err != nil {
		bad = append(bad, "systemd-analyze verify: "+err.Error())
	}
	return bad
}

func TestUnitVerifies(t *testing.T) {
	if bad := verify(t, readFile(t, unitFile)); len(bad) > 0 {
		t.Errorf("systemd-analyze verify reported on %s:\n%s", unitFile, strings.Join(bad, "\n"))
	}
}

// The check above must not pass because warnings are hidden (log level,
// log target): a mistake in a copy of the unit must be reported.
func TestUnitVerifyCatchesMistakes(t *testing.T) {
	text := strings.Replace(readFile(t, unitFile), "\n[Service]\n", "\n[Service]\nNoSuchDirective=1\n", 1)
	bad := verify(t, text)
	if !slices.ContainsFunc(bad, func(l string) bool { return strings.Contains(l, "NoSuchDirective") }) {
		t.Errorf("an unknown key was not reported; got %q", bad)
	}
}

func TestSysusersParses(t *testing.T) {
	src, err := filepath.Abs(sysusersFile)
	if err != nil {
		t.Fatal(err)
	}
	// Dry run against an empty root: parses the file and says what it would
	// create, writes nothing.
	out, err := run(t, "systemd-sysusers", "--dry-run", "--root="+t.TempDir(), src)
	if err != nil {
		t.Fatalf("systemd-sysusers: %v", err)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, sysusersFile) {
			t.Errorf("systemd-sysusers: %s", line)
		}
	}
	if !strings.Contains(out, "Creating user 'pbxd'") {
		t.Errorf("systemd-sysusers would not create user pbxd")
	}
}

func TestTmpfilesCreates(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("creating root-owned directories needs root")
	}
	src, err := filepath.Abs(tmpfilesFile)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	out, err := run(t, "systemd-tmpfiles", "--create", "--root="+root, src)
	if err != nil {
		t.Fatalf("systemd-tmpfiles: %v", err)
	}
	if strings.TrimSpace(out) != "" {
		t.Errorf("systemd-tmpfiles printed:\n%s", out)
	}
	fi, err := os.Stat(filepath.Join(root, "etc/pbxd/credentials"))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); !fi.IsDir() || perm != 0o700 {
		t.Errorf("/etc/pbxd/credentials: mode %v, want drwx------", fi.Mode())
	}
}
