package asteriskbench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pbxd/pbxd/internal/app/apptest"
)

// A push's timeline: every timelineEvery while the initial sync runs, how
// many lines are applied, pbxd's ARI requests by kind so far, and, with
// PBXD_TEST_ASTERISK_RX (the command that runs one Asterisk CLI command,
// e.g. "asterisk -C /path/asterisk.conf -rx"), Asterisk's CPU and the depth
// of the taskprocessor queues a push fills. It shows where the time of a
// push goes (pacing waits, round trips, Asterisk's own work) whatever the
// load of the machine it runs on.
const timelineEvery = 2 * time.Second

type timeline struct {
	b    *testing.B
	d    *apptest.Daemon
	acct string
	rx   string
	pid  int

	stop chan struct{}
	done chan struct{}

	mu    sync.Mutex
	rows  []string
	peaks map[string]int // taskprocessor group → deepest queue sampled
	maxes map[string]int // taskprocessor group → Max Depth Asterisk reports
	cpu0  time.Duration
}

// tpGroups are the taskprocessors a push fills, by name prefix.
var tpGroups = []string{"sorcery/aor-", "sorcery/auth-", "sorcery/endpoint-", "pjsip/options/manage"}

func startTimeline(b *testing.B, d *apptest.Daemon, acct string) *timeline {
	tl := &timeline{b: b, d: d, acct: acct, rx: os.Getenv("PBXD_TEST_ASTERISK_RX"),
		stop: make(chan struct{}), done: make(chan struct{}), peaks: map[string]int{}, maxes: map[string]int{}}
	if tl.rx != "" {
		tl.pid = tl.asteriskPID()
		tl.cpu0 = tl.asteriskCPU()
	}
	t0 := time.Now()
	go func() {
		defer close(tl.done)
		tk := time.NewTicker(timelineEvery)
		defer tk.Stop()
		for {
			tl.sample(time.Since(t0))
			select {
			case <-tl.stop:
				tl.sample(time.Since(t0))
				return
			case <-tk.C:
			}
		}
	}()
	return tl
}

// end stops sampling and logs the timeline.
func (tl *timeline) end() {
	close(tl.stop)
	<-tl.done
	tl.b.Logf("push timeline (every %v):\n%s", timelineEvery, strings.Join(tl.rows, "\n"))
	if tl.rx != "" {
		tl.b.Logf("Asterisk taskprocessors, deepest queue sampled / Max Depth reported since Asterisk started: %v / %v", tl.peaks, tl.maxes)
	}
}

func (tl *timeline) sample(at time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var applied int
	_ = tl.d.App.Pool().QueryRow(ctx, `SELECT count(*) FROM lines WHERE account_id = $1 AND applied_revision > 0`, tl.acct).Scan(&applied)
	req := requestCounts(tl.b, tl.d)
	row := fmt.Sprintf("%6.1fs applied %5d | auth PUT %5.0f aor PUT %5.0f ep PUT %5.0f | GET %6.0f probe %5.0f | unavailable %3.0f",
		at.Seconds(), applied, req["put_auth"], req["put_aor"], req["put_endpoint"],
		req["get_endpoint"]+req["get_auth"]+req["get_aor"], req["probe"], req["unavailable"])
	if tl.rx != "" {
		depth := tl.taskprocessors()
		row += fmt.Sprintf(" | asterisk cpu %6.1fs | queued aor %4d auth %4d ep %4d manage %4d",
			(tl.asteriskCPU() - tl.cpu0).Seconds(), depth["sorcery/aor-"], depth["sorcery/auth-"], depth["sorcery/endpoint-"], depth["pjsip/options/manage"])
	}
	tl.mu.Lock()
	tl.rows = append(tl.rows, row)
	tl.mu.Unlock()
}

// requestCounts sums pbxd's ARI requests by op, and every unavailable
// outcome under "unavailable".
func requestCounts(b *testing.B, d *apptest.Daemon) map[string]float64 {
	mfs, err := d.Registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "pbxd_pbx_asterisk_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var op, outcome string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "op":
					op = l.GetValue()
				case "outcome":
					outcome = l.GetValue()
				}
			}
			out[op] += m.GetCounter().GetValue()
			if outcome == "unavailable" {
				out["unavailable"] += m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// cli runs one Asterisk CLI command through PBXD_TEST_ASTERISK_RX.
func (tl *timeline) cli(cmd string) string {
	out, err := exec.Command("sh", "-c", tl.rx+" '"+cmd+"'").Output()
	if err != nil {
		tl.b.Logf("%s %q: %v", tl.rx, cmd, err)
	}
	return string(out)
}

// taskprocessors reads the queues of tpGroups (the deepest of each group)
// and keeps their peaks.
func (tl *timeline) taskprocessors() map[string]int {
	depth := map[string]int{}
	// Filtered: a node has two taskprocessors per AOR, and the whole list
	// would be thousands of lines every sample.
	out := tl.cli("core show taskprocessors like sorcery/") + tl.cli("core show taskprocessors like pjsip/options/manage")
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 {
			continue
		}
		for _, g := range tpGroups {
			if !strings.HasPrefix(f[0], g) {
				continue
			}
			q, err1 := strconv.Atoi(f[2])
			mx, err2 := strconv.Atoi(f[3])
			if err1 == nil && err2 == nil {
				depth[g] = max(depth[g], q)
				tl.mu.Lock()
				tl.peaks[g] = max(tl.peaks[g], q)
				tl.maxes[g] = max(tl.maxes[g], mx)
				tl.mu.Unlock()
			}
		}
	}
	return depth
}

// asteriskPID reads Asterisk's pid from the PID file its settings name.
func (tl *timeline) asteriskPID() int {
	sc := bufio.NewScanner(strings.NewReader(tl.cli("core show settings")))
	for sc.Scan() {
		if path, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "PID file:"); ok {
			data, err := os.ReadFile(strings.TrimSpace(path))
			if err != nil {
				tl.b.Logf("asterisk pid: %v", err)
				return 0
			}
			pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
			return pid
		}
	}
	return 0
}

// asteriskCPU is the user+system CPU time Asterisk has used.
func (tl *timeline) asteriskCPU() time.Duration {
	if tl.pid == 0 {
		return 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", tl.pid))
	if err != nil {
		return 0
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from the 3rd (state) on
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.Atoi(f[11]) // utime (field 14), in clock ticks
	st, _ := strconv.Atoi(f[12]) // stime (field 15)
	return time.Duration(ut+st) * time.Second / 100
}
