// Command registrar is the load harness of the built-in SIP registrar: it
// provisions N lines (the subscribers of shared/bench/registrar/
// gen-subscribers.sh: users FIRST.., password pw%08d of
// (user*7919+12345) mod 99999989, domain bench.example) into an in-process
// sip.Registrar, checks that auth is enforced, warms up, then drives
// sipp-register.sh at rising rates and prints, per rate, successful
// registrations/s and the registrar's CPU (this process's utime+stime:
// sipp runs as separate processes). It ends with the resident memory.
//
//	go run ./bench/registrar                       # 10,000 lines, default rates
//	go run ./bench/registrar -users 100000 -rates "" -memory   # RSS for 100k registered lines
package main

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/pbx"
	"github.com/pbxd/pbxd/sip"
	"github.com/pbxd/pbxd/sip/sippg"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:5090", "UDP address of the registrar")
	domain := flag.String("domain", "bench.example", "SIP domain (digest realm)")
	users := flag.Int("users", 10000, "lines to provision")
	first := flag.Int("first", 100000, "first username")
	rates := flag.String("rates", "1000,2000,5000,10000,20000,max", "offered rates (reg/s) or max, comma separated")
	count := flag.Int("count", 50000, "registrations per fixed rate")
	maxCount := flag.Int("max-count", 200000, "registrations for the max (closed loop) run")
	procs := flag.Int("sipp-procs", 3, "parallel sipp processes")
	warm := flag.Bool("warmup", true, "register every user once at 2000/s first")
	memory := flag.Bool("memory", false, "with -warmup, report RSS per registered line")
	profile := flag.String("profile", "", "write CPU (FILE.cpu) and heap (FILE.heap) profiles of the rate sweep")
	db := flag.String("db", "", "PostgreSQL admin URL: persist bindings there (write-behind, as the daemon does) in a scratch database dropped at exit; empty: keep nothing")
	warmRate := flag.String("warmup-rate", "2000", "rate of the warm-up (first-time registrations), or max (a burst)")
	tcpPhones := flag.String("tcp-phones", "", "instead of sipp: run this tcpphones binary against a TCP listener (-users phones on persistent connections) and report CPU per registration")
	tcpArgs := flag.String("tcp-args", "", "extra arguments for tcpphones (e.g. \"-interval 60s -duration 120s\")")
	tcpCPUs := flag.String("tcp-cpus", "", "run tcpphones on these CPUs (taskset -c LIST), e.g. the ones sipp is pinned to")
	flag.Parse()
	if *profile != "" {
		f, err := os.Create(*profile + ".cpu")
		if err == nil {
			_ = pprof.StartCPUProfile(f)
			defer func() {
				pprof.StopCPUProfile()
				h, _ := os.Create(*profile + ".heap")
				_ = pprof.WriteHeapProfile(h)
			}()
		}
	}
	opt := options{db: *db, warmRate: *warmRate, tcpPhones: *tcpPhones, tcpArgs: *tcpArgs, tcpCPUs: *tcpCPUs}
	if err := run(*listen, *domain, *users, *first, *rates, *count, *maxCount, *procs, *warm, *memory, opt); err != nil {
		fmt.Fprintln(os.Stderr, "registrar bench:", err)
		os.Exit(1) //nolint:gocritic // the profile is not needed on failure

	}
}

// discardStore is a sip.BindingStore that keeps nothing.
type discardStore struct{}

func (discardStore) LoadBindings(context.Context) ([]sip.Binding, error) { return nil, nil }
func (discardStore) SaveBinding(context.Context, sip.Binding) error      { return nil }
func (discardStore) DeleteBinding(context.Context, string, string) error { return nil }
func (discardStore) DeleteLine(context.Context, string) error            { return nil }

func heapMB() float64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapInuse) / (1 << 20)
}

func password(user int) string { return fmt.Sprintf("pw%08d", (user*7919+12345)%99999989) }

func hexMD5(s string) string    { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }
func hexSHA256(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

func rssKB() int {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			n, _ := strconv.Atoi(strings.Fields(l)[1])
			return n
		}
	}
	return 0
}

func cpu() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func settle() int {
	runtime.GC()
	debug.FreeOSMemory()
	time.Sleep(200 * time.Millisecond)
	return rssKB()
}

