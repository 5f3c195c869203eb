package billing

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// costMeter measures what a benchmark costs in CPU, which the load of a
// shared machine changes far less than the wall time: the benchmark
// process's own CPU (the daemon runs in it) and the CPU of the PostgreSQL
// backends serving its database, read from /proc. With
// PBXD_BENCH_SAMPLE=FILE it also samples pg_stat_activity every 5 ms and
// writes to FILE where the backends spent their time (busy backends per
// sample by state, wait event and statement).
type costMeter struct {
	pool  *pgxpool.Pool
	self  time.Duration
	pg    map[int]time.Duration
	start time.Time

	stop    chan struct{}
	done    sync.WaitGroup
	samples map[string]int
	total   int
}

// clockTick is the unit of /proc/<pid>/stat's utime and stime (USER_HZ,
// 100 on Linux).
const clockTick = 10 * time.Millisecond

func newCostMeter(pool *pgxpool.Pool) *costMeter { return &costMeter{pool: pool} }

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// backendCPU reads the CPU time of every backend connected to the pool's
// database (nil when /proc is not readable).
func (m *costMeter) backendCPU(ctx context.Context) map[int]time.Duration {
	rows, err := m.pool.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	if err != nil {
		return nil
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil
	}
	out := map[int]time.Duration{}
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return nil // another host, or no access
		}
		// Fields after the command's closing parenthesis: utime and stime
		// are the 12th and 13th.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) < 13 {
			return nil
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		out[int(pid)] = time.Duration(u+s) * clockTick
	}
	return out
}

func (m *costMeter) begin(tb testing.TB) {
	ctx := context.Background()
	m.self, m.pg, m.start = selfCPU(), m.backendCPU(ctx), time.Now()
	if os.Getenv("PBXD_BENCH_SAMPLE") == "" {
		return
	}
	conn, err := pgx.Connect(ctx, m.pool.Config().ConnConfig.ConnString())
	if err != nil {
		tb.Fatal(err)
	}
	m.stop, m.samples = make(chan struct{}), map[string]int{}
	m.done.Add(1)
	go func() {
		defer m.done.Done()
		defer func() { _ = conn.Close(ctx) }() // a sampler of a benchmark
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
			}
			rows, err := conn.Query(ctx, `SELECT state, coalesce(wait_event_type || ':' || wait_event, 'CPU'), left(regexp_replace(query, '\s+', ' ', 'g'), 90)
				FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'`)
			if err != nil {
				return
			}
			for rows.Next() {
				var state, wait, q string
				if rows.Scan(&state, &wait, &q) == nil {
					m.samples[state+" | "+wait+" | "+q]++
				}
			}
			rows.Close()
			m.total++
		}
	}()
}

// end reports the CPU per op, and the samples when taken.
func (m *costMeter) end(b *testing.B) {
	ctx := context.Background()
	self := selfCPU() - m.self
	b.ReportMetric(float64(self.Microseconds())/float64(b.N), "go-cpu-µs/op")
	if after := m.backendCPU(ctx); m.pg != nil && after != nil {
		var pg time.Duration
		for pid, t := range after {
			pg += t - m.pg[pid]
		}
		b.ReportMetric(float64(pg.Microseconds())/float64(b.N), "pg-cpu-µs/op")
	}
	if m.stop == nil {
		return
	}
	close(m.stop)
	m.done.Wait()
	type kv struct {
		k string
		n int
	}
	var all []kv
	for k, n := range m.samples {
		all = append(all, kv{k, n})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].n > all[j].n })
	var out strings.Builder
	fmt.Fprintf(&out, "%s, b.N = %d: %d samples of pg_stat_activity; busy backends per sample by state | wait | statement:\n", b.Name(), b.N, m.total)
	for _, e := range all {
		fmt.Fprintf(&out, "%6.3f %s\n", float64(e.n)/float64(max(m.total, 1)), e.k)
	}
	f, err := os.OpenFile(os.Getenv("PBXD_BENCH_SAMPLE"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = f.Close() }() // written below; its error is the write's
	if _, err := f.WriteString(out.String()); err != nil {
		b.Fatal(err)
	}
}
