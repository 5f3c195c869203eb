// Package scalebench measures pbxd with a million lines (issue 19): lines
// bulk-loaded into PostgreSQL (COPY, not the API), spread over accounts of
// SCALE_LINES_PER_ACCOUNT lines on SCALE_NODES Asterisk nodes (ARI test
// servers, each in a child process so that the memory and CPU measured
// are pbxd's alone). It reports:
//
//   - each node's full resync onto an empty node (Asterisk restarted with
//     an empty astdb: every line re-pushed), all nodes at once as a daemon
//     starts, then a resync with nothing to repair, node by node;
//   - the daemon's memory (Go heap after a GC, and the process's RSS) with
//     the lines loaded, with the Asterisk backend and with the built-in
//     registrar;
//   - the built-in registrar's memory for one binding per line, loaded
//     from sip_bindings (the difference with the run without bindings).
//
// The renewal time of as many subscriptions is bench/billing's
// (PBXD_BENCH_SUBS); run.sh runs both at one size:
//
//	SCALE_LINES=100000 bench/scale/run.sh        # a quick check
//	bench/scale/run.sh                           # 1,000,000 lines
//
// or one part alone (SCALE_ASTERISK=0 or SCALE_REGISTRAR=0 skip the
// others):
//
//	SCALE_LINES=100000 PBXD_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//	  go test ./bench/scale -run '^$' -bench Scale -benchtime 1x -timeout 3h -v
package scalebench

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxd/pbxd/internal/app/apptest"
	"github.com/pbxd/pbxd/internal/config"
	"github.com/pbxd/pbxd/internal/store/storetest"
	"github.com/pbxd/pbxd/pbx/asterisk/aritest"
	"github.com/pbxd/pbxd/provisioning"
)

func TestMain(m *testing.M) {
	aritest.ServeChild("SCALE_ARITEST_CHILD", aritest.Options{Username: "bench", Password: "bench-secret"}, command)
	os.Exit(m.Run())
}

// command answers "count", on the child's stdin, with how many line
// endpoints the child's server holds (not the AOR queue probe).
func command(s *aritest.Server, cmd string) string {
	if cmd != "count" {
		return ""
	}
	n := 0
	for _, id := range s.ObjectIDs("endpoint") {
		if !strings.HasSuffix(id, "queue-probe") {
			n++
		}
	}
	return strconv.Itoa(n)
}