// options are the harness settings added after run's positional ones.
type options struct {
	db        string // PostgreSQL admin URL, or "" for discardStore
	warmRate  string
	tcpPhones string // tcpphones binary: TCP mode
	tcpArgs   string
	tcpCPUs   string // taskset -c list for tcpphones, or ""
}

// scratchStore creates a migrated database on the server at adminURL and
// returns a sippg store on it and a function dropping it.
func scratchStore(ctx context.Context, adminURL string) (sip.BindingStore, func(), error) {
	pool, drop, err := store.Scratch(ctx, adminURL, fmt.Sprintf("pbxd_regbench_%d", os.Getpid()))
	if err != nil {
		return nil, nil, err
	}
	return sippg.New(pool), drop, nil
}

// counter sums the counter name in reg over the series whose labels
// include every label=value pair of want ("" matches all).
func counter(reg *prometheus.Registry, name, want string) float64 {
	mfs, _ := reg.Gather()
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			ok := want == ""
			for _, l := range m.GetLabel() {
				ok = ok || l.GetName()+"="+l.GetValue() == want
			}
			if ok {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// gauge reads one gauge from reg.
func gauge(reg *prometheus.Registry, name string) float64 {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

// harness is one run of the benchmark: the in-process registrar, its
// provisioned lines and where the sipp scripts and files are.
type harness struct {
	here, work string // the harness directory; the run's temporary directory
	domain     string
	users      int
	procs      int // parallel sipp processes
	opt        options
	reg        *prometheus.Registry
	r          *sip.Registrar
	storeName  string
	csv        string // every line's user;password, in sipp's SEQUENTIAL form
	usersCSV   string // csv's file
	target     string // the registrar's UDP address
	rss0       int    // RSS at start, KB
	rssLines   int    // RSS once the lines are provisioned, KB
}

func run(listen, domain string, users, first int, rates string, count, maxCount, procs int, warm, memory bool, opt options) (err error) {
	here, err := harnessDir()
	if err != nil {
		return err
	}
	if _, err := exec.LookPath("sipp"); err != nil {
		return fmt.Errorf("sipp not installed (apt-get install sip-tester)")
	}
	work, err := os.MkdirTemp("", "pbxd-registrar-bench")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(work) }() // a temporary directory: a leftover is harmless

	h := &harness{here: here, work: work, domain: domain, users: users, procs: procs, opt: opt, rss0: settle()}
	cfg := registrarConfig(listen, users, opt)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx := context.Background()
	bs, storeName, drop, err := bindingStore(ctx, opt)
	if err != nil {
		return err
	}
	defer drop()
	h.storeName = storeName
	h.reg = prometheus.NewRegistry()
	if h.r, err = sip.New(cfg, bs, nil, logger, h.reg); err != nil {
		return err
	}
	if err := h.provision(ctx, first); err != nil {
		return err
	}
	stop := h.start(ctx)
	defer func() { err = errors.Join(err, stop()) }()
	h.rssLines = settle()
	h.target = h.r.Addrs().UDP
	fmt.Printf("# pbxd builtin registrar, %d lines on udp:%s, GOMAXPROCS=%d, sipp procs=%d, binding store %s\n", users, h.target, runtime.GOMAXPROCS(0), procs, h.storeName)

	if opt.tcpPhones != "" {
		return runTCP(h.r, opt, users, first, domain, h.rss0)
	}
	if err := h.authCheck(); err != nil {
		return err
	}
	if warm {
		if err := h.warmUp(memory); err != nil {
			return err
		}
	}
	return h.sweep(rates, count, maxCount)
}

// registrarConfig is the registrar's configuration for the benchmark: UDP
// on listen, TCP for tcpphones' users phones, no throttle.
func registrarConfig(listen string, users int, opt options) sip.Config {
	cfg := sip.DefaultConfig()
	cfg.UDPListen, cfg.TCPListen = listen, ""
	if opt.tcpPhones != "" {
		cfg.TCPListen = "127.0.0.1:0"
		cfg.ConnsPerSource = users + 1000 // every phone comes from 127.0.0.1
		cfg.ConnsMax = max(cfg.ConnsMax, cfg.ConnsPerSource)
	}
	cfg.Secret = []byte("bench-secret-0123456789")
	cfg.MaxExpires = 2 * time.Hour
	// The auth check sends 20 wrong passwords from one IP, and every
	// subscriber is sipp on 127.0.0.1: with the per-source block (100
	// failures a minute), the authentication failures of an overloaded
	// round (sipp timing out and retransmitting) blocked the whole load for
	// 10 minutes and failed every later registration. Kamailio's set-up has no
	// throttle either.
	cfg.ThrottleFailures, cfg.ThrottleSourceFailures = 0, 0
	return cfg
}

// bindingStore is where the registrar keeps its bindings, with its name for
// the report and a function dropping it. discardStore: the bindings are
// measured in the registrar, not twice (MemoryStore would hold a second
// copy); -db persists them in PostgreSQL like the daemon.
func bindingStore(ctx context.Context, opt options) (bs sip.BindingStore, name string, drop func(), err error) {
	if opt.db == "" {
		return discardStore{}, "none", func() {}, nil
	}
	st, drop, err := scratchStore(ctx, opt.db)
	if err != nil {
		return nil, "", nil, err
	}
	return st, "postgresql", drop, nil
}

// provision applies the users lines from first on to the registrar and
// writes their credentials for sipp.
func (h *harness) provision(ctx context.Context, first int) error {
	var csv strings.Builder
	csv.WriteString("SEQUENTIAL\n")
	for i := range h.users {
		u := first + i
		user, pw := strconv.Itoa(u), password(u)
		lc := pbx.LineConfig{
			ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", u), Domain: h.domain, Username: user, Extension: user,
			HA1MD5: hexMD5(user + ":" + h.domain + ":" + pw), HA1SHA256: hexSHA256(user + ":" + h.domain + ":" + pw),
		}
		if err := h.r.Apply(ctx, lc); err != nil {
			return err
		}
		fmt.Fprintf(&csv, "%s;%s\n", user, pw)
	}
	h.csv = csv.String()
	h.usersCSV = filepath.Join(h.work, "users.csv")
	return os.WriteFile(h.usersCSV, []byte(h.csv), 0o600)
}

// start runs the registrar until the returned stop, which returns Run's
// error; it returns once the registrar is connected.
func (h *harness) start(ctx context.Context) (stop func() error) {
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- h.r.Run(rctx) }()
	go func() {
		for range h.r.Events() {
		}
	}()
	for !h.r.Connected() {
		time.Sleep(10 * time.Millisecond)
	}
	return func() error {
		cancel()
		return <-done
	}
}

// load runs sipp-register.sh: n registrations at rate with the credentials
// of csvPath over procs sipp processes. It returns the script's key=value
// report.
func (h *harness) load(rate string, n int, csvPath string, procs int) (map[string]string, error) {
	cmd := exec.Command(filepath.Join(h.here, "sipp-register.sh"), h.target, h.domain, rate, strconv.Itoa(n), csvPath)
	cmd.Env = append(os.Environ(), "SIPP_PROCS="+strconv.Itoa(procs), "SIPP_WORKDIR="+filepath.Join(h.work, "sipp-"+rate))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	kv := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			kv[k] = v
		}
	}
	return kv, err
}

