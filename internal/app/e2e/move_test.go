package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pbxd/pbxd/internal/app/apptest"
	"github.com/pbxd/pbxd/internal/config"
	"github.com/pbxd/pbxd/internal/store/storetest"
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

// authLines lists the line ids whose auth object srv holds.
func authLines(srv *aritest.Server) map[string]bool {
	out := map[string]bool{}
	for _, id := range lineObjects(srv, "auth") {
		if l, ok := strings.CutPrefix(id, "pbxd-"); ok {
			out[l] = true
		}
	}
	return out
}

// An account move interrupted twice by kill -9 of the real pbxd process,
// in the copy and in the removal: each time a new process on the database
// resumes it. During it no line is ever on
// neither node; at the end every line is on the new node only.
func TestAccountMoveSurvivesKill9(t *testing.T) {
	t.Parallel()
	const n = 1000
	s1, s2 := aritest.NewTest(t, aritest.Options{}), aritest.NewTest(t, aritest.Options{})
	yaml := "backend: asterisk\nasterisk:\n  request_timeout: 5s\n  nodes:\n"
	for i, s := range []*aritest.Server{s1, s2} {
		yaml += fmt.Sprintf("    - {name: ast%d, url: '%s', username: %s, password: %s}\n", i+1, s.URL(), s.Username(), s.Password())
	}
	bin := buildPbxd(t)
	dbURL := storetest.NewDatabase(t)
	cfg := filepath.Join(t.TempDir(), "pbxd.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	start := func() *pbxdProcess {
		return startPbxdWith(t, bin, dbURL, t.TempDir(), pbxdOptions{Args: []string{"-config", cfg}})
	}
	pool, err := pgxpool.New(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	first := start()
	d := &apptest.Daemon{URL: first.base}
	acct := d.CreateAccount(t, map[string]any{"sip_domain": "kill.voip.example.net", "extension_range": map[string]int{"first": 1000, "last": 2999}})
	d.Change(t, acct, map[string]any{"package": "world", "quantity": n})
	live := func() (map[string]bool, error) {
		rows, err := pool.Query(context.Background(), `SELECT id::text FROM lines WHERE account_id = $1 AND state <> 'deleted' AND applied_at IS NOT NULL`, acct)
		if err != nil {
			return nil, err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		out := map[string]bool{}
		for _, id := range ids {
			out[id] = true
		}
		return out, err
	}
	eventually(t, 3*time.Minute, "every line on ast1", func() bool { return len(authLines(s1)) == n })

	stop, watched := make(chan struct{}), make(chan []string)
	go func() {
		var lost []string
		defer func() { watched <- lost }()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			before, err1 := live()
			on1, on2 := authLines(s1), authLines(s2)
			after, err2 := live()
			if err1 != nil || err2 != nil {
				continue
			}
			for id := range before {
				if after[id] && !on1[id] && !on2[id] {
					lost = append(lost, id)
				}
			}
		}
	}()

	s2.SetLatency(3 * time.Millisecond) // a copy long enough to be killed in
	var m moveView
	d.Op(t, http.StatusAccepted, "POST", "/v1/accounts/"+acct+"/move", map[string]any{"node": "ast2"}).JSON(t, &m)
	eventually(t, 3*time.Minute, "part of the copy", func() bool { return len(authLines(s2)) >= n/5 })
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = first.cmd.Wait()
	killedAt := len(authLines(s2))
	s2.SetLatency(0)
	// The second process finishes the copy and is killed in the removal.
	s1.SetLatency(3 * time.Millisecond)
	second := start()
	d2 := &apptest.Daemon{URL: second.base}
	state := func(d *apptest.Daemon) moveView {
		var cur moveView
		d.Op(t, http.StatusOK, "GET", "/v1/accounts/"+acct+"/moves/"+m.ID, nil).JSON(t, &cur)
		return cur
	}
	eventually(t, 5*time.Minute, "part of the removal", func() bool {
		return state(d2).State != "copying" && len(authLines(s1)) < n*4/5
	})
	if err := second.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = second.cmd.Wait()
	removedAt := n - len(authLines(s1))
	s1.SetLatency(0)
	third := start()
	d3 := &apptest.Daemon{URL: third.base}
	eventually(t, 5*time.Minute, "the move to end on the third process", func() bool { return state(d3).State == "done" })
	close(stop)
	if lost := <-watched; len(lost) > 0 {
		t.Errorf("%d lines were on neither node during the move (first %s)", len(lost), lost[0])
	}
	all, err := live()
	if err != nil {
		t.Fatal(err)
	}
	on1, on2 := authLines(s1), authLines(s2)
	if len(on1) != 0 || len(on2) != n || len(all) != n {
		t.Fatalf("after the move: %d lines on ast1, %d on ast2, %d live; want 0, %d, %d", len(on1), len(on2), len(all), n, n)
	}
	for id := range all {
		if !on2[id] {
			t.Fatalf("line %s is not on ast2", id)
		}
	}
	t.Logf("killed in the copy with %d of %d lines on ast2, then in the removal with %d removed from ast1; the third process finished the move",
		killedAt, n, removedAt)
}