// say logs a figure at once (a benchmark's own log shows only at its end,
// and this one runs for long).
func say(b *testing.B, format string, args ...any) {
	b.Helper()
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func accountID(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012x", i) }
func lineID(i int) string    { return fmt.Sprintf("10000000-0000-4000-8000-%012x", i) }

// load fills the database: accounts of per lines each, round robin over
// nodes n1…nN, and their lines, recorded as applied (revision 1).
func load(ctx context.Context, b *testing.B, pool *pgxpool.Pool, key []byte, lines, nodes, per int) {
	b.Helper()
	t0 := time.Now()
	accounts := (lines + per - 1) / per
	for _, q := range []string{
		`INSERT INTO packages (code, name, price_minor, currency, cycles, dial_context, updated_at) VALUES
			('fr-fixed-mobile', 'France fixed & mobile', 4990, 'EUR', '[{"cycle":"monthly","discount_bp":0}]', 'pkg-fr', now())`,
		`INSERT INTO accounts (id, name, sip_domain, currency, timezone, vat_bp, payment_mode, seat_preference, ext_first, ext_last, pbx_node, created_at)
			SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, 'Customer ' || g, 's' || g || '.scale.example.net', 'EUR',
			       'Europe/Paris', 2000, 'invoice', 'auto_purchase', 100, 899, 'n' || (g % ` + strconv.Itoa(nodes) + ` + 1), now()
			FROM generate_series(0, ` + strconv.Itoa(accounts-1) + `) g`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			b.Fatalf("load: %v", err)
		}
	}
	c, err := provisioning.NewCipher(key)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i == lines {
			return nil, nil
		}
		acct, ext := i/per, 100+i%per
		id, user, pw := lineID(i), "l"+strconv.Itoa(ext), fmt.Sprintf("Pw%08xZ9", i)
		domain := "s" + strconv.Itoa(acct) + ".scale.example.net"
		sealed, err := c.Seal(id, pw)
		if err != nil {
			return nil, err
		}
		md5, sha := provisioning.HA1(user, domain, pw)
		i++
		return []any{id, accountID(acct), "fr-fixed-mobile", ext, user, sealed, md5, sha, "Line " + strconv.Itoa(ext), "active", 1, 1, now, now}, nil
	})
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"lines"}, []string{"id", "account_id", "package_code", "extension", "sip_username",
		"password_enc", "ha1_md5", "ha1_sha256", "caller_id", "state", "revision", "applied_revision", "changed_at", "created_at"}, src); err != nil {
		b.Fatalf("copy lines: %v", err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE accounts, lines`); err != nil {
		b.Fatal(err)
	}
	el := time.Since(t0)
	say(b, "loaded %d lines (%d accounts of %d lines, %d nodes) in %v: %.0f lines/s", lines, accounts, per, nodes,
		el.Round(time.Millisecond), float64(lines)/el.Seconds())
}

// memory is the process's Go heap in use after a full GC and its RSS, in MB.
func memory() (heap, rss float64) {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	heap = float64(m.HeapInuse) / 1e6
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				rss = kb / 1e3
			}
		}
	}
	return heap, rss
}

// metricValues maps the node label of a metric's series to its value
// ("" for an unlabelled one).
func metricValues(b *testing.B, reg *prometheus.Registry, name string) map[string]float64 {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			node := ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "node" {
					node = lp.GetValue()
				}
			}
			out[node] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return out
}

// waitFor polls cond every 100 ms for up to 3 hours.
func waitFor(b *testing.B, what string, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(3 * time.Hour)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func BenchmarkScale(b *testing.B) {
	lines := envInt("SCALE_LINES", 1_000_000)
	nodes := envInt("SCALE_NODES", 10)
	per := envInt("SCALE_LINES_PER_ACCOUNT", 50)
	if per > 800 {
		b.Fatal("SCALE_LINES_PER_ACCOUNT: at most 800 (extensions 100-899)")
	}
	ctx := context.Background()
	for b.Loop() {
		heap0, rss0 := memory()
		say(b, "bench process before any daemon: heap %.0f MB, RSS %.0f MB", heap0, rss0)
		dbURL := storetest.NewDatabase(b)
		pool, err := pgxpool.New(ctx, dbURL)
		if err != nil {
			b.Fatal(err)
		}
		key := make([]byte, 32)
		for i := range key {
			key[i] = byte(i * 7)
		}
		load(ctx, b, pool, key, lines, nodes, per)
		pool.Close()
		base := func(c *config.Config) {
			c.Database.URL = dbURL
			c.SecretKey = base64.StdEncoding.EncodeToString(key)
			c.Reconciler.ResyncInterval = config.Duration(24 * time.Hour) // only the resyncs the benchmark runs
		}

		if os.Getenv("SCALE_ASTERISK") != "0" {
			asteriskPhase(ctx, b, base, lines, nodes, heap0, rss0)
		}
		if os.Getenv("SCALE_REGISTRAR") != "0" {
			registrarPhase(ctx, b, base, dbURL, lines)
		}
	}
}

// asteriskPhase runs a daemon on the Asterisk backend over nodes empty ARI
// test servers: its first resync of each node pushes all of the node's
// lines, the nodes at once; then a resync with nothing to repair.
func asteriskPhase(ctx context.Context, b *testing.B, base func(*config.Config), lines, nodes int, heap0, rss0 float64) {
	children := make([]*aritest.Child, nodes)
	for i := range children {
		children[i] = aritest.StartChild(b, "SCALE_ARITEST_CHILD")
	}
	t0 := time.Now()
	d := apptest.Start(b, base, func(c *config.Config) {
		c.Backend = "asterisk"
		// Listing 100,000 endpoints in one ARI answer takes longer
		// than the default 5 s on a busy machine.
		c.Asterisk.RequestTimeout = config.Duration(2 * time.Minute)
		c.Asterisk.Nodes = nil
		for i, ch := range children {
			c.Asterisk.Nodes = append(c.Asterisk.Nodes, config.AsteriskNode{Name: fmt.Sprintf("n%d", i+1), URL: ch.URL(),
				Username: "bench", Password: "bench-secret", App: "pbxd-scale"})
		}
	})
	waitFor(b, "every node's first resync", func() bool {
		done := metricValues(b, d.Registry, "pbxd_reconcile_last_resync_timestamp_seconds")
		for i := range nodes {
			if done[fmt.Sprintf("n%d", i+1)] == 0 {
				return false
			}
		}
		return true
	})
	wall := time.Since(t0)
	took := metricValues(b, d.Registry, "pbxd_reconcile_last_resync_duration_seconds")
	held := 0
	for i, ch := range children {
		n, _ := strconv.Atoi(ch.Do(b, "count"))
		held += n
		node := fmt.Sprintf("n%d", i+1)
		say(b, "%s: full resync onto the empty node, %d lines, %.1f s (%.0f lines/s), the %d nodes at once", node, n, took[node],
			float64(n)/took[node], nodes)
	}
	if held != lines {
		b.Fatalf("the nodes hold %d lines, want %d", held, lines)
	}
	say(b, "all %d lines pushed onto %d empty nodes in %v from the daemon's start: %.0f lines/s", lines, nodes,
		wall.Round(time.Second), float64(lines)/wall.Seconds())
	heap, rss := memory()
	say(b, "memory with %d lines, Asterisk backend: heap %.0f MB, RSS %.0f MB (bench process before: %.0f / %.0f MB)", lines, heap, rss, heap0, rss0)
	b.ReportMetric(heap-heap0, "asterisk-heap-MB")
	t1 := time.Now()
	if err := d.App.Reconciler().Resync(ctx); err != nil { // every node, one after the other
		b.Fatal(err)
	}
	say(b, "resync with nothing to repair, every node in turn: %v in all", time.Since(t1).Round(time.Millisecond))
	took = metricValues(b, d.Registry, "pbxd_reconcile_last_resync_duration_seconds")
	for i := range nodes {
		node := fmt.Sprintf("n%d", i+1)
		say(b, "%s: resync with nothing to repair %.1f s (%.0f lines/s)", node, took[node], float64(lines/nodes)/took[node])
	}
	heap, rss = memory()
	say(b, "memory just after the resync with nothing to repair: heap %.0f MB, RSS %.0f MB", heap, rss)
	time.Sleep(65 * time.Second) // what the resync listed is dropped after a minute
	heap, rss = memory()
	say(b, "memory a minute later: heap %.0f MB, RSS %.0f MB", heap, rss)
	d.Stop(b)
}

// registrarPhase runs daemons on the built-in registrar: on an empty
// database (its fixed part), with every line in its memory, then with one
// binding per line as well.
func registrarPhase(ctx context.Context, b *testing.B, base func(*config.Config), dbURL string, lines int) {
	registrar := func(what string, n int, mutate ...func(*config.Config)) float64 {
		t1 := time.Now()
		d := apptest.Start(b, mutate...)
		waitFor(b, "the registrar's first resync", func() bool {
			return metricValues(b, d.Registry, "pbxd_reconcile_last_resync_timestamp_seconds")[""] > 0
		})
		waitFor(b, "the stored bindings loaded", func() bool {
			return metricValues(b, d.Registry, "pbxd_sip_registrations_active")[""] == float64(n)
		})
		heap, rss := memory()
		say(b, "built-in registrar %s: heap %.0f MB, RSS %.0f MB, ready in %v", what, heap, rss, time.Since(t1).Round(time.Second))
		d.Stop(b)
		return heap
	}
	heapEmpty := registrar("on an empty database (its fixed buffers)", 0)
	heapLines := registrar(fmt.Sprintf("with %d lines", lines), 0, base)
	say(b, "lines in the registrar: %.0f MB for %d, %.0f bytes each", heapLines-heapEmpty, lines, (heapLines-heapEmpty)*1e6/float64(lines))
	b.ReportMetric((heapLines-heapEmpty)*1e6/float64(lines), "registrar-line-bytes")
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO sip_bindings (line_id, contact_uri, source, user_agent, call_id, cseq, expires_at, updated_at)
		SELECT l.id, 'sip:' || l.sip_username || '@10.' || (n / 65536 % 256) || '.' || (n / 256 % 256) || '.' || (n % 256) || ':5060;transport=udp',
		       '10.1.2.3:5060', 'Yealink SIP-T54W 96.86.0.100', md5(l.id::text) || '@10.1.2.3', 1, '2027-01-01 00:00+00', now()
		FROM (SELECT l.*, row_number() OVER () AS n FROM lines l) l`); err != nil {
		b.Fatal(err)
	}
	pool.Close()
	heapBindings := registrar(fmt.Sprintf("with %d lines and one binding each", lines), lines, base)
	say(b, "bindings: %.0f MB for %d, %.0f bytes each", heapBindings-heapLines, lines, (heapBindings-heapLines)*1e6/float64(lines))
	b.ReportMetric((heapBindings-heapLines)*1e6/float64(lines), "binding-bytes")
}
