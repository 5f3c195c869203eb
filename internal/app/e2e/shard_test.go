package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pbxd/pbxd/internal/app/apptest"
	"github.com/pbxd/pbxd/internal/store/storetest"
	"github.com/pbxd/pbxd/pbx/asterisk/aritest"
)

// ownedNodes lists the nodes a daemon says it reconciles
// (pbxd_reconcile_node_owned).
func ownedNodes(t *testing.T, p *pbxdProcess) []string {
	t.Helper()
	var out []string
	mf := scrapeFamilies(t, p.base)["pbxd_reconcile_node_owned"]
	if mf == nil {
		t.Fatalf("%s: no pbxd_reconcile_node_owned", p.base)
	}
	for _, m := range mf.GetMetric() {
		if m.GetGauge().GetValue() == 1 {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "node" {
					out = append(out, lp.GetValue())
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// Two real pbxd processes share four Asterisk nodes (ARI test servers),
// two each, each node reconciled by exactly one of them. One is killed
// (kill -9): the other takes its nodes over within the lease time, and
// the lines of a change confirmed after the kill reach them.
func TestReconcilerShardsAcrossProcesses(t *testing.T) {
	t.Parallel()
	const ttl = 2 * time.Second
	var nodes []string
	var srvs []*aritest.Server
	var yamlNodes strings.Builder
	for i := range 4 {
		srv := aritest.NewTest(t, aritest.Options{})
		name := fmt.Sprintf("n%d", i+1)
		nodes, srvs = append(nodes, name), append(srvs, srv)
		fmt.Fprintf(&yamlNodes, "    - {name: %s, url: %q, username: %s, password: %s, app: APP}\n", name, srv.URL(), srv.Username(), srv.Password())
	}
	bin := buildPbxd(t)
	dbURL := storetest.NewDatabase(t)
	start := func(app string) *pbxdProcess {
		// Each instance its own Stasis application: a second websocket
		// for the same application replaces the first.
		cfg := filepath.Join(t.TempDir(), "pbxd.yaml")
		yaml := "backend: asterisk\nasterisk:\n  request_timeout: 2s\n  nodes:\n" + strings.ReplaceAll(yamlNodes.String(), "APP", app) +
			"reconciler:\n  lease_ttl: " + ttl.String() + "\n  retry_min: 50ms\n"
		if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return startPbxdWith(t, bin, dbURL, t.TempDir(), pbxdOptions{Args: []string{"-config", cfg}})
	}
	a := start("pbxd-a")
	b := start("pbxd-b")
	pool, err := pgxpool.New(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	// Both own two nodes, none owned twice (the database says the same).
	eventually(t, 60*time.Second, "two nodes each", func() bool {
		return len(ownedNodes(t, a)) == 2 && len(ownedNodes(t, b)) == 2
	})
	ownA, ownB := ownedNodes(t, a), ownedNodes(t, b)
	if all := slices.Sorted(slices.Values(append(slices.Clone(ownA), ownB...))); !slices.Equal(all, nodes) {
		t.Fatalf("A owns %v, B owns %v: want every node once", ownA, ownB)
	}
	if n := count(t, pool, `SELECT count(DISTINCT owner) FROM node_leases WHERE expires_at > clock_timestamp()`); n != 2 {
		t.Fatalf("%d owners in node_leases, want 2", n)
	}

	// One account per node, each with a line, applied by the node's owner.
	da, db := &apptest.Daemon{URL: a.base}, &apptest.Daemon{URL: b.base}
	accts := map[string]string{}
	for _, n := range nodes {
		accts[n] = da.CreateAccount(t, map[string]any{"pbx_node": n, "sip_domain": n + ".shard.example.net"})
		da.Change(t, accts[n], map[string]any{"package": "fr-fixed-mobile", "quantity": 1})
	}
	onNode := func(i int, want int) func() bool {
		return func() bool { return len(lineObjects(srvs[i], "endpoint")) == want }
	}
	for i, n := range nodes {
		eventually(t, 90*time.Second, "the line on "+n, onNode(i, 1))
	}

	// kill -9 A; B confirms a change on each of A's nodes at once.
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	for _, n := range ownA {
		db.Change(t, accts[n], map[string]any{"package": "fr-fixed-mobile", "quantity": 3})
	}
	for _, n := range ownA {
		took := b.waitLog(t, killed, `msg="node lease acquired" component=reconciler node=`+n)
		i := slices.Index(nodes, n)
		eventually(t, 90*time.Second, "the new lines on "+n, onNode(i, 3))
		t.Logf("%s: taken over %v after the kill (lease_ttl %v); its new lines on it %v after the kill",
			n, took.Round(time.Millisecond), ttl, time.Since(killed).Round(time.Millisecond))
		// The lease lapses after ttl at most; the next round (every ttl/4)
		// takes it. Generous: rounds are late under load.
		if took > 10*ttl {
			t.Errorf("%s taken over %v after the kill", n, took)
		}
	}
	if got := ownedNodes(t, b); !slices.Equal(got, nodes) {
		t.Errorf("B owns %v after A's death, want %v", got, nodes)
	}
	var cluster struct {
		Nodes []struct {
			Node, Owner string
			Live        bool
		}
		Instances []struct{ ID string }
	}
	db.Op(t, http.StatusOK, "GET", "/v1/cluster/nodes", nil).JSON(t, &cluster)
	if len(cluster.Nodes) != len(nodes) {
		t.Fatalf("/v1/cluster/nodes lists %d nodes, want %d", len(cluster.Nodes), len(nodes))
	}
	for _, n := range cluster.Nodes {
		if !n.Live || n.Owner != cluster.Nodes[0].Owner {
			t.Errorf("/v1/cluster/nodes after A's death: %+v, want every node live on one owner", cluster.Nodes)
			break
		}
	}
	// Every line recorded applied: the reconciler records it after the
	// node's write the checks above saw, so it may follow a little later.
	eventually(t, 30*time.Second, "every line recorded applied", func() bool {
		return count(t, pool, `SELECT count(*) FROM lines WHERE revision > applied_revision`) == 0
	})
}
