package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pbxd/pbxd/internal/app/apptest"
	"github.com/pbxd/pbxd/internal/config"
	"github.com/pbxd/pbxd/pbx/asterisk/aritest"
)

// moveView is a move as the API shows it.
type moveView struct {
	ID           string `json:"id"`
	From         string `json:"from"`
	To           string `json:"to"`
	State        string `json:"state"`
	LinesTotal   int    `json:"lines_total"`
	LinesDone    int    `json:"lines_done"`
	LinesRemoved int    `json:"lines_removed"`
}

// Placement and a move through the API, on a daemon with two ARI test
// servers as nodes: refusals are problems naming the field, the move is
// 202 and shows its progress on the account, the lines end on the new
// node only, the phone's file names the new node's registrar, and the
// metrics count it.
func TestAccountMoveAPI(t *testing.T) {
	t.Parallel()
	s1, s2 := aritest.NewTest(t, aritest.Options{}), aritest.NewTest(t, aritest.Options{})
	d := apptest.Start(t, func(c *config.Config) {
		c.Backend = "asterisk"
		c.Asterisk.Nodes = []config.AsteriskNode{
			{Name: "ast1", URL: s1.URL(), Username: s1.Username(), Password: s1.Password(), App: "pbxd", Registrar: "pbx1.voip.example.net"},
			{Name: "ast2", URL: s2.URL(), Username: s2.Username(), Password: s2.Password(), App: "pbxd", Registrar: "pbx2.voip.example.net"},
		}
		c.Asterisk.RequestTimeout = config.Duration(2 * time.Second)
	})
	domain := "move.voip.example.net"
	acct := d.CreateAccount(t, map[string]any{"sip_domain": domain})
	var a struct {
		PBXNode string    `json:"pbx_node"`
		Move    *moveView `json:"move"`
	}
	d.Op(t, http.StatusOK, "GET", "/v1/accounts/"+acct, nil).JSON(t, &a)
	if a.PBXNode != "ast1" || a.Move != nil {
		t.Fatalf("first account: node %q, move %+v; want ast1 and no move", a.PBXNode, a.Move)
	}
	// Both nodes hold no line: the one with fewer accounts takes the next.
	other := d.CreateAccount(t, nil)
	d.Op(t, http.StatusOK, "GET", "/v1/accounts/"+other, nil).JSON(t, &a)
	if a.PBXNode != "ast2" {
		t.Fatalf("second account placed on %q, want ast2", a.PBXNode)
	}
	d.Change(t, acct, map[string]any{"package": "world", "quantity": 40})
	waitApplied(t, d, acct)
	if n := len(lineObjects(s1, "auth")); n != 40 {
		t.Fatalf("ast1 holds %d lines, want 40", n)
	}
	ls := lines(t, d, apptest.OperatorToken, acct)
	var created struct {
		ProvisioningSecret string `json:"provisioning_secret"`
	}
	d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/devices", map[string]any{
		"mac": "80-5E-C0-11-22-33", "vendor": "yealink", "lines": []map[string]any{{"line": ls[0].ID, "key": 1}},
	}).JSON(t, &created)
	phoneFile := func() string {
		status, body := fetchConfig(t, d, "805ec0112233.cfg", "805ec0112233", created.ProvisioningSecret)
		if status != http.StatusOK {
			t.Fatalf("phone file: %d %s", status, body)
		}
		return body
	}
	if body := phoneFile(); !strings.Contains(body, "pbx1.voip.example.net") {
		t.Fatalf("the phone file before the move does not name ast1's registrar:\n%s", body)
	}

	for _, tc := range []struct {
		body   any
		status int
		field  string
	}{
		{map[string]any{}, http.StatusUnprocessableEntity, "node"},
		{map[string]any{"node": "ast9"}, http.StatusUnprocessableEntity, "node"},
		{map[string]any{"node": "ast1"}, http.StatusUnprocessableEntity, "node"},
		{map[string]any{"node": 2}, http.StatusUnprocessableEntity, "node"},
		{map[string]any{"nodes": "ast2"}, http.StatusUnprocessableEntity, "nodes"},
	} {
		p := d.Op(t, tc.status, "POST", "/v1/accounts/"+acct+"/move", tc.body).Map(t)
		if p["field"] != tc.field {
			t.Errorf("move %v: problem %v, want field %q", tc.body, p, tc.field)
		}
	}
	// An account token cannot move its account.
	var tok struct{ Token string }
	d.Op(t, http.StatusCreated, "POST", "/v1/accounts/"+acct+"/tokens", nil).JSON(t, &tok)
	if r := d.Call(t, tok.Token, "POST", "/v1/accounts/"+acct+"/move", map[string]any{"node": "ast2"}); r.Status == http.StatusAccepted {
		t.Fatal("an account token started a move")
	}

	var m moveView
	d.Op(t, http.StatusAccepted, "POST", "/v1/accounts/"+acct+"/move", map[string]any{"node": "ast2"}).JSON(t, &m)
	if m.State != "copying" || m.From != "ast1" || m.To != "ast2" || m.LinesTotal != 40 {
		t.Fatalf("move = %+v", m)
	}
	if p := d.Op(t, http.StatusConflict, "POST", "/v1/accounts/"+acct+"/move", map[string]any{"node": "ast1"}).Map(t); p["field"] != "node" {
		t.Errorf("a second move: %v", p)
	}
	eventually(t, 90*time.Second, "the move to end", func() bool {
		var cur moveView
		d.Call(t, tok.Token, "GET", "/v1/accounts/"+acct+"/move", nil).JSON(t, &cur)
		return cur.State == "done"
	})
	d.Op(t, http.StatusOK, "GET", "/v1/accounts/"+acct, nil).JSON(t, &a)
	if a.PBXNode != "ast2" || a.Move == nil || a.Move.State != "done" || a.Move.LinesDone != 40 || a.Move.LinesRemoved != 40 {
		t.Errorf("account after the move: node %q, move %+v", a.PBXNode, a.Move)
	}
	if n1, n2 := len(lineObjects(s1, "auth")), len(lineObjects(s2, "auth")); n1 != 0 || n2 != 40 {
		t.Errorf("after the move ast1 holds %d lines and ast2 %d; want 0 and 40", n1, n2)
	}
	if body := phoneFile(); !strings.Contains(body, "pbx2.voip.example.net") || strings.Contains(body, "pbx1.voip.example.net") {
		t.Errorf("the phone file after the move does not name ast2's registrar only:\n%s", body)
	}
	if v := metric(t, d.Registry, "pbxd_account_moves_total", map[string]string{"state": "done"}); v != 1 {
		t.Errorf("pbxd_account_moves_total{state=done} = %v, want 1", v)
	}
	var nodes struct {
		Nodes []struct {
			Node     string
			Lines    int
			Accounts int
		}
	}
	d.Op(t, http.StatusOK, "GET", "/v1/nodes", nil).JSON(t, &nodes)
	if len(nodes.Nodes) != 2 || nodes.Nodes[1].Node != "ast2" || nodes.Nodes[1].Lines != 40 || nodes.Nodes[1].Accounts != 2 {
		t.Errorf("nodes = %+v", nodes.Nodes)
	}
}
