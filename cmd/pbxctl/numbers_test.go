package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pbxd/pbxd/internal/app/apptest"
)

// The README's number walk-through: import a file, order by prefix and by
// choice, assign to the main line.
func TestPbxctlNumbers(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	file := filepath.Join(t.TempDir(), "numbers.txt")
	if err := os.WriteFile(file, []byte("# Paris block\n+33 1 42 00 00 01\n+33142000002\n\n+33142000003 # spare\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"imported 3, already there 0", "imported 0, already there 3"} {
		if out, code := ctl(t, d, "numbers", "import", "-country", "FR", "-area", "+331", file); code != 0 || !strings.Contains(out, want) {
			t.Fatalf("import %d: %d %s", i, code, out)
		}
	}
	if out, code := ctl(t, d, "numbers", "import", file); code != 2 {
		t.Fatalf("import without -country: %d %s", code, out)
	}
	if out, code := ctl(t, d, "numbers", "available", "-prefix", "+3314"); code != 0 || strings.Count(out, "+3314200000") != 3 {
		t.Fatalf("available: %d %s", code, out)
	}
	acct := d.CreateAccount(t, nil)
	d.Change(t, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": 1})
	out, code := ctl(t, d, "change", "preview", acct, "+3314*1", "+33142000003")
	if code != 0 || !strings.Contains(out, "local-number") || !strings.Contains(out, "1 starting +3314") || !strings.Contains(out, "+33142000003") {
		t.Fatalf("preview: %d %s", code, out)
	}
	id := strings.TrimSpace(out[strings.LastIndex(out, " ")+1:])
	if out, code := ctl(t, d, "-o", "json", "change", "confirm", id); code != 0 || !strings.Contains(out, "+33142000001") {
		t.Fatalf("confirm: %d %s", code, out)
	}
	out, code = ctl(t, d, "-o", "json", "numbers", "assign", acct, "+33142000003", "-caller-id")
	var n struct {
		State     string
		Extension int
		CallerID  bool `json:"caller_id"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &n) != nil || n.State != "assigned" || n.Extension != 100 || !n.CallerID {
		t.Fatalf("assign to the main line: %d %s", code, out)
	}
	if out, code := ctl(t, d, "numbers", "account", acct); code != 0 || !strings.Contains(out, "assigned") || !strings.Contains(out, "reserved") {
		t.Fatalf("account numbers: %d %s", code, out)
	}
	if out, code := ctl(t, d, "numbers", "list", "-state", "available"); code != 0 || !strings.Contains(out, "+33142000002") || strings.Contains(out, "+33142000001") {
		t.Fatalf("inventory: %d %s", code, out)
	}
}

// A period-end decrease through pbxctl, listed and cancelled.
func TestPbxctlScheduled(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acct := d.CreateAccount(t, nil)
	d.Change(t, acct, map[string]any{"package": "world", "quantity": 2})
	out, code := ctl(t, d, "change", "preview", acct, "world=1@period_end")
	if code != 0 || !strings.Contains(out, "at period end 2026-12-01T00:00:00+01:00") {
		t.Fatalf("preview: %d %s", code, out)
	}
	id := strings.TrimSpace(out[strings.LastIndex(out, " ")+1:])
	if out, code := ctl(t, d, "change", "confirm", id); code != 0 {
		t.Fatalf("confirm: %d %s", code, out)
	}
	out, code = ctl(t, d, "-o", "json", "scheduled", "list", acct)
	var list struct {
		Scheduled []struct{ ID, State string } `json:"scheduled_changes"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list.Scheduled) != 1 || list.Scheduled[0].State != "pending" {
		t.Fatalf("scheduled list: %d %s", code, out)
	}
	if out, code := ctl(t, d, "scheduled", "cancel", acct, list.Scheduled[0].ID); code != 0 || !strings.Contains(out, "cancelled") {
		t.Fatalf("scheduled cancel: %d %s", code, out)
	}
}

// A downgrade by request through pbxctl: filed, listed, approved at the
// period end (a scheduled change), done.
func TestPbxctlRequests(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acct := d.CreateAccount(t, nil)
	d.Change(t, acct, map[string]any{"package": "world", "quantity": 2})
	out, code := ctl(t, d, "-o", "json", "requests", "file", acct, "downgrade", `{"items": [{"package": "world", "quantity": 1}]}`)
	var req struct{ ID, State string }
	if code != 0 || json.Unmarshal([]byte(out), &req) != nil || req.State != "open" {
		t.Fatalf("file: %d %s", code, out)
	}
	if out, code := ctl(t, d, "requests", "file", acct, "downgrade", `{"items": [`); code != 2 {
		t.Fatalf("bad JSON: %d %s", code, out)
	}
	if out, code := ctl(t, d, "requests", "list", "-state", "open"); code != 0 || !strings.Contains(out, req.ID) {
		t.Fatalf("list: %d %s", code, out)
	}
	if out, code := ctl(t, d, "requests", "approve", req.ID, "-comment", "done at month end"); code != 0 || !strings.Contains(out, "approved") {
		t.Fatalf("approve: %d %s", code, out)
	}
	if out, code := ctl(t, d, "scheduled", "list", acct); code != 0 || !strings.Contains(out, "pending") {
		t.Fatalf("scheduled after approval: %d %s", code, out)
	}
	if out, code := ctl(t, d, "requests", "done", req.ID); code != 0 || !strings.Contains(out, "done") {
		t.Fatalf("done: %d %s", code, out)
	}
}

// A phone bought and shipped through pbxctl.
func TestPbxctlHardware(t *testing.T) {
	t.Parallel()
	d := apptest.Start(t)
	acct := d.CreateAccount(t, nil)
	d.Op(t, 201, "POST", "/v1/accounts/"+acct+"/payment-methods", map[string]any{"gateway": "sandbox", "token": "sandbox_approve", "default": true})
	out, code := ctl(t, d, "-o", "json", "hardware", "buy", acct, "yealink-t54w")
	var o struct {
		State string
		Units []struct{ ID string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &o) != nil || o.State != "paid" || len(o.Units) != 1 {
		t.Fatalf("buy: %d %s", code, out)
	}
	if out, code := ctl(t, d, "hardware", "ship", acct, o.Units[0].ID, "-mac", "80:5e:c0:00:00:31"); code != 0 || !strings.Contains(out, "provisioning_secret") {
		t.Fatalf("ship: %d %s", code, out)
	}
	if out, code := ctl(t, d, "hardware", "list", acct); code != 0 || !strings.Contains(out, "paid") {
		t.Fatalf("list: %d %s", code, out)
	}
}
