package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pbxd/pbxd/internal/app/apptest"
)

func ctl(t *testing.T, d *apptest.Daemon, args ...string) (string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	env := map[string]string{"PBXD_URL": d.URL, "PBXD_OPERATOR_TOKEN": apptest.OperatorToken}
	code := run(args, &out, &errb, func(k string) string { return env[k] })
	return out.String() + errb.String(), code
}

// The README's operator walk-through, through pbxctl.
func TestPbxctlWalkThrough(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	if out, code := ctl(t, d, "status"); code != 0 || !strings.Contains(out, "ready") {
		t.Fatalf("status: %d %s", code, out)
	}
	if out, code := ctl(t, d, "packages"); code != 0 || !strings.Contains(out, "fr-fixed-mobile") || !strings.Contains(out, "49.90") {
		t.Fatalf("packages: %d %s", code, out)
	}
	out, code := ctl(t, d, "-o", "json", "accounts", "create", "-name", "Acme", "-domain", "acme.voip.example.net")
	if code != 0 {
		t.Fatalf("accounts create: %s", out)
	}
	var acct struct{ ID string }
	if err := json.Unmarshal([]byte(out), &acct); err != nil || acct.ID == "" {
		t.Fatalf("accounts create output: %s", out)
	}
	out, code = ctl(t, d, "change", "preview", acct.ID, "fr-fixed-mobile=2", "world=1")
	if code != 0 || !strings.Contains(out, "fr-fixed-mobile") || !strings.Contains(out, "↑") {
		t.Fatalf("preview: %s", out)
	}
	id := out[strings.LastIndex(out, " ")+1:]
	id = strings.TrimSpace(id)
	if out, code := ctl(t, d, "change", "confirm", id); code != 0 {
		t.Fatalf("confirm: %s", out)
	}
	out, code = ctl(t, d, "lines", "list", acct.ID)
	if code != 0 || strings.Count(out, "acme.voip.example.net") != 3 || !strings.Contains(out, "APPLIED_AT") {
		t.Fatalf("lines list: %s", out)
	}
	// Once the reconciler applied them, each line shows when (the daemon's
	// test clock, 2026-11-16).
	for deadline := time.Now().Add(10 * time.Second); strings.Count(out, "2026-11-16T") != 3; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("lines list never showed the applied time of the 3 lines: %s", out)
		}
		out, _ = ctl(t, d, "lines", "list", acct.ID)
	}
	var line struct{ ID string }
	if out, code := ctl(t, d, "-o", "json", "lines", "list", acct.ID); code != 0 {
		t.Fatalf("lines list: %s", out)
	} else {
		var ls struct{ Lines []struct{ ID string } }
		if err := json.Unmarshal([]byte(out), &ls); err != nil || len(ls.Lines) == 0 {
			t.Fatalf("lines list output: %s", out)
		}
		line = ls.Lines[0]
	}
	out, code = ctl(t, d, "-o", "json", "devices", "add", acct.ID, "-mac", "80:5e:c0:00:00:21", "-vendor", "snom",
		"-timezone", "America/New_York", "-line", line.ID)
	if code != 0 || !strings.Contains(out, `"timezone": "America/New_York"`) {
		t.Fatalf("devices add -timezone: %d %s", code, out)
	}
	if out, code := ctl(t, d, "devices", "add", acct.ID, "-mac", "80:5e:c0:00:00:22", "-vendor", "snom", "-timezone", "Local"); code != 1 || !strings.Contains(out, "timezone") {
		t.Fatalf("devices add -timezone Local: %d %s", code, out)
	}
	out, code = ctl(t, d, "change", "preview", acct.ID, "fr-fixed-mobile=2", "world=0")
	if code != 0 || !strings.Contains(out, "↓") || !strings.Contains(out, "102") {
		t.Fatalf("preview of a decrease does not name the line removed (extension 102): %s", out)
	}
	if out, code := ctl(t, d, "accounts", "show", "not-an-id"); code != 1 || !strings.Contains(out, "404") {
		t.Fatalf("unknown account: %d %s", code, out)
	}
	// -q prints ids alone, for shell variables.
	out, code = ctl(t, d, "-q", "change", "preview", acct.ID, "fr-fixed-mobile=3")
	if code != 0 || strings.Count(strings.TrimSpace(out), "\n") != 0 || len(strings.TrimSpace(out)) != 36 {
		t.Fatalf("-q change preview: %d %q", code, out)
	}
	out, code = ctl(t, d, "-q", "lines", "list", acct.ID)
	if ids := strings.Fields(out); code != 0 || len(ids) != 3 || len(ids[0]) != 36 {
		t.Fatalf("-q lines list: %d %q", code, out)
	}
	if out, code := ctl(t, d, "-q", "status"); code != 1 || !strings.Contains(out, "no id") {
		t.Fatalf("-q status: %d %q", code, out)
	}
	if out, code := ctl(t, d, "frobnicate"); code != 2 || !strings.Contains(out, "usage") {
		t.Fatalf("unknown command: %d %s", code, out)
	}
}