// authCheck: 20 right passwords register, 20 wrong ones do not.
func (h *harness) authCheck() error {
	lines := strings.Split(strings.TrimSpace(h.csv), "\n")
	n := min(20, h.users)
	good := "SEQUENTIAL\n" + strings.Join(lines[1:1+n], "\n") + "\n"
	bad := "SEQUENTIAL\n"
	for _, l := range lines[1 : 1+n] {
		u, p, _ := strings.Cut(l, ";")
		bad += u + ";wrong-" + p + "\n"
	}
	_ = os.WriteFile(filepath.Join(h.work, "good.csv"), []byte(good), 0o600)
	_ = os.WriteFile(filepath.Join(h.work, "bad.csv"), []byte(bad), 0o600)
	// On a busy machine a right password may time out: try again (three
	// times); a wrong password that registers fails at once.
	for try := 1; ; try++ {
		g, err := h.load("50", n, filepath.Join(h.work, "good.csv"), 1)
		if err != nil {
			return fmt.Errorf("auth check: %w", err)
		}
		bd, _ := h.load("50", n, filepath.Join(h.work, "bad.csv"), 1)
		fmt.Printf("auth check: right passwords %s/%d registered, wrong passwords %s/%d registered\n", g["successful"], n, bd["successful"], n)
		if bd["successful"] != "0" {
			return fmt.Errorf("auth check failed: %s/%d wrong passwords registered", bd["successful"], n)
		}
		if g["successful"] == strconv.Itoa(n) {
			return nil
		}
		if try == 3 {
			return fmt.Errorf("auth check failed: %s/%d right passwords registered (timeouts?)", g["successful"], n)
		}
	}
}

