package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pbxd/pbxd/internal/app/apptest"
	"github.com/pbxd/pbxd/internal/config"
	"github.com/pbxd/pbxd/pbx/asterisk/aritest"
)

// Placement and moves through pbxctl, on two ARI test servers.
func TestPbxctlMove(t *testing.T) {
	t.Parallel()
	s1, s2 := aritest.NewTest(t, aritest.Options{}), aritest.NewTest(t, aritest.Options{})
	d := apptest.Start(t, func(c *config.Config) {
		c.Backend = "asterisk"
		c.Asterisk.Nodes = []config.AsteriskNode{
			{Name: "ast1", URL: s1.URL(), Username: s1.Username(), Password: s1.Password(), App: "pbxd"},
			{Name: "ast2", URL: s2.URL(), Username: s2.Username(), Password: s2.Password(), App: "pbxd", Capacity: 100},
		}
	})
	out, code := ctl(t, d, "-o", "json", "accounts", "create", "-name", "Acme", "-domain", "acme.voip.example.net", "-node", "ast2")
	var acct struct {
		ID      string
		PBXNode string `json:"pbx_node"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &acct) != nil || acct.PBXNode != "ast2" {
		t.Fatalf("accounts create -node ast2: %d %s", code, out)
	}
	if out, code := ctl(t, d, "nodes"); code != 0 || !strings.Contains(out, "ast1") || !strings.Contains(out, "100") {
		t.Fatalf("nodes: %d %s", code, out)
	}
	if out, code := ctl(t, d, "accounts", "move", acct.ID, "ast9"); code != 1 || !strings.Contains(out, "node") {
		t.Fatalf("move to an unknown node: %d %s", code, out)
	}
	if out, code := ctl(t, d, "accounts", "move", acct.ID); code != 2 || !strings.Contains(out, "accounts move ACCOUNT NODE") {
		t.Fatalf("move without a node: %d %s", code, out)
	}
	out, code = ctl(t, d, "-o", "json", "accounts", "move", acct.ID, "ast1")
	if code != 0 || !strings.Contains(out, `"copying"`) {
		t.Fatalf("accounts move: %d %s", code, out)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, code = ctl(t, d, "-o", "json", "accounts", "move-status", acct.ID)
		if code == 0 && strings.Contains(out, `"done"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("move-status: %d %s", code, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
