// Package asteriskbench measures pbxd's Asterisk backend and reconciler
// against the ARI test server running in a child process, so that the CPU
// reported (getrusage of this process: pbxd's reconciler, backend and pgx;
// PostgreSQL runs apart) is pbxd's alone.
//
//	PBXD_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//	  go test ./bench/asterisk -run '^$' -bench . -benchtime 1x -timeout 30m
//
// PBXD_BENCH_LINES sets the number of lines (default 10,000).
//
// Against a real Asterisk (configured from configs/asterisk, no pbxd lines
// on it yet), give its ARI in PBXD_TEST_ARI_URL, PBXD_TEST_ARI_USERNAME and
// PBXD_TEST_ARI_PASSWORD, and its log file in PBXD_TEST_ASTERISK_LOG to
// count the WARNINGs a resync makes it write. The sub-benchmarks that need
// the test server's hooks (forget everything, restart) are skipped then.
// PBXD_TEST_ASTERISK_RX, the command that runs one Asterisk CLI command
// (e.g. "asterisk -C /etc/asterisk/asterisk.conf -rx"), adds Asterisk's CPU
// and taskprocessor queues to the initial sync's timeline (timeline_test.go).
package asteriskbench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pbxd/pbxd/internal/app/apptest"
	"github.com/pbxd/pbxd/internal/config"
	"github.com/pbxd/pbxd/pbx/asterisk/aritest"
)

func TestMain(m *testing.M) {
	aritest.ServeChild("PBXD_ARITEST_CHILD", aritest.Options{Username: "bench", Password: "bench-secret"}, command)
	os.Exit(m.Run())
}