// warmUp registers every user once at the warm-up rate, waits for the
// write-behind queue to drain and reports it; with memory, then the
// resident memory per line.
func (h *harness) warmUp(memory bool) error {
	c0 := cpu()
	kv, err := h.load(h.opt.warmRate, h.users, h.usersCSV, h.procs)
	if err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	end := time.Now()
	for gauge(h.reg, "pbxd_sip_store_queue_lines") > 0 && time.Since(end) < 5*time.Minute {
		time.Sleep(10 * time.Millisecond)
	}
	drained := time.Since(end)
	ok, _ := strconv.Atoi(kv["successful"])
	fmt.Printf("warm-up: %s/%d first-time registrations at %s/s offered (%s/s served, %s failed, %.1f CPU-us/reg); write-behind queue (%s) drained %.2fs after the last one; bindings %d\n",
		kv["successful"], h.users, h.opt.warmRate, kv["registrations_per_sec"], kv["failed"],
		float64((cpu()-c0).Microseconds())/float64(max(ok, 1)), h.storeName, drained.Seconds(), h.r.ActiveContacts())
	fmt.Printf("RESULT burst users=%d offered=%s ok=%s failed=%s reg_per_s=%s drain_s=%.2f store=%s\n",
		h.users, h.opt.warmRate, kv["successful"], kv["failed"], kv["registrations_per_sec"], drained.Seconds(), h.storeName)
	if memory {
		h.memoryReport()
	}
	return nil
}

// memoryReport prints the resident memory per registered line.
func (h *harness) memoryReport() {
	// UDP answers keep no transactions: nothing to wait for.
	rssReg := settle()
	n := max(h.r.ActiveContacts(), 1)
	fmt.Printf("memory: rss_start=%dKB rss_after_provisioning=%dKB rss_after_registering=%dKB heap_inuse=%.0fMB bindings=%d\n",
		h.rss0, h.rssLines, rssReg, heapMB(), h.r.ActiveContacts())
	fmt.Printf("RESULT memory lines=%d bindings=%d rss_mb=%.0f per_line_bytes=%.0f (provisioned line + binding, runtime included: (rss - rss at start) / lines)\n",
		h.users, h.r.ActiveContacts(), float64(rssReg)/1024, float64(rssReg-h.rss0)*1024/float64(n))
}

// sweep drives each of the comma-separated rates (count registrations, or
// maxCount for "max") and prints the best rate served.
func (h *harness) sweep(rates string, count, maxCount int) error {
	var best float64
	for _, rate := range strings.Split(rates, ",") {
		rate = strings.TrimSpace(rate)
		if rate == "" {
			continue
		}
		cnt := count
		if rate == "max" {
			cnt = maxCount
		}
		rps, err := h.round(rate, cnt)
		if err != nil {
			return err
		}
		best = max(best, rps)
	}
	fmt.Printf("registrations_per_sec=%.0f\n", best)
	return nil
}

// round offers cnt registrations at rate and prints its RESULT line. It
// returns the registrations per second served.
func (h *harness) round(rate string, cnt int) (float64, error) {
	c0, t0 := cpu(), time.Now()
	af0, ip0 := counter(h.reg, "pbxd_sip_auth_failures_total", ""), counter(h.reg, "pbxd_sip_requests_dropped_total", "reason=in_progress")
	kv, err := h.load(rate, cnt, h.usersCSV, h.procs)
	c1 := cpu()
	af := counter(h.reg, "pbxd_sip_auth_failures_total", "") - af0
	inProgress := counter(h.reg, "pbxd_sip_requests_dropped_total", "reason=in_progress") - ip0
	if err != nil {
		return 0, fmt.Errorf("rate %s: %w", rate, err)
	}
	wall, _ := strconv.ParseFloat(kv["sipp_wall_s"], 64)
	if wall <= 0 {
		wall = time.Since(t0).Seconds()
	}
	rps, _ := strconv.ParseFloat(kv["registrations_per_sec"], 64)
	cpuPct := (c1 - c0).Seconds() / wall * 100
	usPerReg := 0.0
	if ok, _ := strconv.ParseFloat(kv["successful"], 64); ok > 0 {
		usPerReg = float64((c1 - c0).Microseconds()) / ok
	}
	fmt.Printf("RESULT rate=%s count=%d ok=%s failed=%s reg_per_s=%.0f pbxd_cpu=%.0f%% us_per_reg=%.1f sipp_cpu=%s%% p50=%s p99=%s retrans=%s rss=%dKB failed_timeout=%s failed_unexpected=%s failed_retrans=%s auth_failures=%.0f dropped_in_progress=%.0f\n",
		rate, cnt, kv["successful"], kv["failed"], rps, cpuPct, usPerReg, kv["sipp_cpu_pct"], kv["latency_p50"], kv["latency_p99"], kv["retransmissions"], rssKB(),
		kv["failed_timeout"], kv["failed_unexpected_msg"], kv["failed_max_udp_retrans"], af, inProgress)
	return rps, nil
}

// harnessDir finds bench/registrar (for sipp-register.sh) from the working
// directory: the module root or the harness directory itself.
func harnessDir() (string, error) {
	for _, d := range []string{"bench/registrar", "."} {
		if _, err := os.Stat(filepath.Join(d, "sipp-register.sh")); err == nil {
			return filepath.Abs(d)
		}
	}
	return "", fmt.Errorf("run from the module root or bench/registrar (sipp-register.sh not found)")
}

// runTCP runs tcpphones against the registrar's TCP listener and reports
// the registrar's CPU per registration while every phone is connected and
// re-registering (steady state), and during the initial connect.
func runTCP(r *sip.Registrar, opt options, users, first int, domain string, rss0 int) error {
	args := []string{"-target", r.Addrs().TCP, "-domain", domain, "-users", strconv.Itoa(users), "-first", strconv.Itoa(first)}
	args = append(args, strings.Fields(opt.tcpArgs)...)
	fmt.Printf("# pbxd builtin registrar, %d phones on persistent TCP connections to %s (%s), GOMAXPROCS=%d\n",
		users, r.Addrs().TCP, strings.Join(args[6:], " "), runtime.GOMAXPROCS(0))
	cmd := exec.Command(opt.tcpPhones, args...)
	if opt.tcpCPUs != "" {
		cmd = exec.Command("taskset", append([]string{"-c", opt.tcpCPUs, opt.tcpPhones}, args...)...)
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	c0, t0 := cpu(), time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	okOf := func(line string) float64 {
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "ok="); ok {
				n, _ := strconv.ParseFloat(v, 64)
				return n
			}
		}
		return 0
	}
	var cConn, cLast time.Duration
	var tConn, tLast time.Time
	var okConn, okLast float64
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		now, c := time.Now(), cpu()
		fmt.Printf("%s  registrar: cpu %.1fs rss %dMB conns %d bindings %d\n", line, c.Seconds(), rssKB()/1024, r.OpenConnections(), r.ActiveContacts())
		switch {
		case strings.HasPrefix(line, "phase=connected"):
			cConn, tConn, okConn = c, now, okOf(line)
			fmt.Printf("RESULT tcp phase=connect phones=%d ok=%.0f wall_s=%.1f us_per_reg=%.1f (TCP accept + first registration)\n",
				users, okConn, now.Sub(t0).Seconds(), float64((c-c0).Microseconds())/max(okConn, 1))
		case strings.HasPrefix(line, "phase=end"):
			cLast, tLast, okLast = c, now, okOf(line)
		}
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("tcpphones: %w", err)
	}
	if okLast > okConn {
		n := okLast - okConn
		w := tLast.Sub(tConn).Seconds()
		fmt.Printf("RESULT tcp phase=steady phones=%d registrations=%.0f wall_s=%.1f reg_per_s=%.0f pbxd_cpu=%.1f%% us_per_reg=%.1f rss_mb=%d rss_start_mb=%d\n",
			users, n, w, n/w, (cLast-cConn).Seconds()/w*100, float64((cLast-cConn).Microseconds())/n, rssKB()/1024, rss0/1024)
	}
	return nil
}