// command is the child's answer to a line on its stdin: "wipe" forgets
// every object without a restart; "restart"; "count".
func command(s *aritest.Server, cmd string) string {
	switch cmd {
	case "wipe":
		for _, typ := range []string{"endpoint", "aor", "auth"} {
			for _, id := range s.ObjectIDs(typ) {
				s.Forget(typ, id)
			}
		}
		return "ok"
	case "restart":
		if err := s.Restart(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		return "ok"
	case "count":
		return fmt.Sprint(len(s.ObjectIDs("endpoint")), " ", len(s.ObjectIDs("aor")), " ", len(s.ObjectIDs("auth")))
	}
	return ""
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type fixture struct {
	c     *aritest.Child // nil against a real Asterisk
	d     *apptest.Daemon
	acct  string
	lines []string
}

// needChild skips b when the ARI server is a real Asterisk.
func (f *fixture) needChild(b *testing.B) {
	if f.c == nil {
		b.Skip("needs the ARI test server's hooks")
	}
}

// realARI is the real Asterisk's ARI given in the environment, if any.
func realARI() (url, user, password string, ok bool) {
	url = os.Getenv("PBXD_TEST_ARI_URL")
	return url, os.Getenv("PBXD_TEST_ARI_USERNAME"), os.Getenv("PBXD_TEST_ARI_PASSWORD"), url != ""
}

func setup(b *testing.B, n int) *fixture {
	b.Helper()
	var c *aritest.Child
	url, user, password, real := realARI()
	if !real {
		c = aritest.StartChild(b, "PBXD_ARITEST_CHILD")
		url, user, password = c.URL(), "bench", "bench-secret"
	}
	t0 := time.Now()
	d := apptest.Start(b, func(cfg *config.Config) {
		cfg.Backend = "asterisk"
		cfg.Asterisk.Nodes = []config.AsteriskNode{{Name: "a1", URL: url, Username: user, Password: password, App: "pbxd-bench"}}
		cfg.Reconciler.ResyncInterval = config.Duration(time.Hour) // only the resyncs the benchmark asks for
	})
	started := time.Now()
	for d.App.Ready(b.Context()) != nil {
		time.Sleep(5 * time.Millisecond)
	}
	b.Logf("daemon built in %v (database included), then ready in %v", started.Sub(t0).Round(time.Millisecond),
		time.Since(started).Round(time.Millisecond))
	acct := d.CreateAccount(b, map[string]any{"sip_domain": fmt.Sprintf("b%d.voip.example.net", time.Now().Unix()),
		"extension_range": map[string]int{"first": 10000, "last": 10000 + 2*n}})
	tl := startTimeline(b, d, acct)
	t0, c0 := time.Now(), cpuTime()
	d.Change(b, acct, map[string]any{"package": "fr-fixed-mobile", "quantity": n})
	waitPending(b, d, 0)
	el, cpu := time.Since(t0), cpuTime()-c0
	tl.end()
	b.Logf("initial sync of %d lines (order confirm included): %v, %.0f lines/s, pbxd CPU %.0f%% of a core", n, el.Round(time.Millisecond),
		float64(n)/el.Seconds(), 100*cpu.Seconds()/el.Seconds())
	rows, err := d.App.Pool().Query(b.Context(), `SELECT id::text FROM lines WHERE account_id = $1`, acct)
	if err != nil {
		b.Fatal(err)
	}
	var ids []string
	for rows.Next() {
		var id string
		_ = rows.Scan(&id)
		ids = append(ids, id)
	}
	rows.Close()
	return &fixture{c: c, d: d, acct: acct, lines: ids}
}

func waitPending(b *testing.B, d *apptest.Daemon, want int) {
	for {
		var n int
		if err := d.App.Pool().QueryRow(b.Context(), `SELECT count(*) FROM lines WHERE revision > applied_revision`).Scan(&n); err != nil {
			b.Fatal(err)
		}
		if n == want {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func lineCount() int {
	if n, err := strconv.Atoi(os.Getenv("PBXD_BENCH_LINES")); err == nil && n > 0 {
		return n
	}
	return 10000
}

// BenchmarkAsterisk sets up N lines once (default 10,000), then measures
// full resyncs and single-change latency.
func BenchmarkAsterisk(b *testing.B) {
	n := lineCount()
	f := setup(b, n)
	ctx := context.Background()

	// Full resync that pushes every line again (the PBX forgot them all).
	b.Run("FullResyncRepush", func(b *testing.B) {
		f.needChild(b)
		var wall, cpu time.Duration
		for range b.N {
			f.c.Do(b, "wipe")
			t0, c0 := time.Now(), cpuTime()
			if err := f.d.App.Reconciler().Resync(ctx); err != nil {
				b.Fatal(err)
			}
			wall += time.Since(t0)
			cpu += cpuTime() - c0
		}
		if got := f.c.Do(b, "count"); got != fmt.Sprintf("%d %d %d", n, n, n) {
			b.Fatalf("after resync the server holds %s objects", got)
		}
		report(b, n*b.N, 3, wall, cpu)
	})

	// Full resync with nothing to repair: List (3 GETs per line) and diff.
	// It must write nothing, and make Asterisk log nothing.
	b.Run("FullResyncNoop", func(b *testing.B) {
		var wall, cpu time.Duration
		puts0, warn0 := f.puts(b), asteriskWarnings(b)
		for range b.N {
			t0, c0 := time.Now(), cpuTime()
			if err := f.d.App.Reconciler().Resync(ctx); err != nil {
				b.Fatal(err)
			}
			wall += time.Since(t0)
			cpu += cpuTime() - c0
		}
		report(b, n*b.N, 3, wall, cpu)
		b.ReportMetric((f.puts(b)-puts0)/float64(b.N), "PUTs/resync")
		if warn0 >= 0 {
			b.ReportMetric(float64(asteriskWarnings(b)-warn0)/float64(b.N), "asterisk-warnings/resync")
		}
	})

	const samples = 200
	b.Run("ChangeLatencyIdle", func(b *testing.B) {
		lat := f.changes(b, samples, nil)
		latencies(b, lat)
	})

	// A resync run concurrently with the reconciler's loop (as the
	// benchmark calls Resync itself), the PBX having forgotten everything.
	b.Run("ChangeLatencyDuringResync", func(b *testing.B) {
		f.needChild(b)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				f.c.Do(b, "wipe")
				_ = f.d.App.Reconciler().Resync(ctx)
			}
		}()
		time.Sleep(200 * time.Millisecond)
		lat := f.changes(b, samples, nil)
		close(stop)
		wg.Wait()
		latencies(b, lat)
	})

	// The resync the reconciler's own loop runs after Asterisk restarted
	// (memory wizard: everything is pushed again).
	b.Run("ChangeLatencyDuringRestartResync", func(b *testing.B) {
		f.needChild(b)
		var lat []time.Duration
		for len(lat) < samples {
			f.c.Do(b, "restart")
			time.Sleep(50 * time.Millisecond)
			lat = append(lat, f.changes(b, 20, nil)...)
		}
		latencies(b, lat)
	})
}

// puts is how many PUTs pbxd has sent to ARI.
func (f *fixture) puts(b *testing.B) float64 {
	mfs, err := f.d.Registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "pbxd_pbx_asterisk_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "op" && strings.HasPrefix(l.GetValue(), "put_") {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// asteriskWarnings counts the WARNING lines of the real Asterisk's log
// (PBXD_TEST_ASTERISK_LOG); -1 without one.
func asteriskWarnings(b *testing.B) int {
	path := os.Getenv("PBXD_TEST_ASTERISK_LOG")
	if path == "" {
		return -1
	}
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	return strings.Count(string(data), "] WARNING[")
}

func report(b *testing.B, lines, objectsPerLine int, wall, cpu time.Duration) {
	b.ReportMetric(float64(lines)/wall.Seconds(), "lines/s")
	b.ReportMetric(float64(lines*objectsPerLine)/wall.Seconds(), "objects/s")
	b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "cpu%")
	// pbxd's CPU at 2,000 objects/s, as a share of one core.
	b.ReportMetric(100*cpu.Seconds()/float64(lines*objectsPerLine)*2000, "cpu%@2000obj/s")
}

// changes commits count single-line changes one after another (one
// transaction each, with the NOTIFY, as provisioning does) and returns, for
// each, the time from just before the commit until the reconciler recorded
// the revision as applied (polled every 200µs).
func (f *fixture) changes(b *testing.B, count int, _ chan struct{}) []time.Duration {
	ctx := b.Context()
	pool := f.d.App.Pool()
	var out []time.Duration
	for range count {
		id := f.lines[rand.IntN(len(f.lines))]
		tx, err := pool.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		var rev int64
		if err := tx.QueryRow(ctx, `UPDATE lines SET caller_id = $2, revision = revision + 1, changed_at = now() WHERE id = $1 RETURNING revision`,
			id, fmt.Sprintf("Bench %d", rand.IntN(1e6))).Scan(&rev); err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `SELECT pg_notify('pbxd_lines', '')`); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
		for {
			var applied int64
			if err := pool.QueryRow(ctx, `SELECT applied_revision FROM lines WHERE id = $1`, id).Scan(&applied); err != nil {
				b.Fatal(err)
			}
			if applied >= rev {
				break
			}
			if time.Since(t0) > 5*time.Minute {
				b.Fatal("change never applied")
			}
			time.Sleep(200 * time.Microsecond)
		}
		out = append(out, time.Since(t0))
	}
	return out
}

func latencies(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	b.ReportMetric(float64(q(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(q(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}
