// Command soak attacks an in-process built-in registrar the ways issue 15
// describes, within fixed bounds, while a legitimate phone keeps
// registering, and prints per phase the resident memory, the heap after
// GC, the goroutines, the slowest /metrics scrape and the phone's success
// rate:
//
//  1. datagrams: one datagram from each of N distinct source addresses
//     (127.0.0.0/8): junk, REGISTERs with a junk Authorization (spoofed
//     failures) and INVITEs, in turn;
//
//  2. tcp: idle TCP connections with a partial header (two child
//     processes: this sandbox's hard fd limit is 20,000 per process), held,
//     then closed by the idle timeout;
//
//  3. flood: REGISTERs with wrong passwords from many sources, each a real
//     round trip (challenge, wrong answer), past the throttle table size;
//
//  4. after: everything stopped, the phone alone.
//
//     go run ./bench/soak                   # the bounds of issue 15
//     go run ./bench/soak -datagrams 100000 -tcp 2000 -flood 20000   # quicker
package main

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pbxd/pbxd/pbx"
	"github.com/pbxd/pbxd/sip"
)

const (
	domain = "soak.example"
	user   = "100"
	pass   = "legit-password"
)

func main() {
	datagrams := flag.Int("datagrams", 1_000_000, "datagrams, each from its own source address")
	tcpConns := flag.Int("tcp", 20_000, "idle TCP connections (split over two child processes)")
	flood := flag.Int("flood", 110_000, "failing REGISTER round trips, each from its own source")
	idle := flag.Duration("idle", 20*time.Second, "registrar idle timeout for TCP")
	child := flag.String("tcp-child", "", "internal: open connections to this address")
	childN := flag.Int("n", 0, "internal: connections for -tcp-child")
	childBase := flag.Int("base", 0, "internal: first source block for -tcp-child")
	flag.Parse()
	if *child != "" {
		tcpChild(*child, *childN, *childBase)
		return
	}
	if err := run(*datagrams, *tcpConns, *flood, *idle); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

type discardStore struct{}

func (discardStore) LoadBindings(context.Context) ([]sip.Binding, error) { return nil, nil }
func (discardStore) SaveBinding(context.Context, sip.Binding) error      { return nil }
func (discardStore) DeleteBinding(context.Context, string, string) error { return nil }
func (discardStore) DeleteLine(context.Context, string) error            { return nil }

func run(datagrams, tcpConns, flood int, idle time.Duration) error {
	cfg := sip.DefaultConfig()
	cfg.UDPListen, cfg.TCPListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Secret = []byte("soak soak soak soak soak soak!!!")
	cfg.ConnIdleTimeout = idle
	cfg.ConnsMax = 19_000 // under this process's fd limit of 20,000
	reg := prometheus.NewRegistry()
	r, err := sip.New(cfg, discardStore{}, nil, nil, reg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	go func() {
		for range r.Events() {
		}
	}()
	md5sum := func(s string) string { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }
	if err := r.Apply(ctx, pbx.LineConfig{ID: "legit", Domain: domain, Username: user, Extension: user,
		HA1MD5: md5sum(user + ":" + domain + ":" + pass)}); err != nil {
		return err
	}
	for !r.Connected() {
		time.Sleep(10 * time.Millisecond)
	}
	udp, tcp := r.Addrs().UDP, r.Addrs().TCP
	fmt.Printf("registrar udp %s tcp %s, GOMAXPROCS %d, ThrottleMaxSources %d, ConnsMax %d, idle %v\n",
		udp, tcp, runtime.GOMAXPROCS(0), cfg.ThrottleMaxSources, cfg.ConnsMax, idle)

	ph := newPhone(udp)
	go ph.loop(ctx)
	scrape := newScraper(reg)
	go scrape.loop(ctx)

	phase := func(name string, f func() error) error {
		ph.reset()
		scrape.reset()
		start := time.Now()
		err := f()
		report(name, time.Since(start), ph, scrape, reg)
		return err
	}
	if err := phase("baseline", func() error { time.Sleep(3 * time.Second); return nil }); err != nil {
		return err
	}
	if err := phase("datagrams", func() error { return spray(udp, datagrams) }); err != nil {
		return err
	}
	if err := phase("tcp", func() error { return holdTCP(tcp, tcpConns, idle, r) }); err != nil {
		return err
	}
	if err := phase("flood", func() error { return floodRegister(udp, flood) }); err != nil {
		return err
	}
	if err := phase("after", func() error { time.Sleep(5 * time.Second); return nil }); err != nil {
		return err
	}
	cancel()
	return <-done
}

// report prints one line per phase.
func report(name string, d time.Duration, ph *phone, s *scraper, reg *prometheus.Registry) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	ok, tries := ph.ok.Load(), ph.tries.Load()
	rate := 0.0
	if tries > 0 {
		rate = 100 * float64(ok) / float64(tries)
	}
	fmt.Printf("PHASE %-9s %6.1fs  rss %4d MB  heap %5.1f MB  goroutines %5d  metrics max %6.1f ms  phone %d/%d ok (%.1f%%)\n",
		name, d.Seconds(), rssMB(), float64(ms.HeapAlloc)/(1<<20), runtime.NumGoroutine(),
		float64(s.max.Load())/1e6, ok, tries, rate)
	fmt.Printf("        %s\n", counters(reg))
}

func rssMB() int {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			kb, _ := strconv.Atoi(strings.Fields(l)[1])
			return kb / 1024
		}
	}
	return -1
}

// counters summarises the registrar's metrics.
func counters(reg *prometheus.Registry) string {
	mfs, _ := reg.Gather()
	var parts []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			if v == 0 {
				continue
			}
			name := strings.TrimPrefix(mf.GetName(), "pbxd_sip_")
			for _, l := range m.GetLabel() {
				name += "{" + l.GetValue() + "}"
			}
			parts = append(parts, fmt.Sprintf("%s=%g", name, v))
		}
	}
	return strings.Join(parts, " ")
}

// scraper gathers the metrics every 100 ms and keeps the slowest.
type scraper struct {
	reg *prometheus.Registry
	max atomic.Int64 // ns
}

func newScraper(reg *prometheus.Registry) *scraper { return &scraper{reg: reg} }
func (s *scraper) reset()                          { s.max.Store(0) }
func (s *scraper) loop(ctx context.Context) {
	for ctx.Err() == nil {
		start := time.Now()
		_, _ = s.reg.Gather()
		if d := int64(time.Since(start)); d > s.max.Load() {
			s.max.Store(d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// phone registers every 200 ms from 127.0.0.1 with the right password.
type phone struct {
	target    *net.UDPAddr
	ok, tries atomic.Int64
}

func newPhone(target string) *phone {
	a, _ := net.ResolveUDPAddr("udp", target)
	return &phone{target: a}
}

func (p *phone) reset() { p.ok.Store(0); p.tries.Store(0) }

var nonceRE = regexp.MustCompile(`nonce="([^"]+)"`)

func (p *phone) loop(ctx context.Context) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		panic(err)
	}
	defer func() { _ = c.Close() }() // a UDP socket: nothing buffered to lose
	port := c.LocalAddr().(*net.UDPAddr).Port
	buf := make([]byte, 65535)
	exchange := func(msg string) string {
		_, _ = c.WriteToUDP([]byte(msg), p.target)
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _, err := c.ReadFromUDP(buf)
		if err != nil {
			return ""
		}
		return string(buf[:n])
	}
	for seq := 1; ctx.Err() == nil; seq += 2 {
		p.tries.Add(1)
		res := exchange(register(port, seq, "legit-call", user, ""))
		if m := nonceRE.FindStringSubmatch(res); m != nil {
			res = exchange(register(port, seq+1, "legit-call", user, digest(user, pass, m[1])))
			if strings.HasPrefix(res, "SIP/2.0 200 ") {
				p.ok.Add(1)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// register is a phone-like REGISTER (larger than its challenge).
func register(port, cseq int, callID, u, auth string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "REGISTER sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-%s-%d;rport\r\n", domain, port, callID, cseq)
	fmt.Fprintf(&b, "Max-Forwards: 70\r\nFrom: <sip:%s@%s>;tag=%d\r\nTo: <sip:%s@%s>\r\nCall-ID: %s\r\nCSeq: %d REGISTER\r\n", u, domain, cseq, u, domain, callID, cseq)
	fmt.Fprintf(&b, "Contact: <sip:%s@127.0.0.1:%d>;expires=600\r\nUser-Agent: pbxd-soak-phone\r\n", u, port)
	b.WriteString("Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY, REFER, MESSAGE\r\nSupported: path, gruu, outbound\r\n")
	if auth != "" {
		b.WriteString("Authorization: " + auth + "\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

func digest(u, pw, nonce string) string {
	h := func(s string) string { x := md5.Sum([]byte(s)); return hex.EncodeToString(x[:]) }
	uri := "sip:" + domain
	resp := h(h(u+":"+domain+":"+pw) + ":" + nonce + ":00000001:c0ffee:auth:" + h("REGISTER:"+uri))
	return fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=MD5, cnonce="c0ffee", qop=auth, nc=00000001`,
		u, domain, nonce, uri, resp)
}

// source returns the i-th source address in 127.1.0.1 - 127.255.255.254.
func source(i int) [4]byte {
	return [4]byte{127, byte(1 + i/(256*254)), byte(i / 254 % 256), byte(1 + i%254)}
}

// spray sends n datagrams, each from its own source address, with raw
// system calls (a bound socket per datagram).
func spray(target string, n int) error {
	ta, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return err
	}
	dst := &syscall.SockaddrInet4{Port: ta.Port, Addr: [4]byte{127, 0, 0, 1}}
	junkAuth := []byte(strings.ReplaceAll(register(5060, 1, "spoof", user, `Digest username="100", realm="soak.example", nonce="junk", uri="sip:soak.example", response="00"`),
		"127.0.0.1:5060", "192.0.2.1:5060"))
	invite := []byte("INVITE sip:100@soak.example SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-inv\r\n" +
		"From: <sip:x@example.net>;tag=1\r\nTo: <sip:100@soak.example>\r\nCall-ID: inv\r\nCSeq: 1 INVITE\r\n" +
		"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
	payloads := [][]byte{[]byte("x"), junkAuth, invite}
	before := udpRcvbufErrors()
	var wg sync.WaitGroup
	var sent, failed atomic.Int64
	workers := 2 * runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
				if err != nil {
					failed.Add(1)
					continue
				}
				if syscall.Bind(fd, &syscall.SockaddrInet4{Addr: source(i)}) == nil &&
					syscall.Sendto(fd, payloads[i%len(payloads)], 0, dst) == nil {
					sent.Add(1)
				} else {
					failed.Add(1)
				}
				_ = syscall.Close(fd)
			}
		})
	}
	wg.Wait()
	time.Sleep(time.Second) // let the readers drain the socket
	fmt.Printf("        datagrams sent %d from %d sources, failed %d; dropped by the kernel (receive buffer full) %d\n",
		sent.Load(), n, failed.Load(), udpRcvbufErrors()-before)
	return nil
}

// udpRcvbufErrors reads the host's UDP RcvbufErrors (/proc/net/snmp).
func udpRcvbufErrors() int {
	b, _ := os.ReadFile("/proc/net/snmp")
	var names []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, name := range names {
			if name == "RcvbufErrors" && i < len(f) {
				v, _ := strconv.Atoi(f[i])
				return v
			}
		}
	}
	return 0
}

// holdTCP opens n idle connections (partial header) from two child
// processes, reports them while held, then waits for the idle timeout to
// close them.
func holdTCP(target string, n int, idle time.Duration, r *sip.Registrar) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var kids []*exec.Cmd
	var opened atomic.Int64
	var wg sync.WaitGroup
	for k := range 2 {
		cmd := exec.Command(self, "-tcp-child", target, "-n", strconv.Itoa(n/2), "-base", strconv.Itoa(k*1000))
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return err
		}
		kids = append(kids, cmd)
		wg.Go(func() {
			sc := bufio.NewScanner(out)
			if sc.Scan() {
				v, _ := strconv.Atoi(strings.TrimPrefix(sc.Text(), "opened "))
				opened.Add(int64(v))
			}
			for sc.Scan() {
			}
		})
	}
	// The children print "opened N" once their connections are up.
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		time.Sleep(time.Second)
		if opened.Load() > 0 && len(kids) == 2 {
			break
		}
	}
	time.Sleep(2 * time.Second)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("        held: clients opened %d, registrar open %d, rss %d MB, heap %.1f MB, goroutines %d\n",
		opened.Load(), r.OpenConnections(), rssMB(), float64(ms.HeapAlloc)/(1<<20), runtime.NumGoroutine())
	start := time.Now()
	for r.OpenConnections() > 0 && time.Since(start) < idle+30*time.Second {
		time.Sleep(500 * time.Millisecond)
	}
	fmt.Printf("        idle close: registrar open %d after %.1fs\n", r.OpenConnections(), time.Since(start).Seconds())
	for _, k := range kids {
		_ = k.Process.Kill()
		_ = k.Wait()
	}
	wg.Wait()
	return nil
}

// tcpChild opens n connections to target from 127.(2+base/250...).x.1
// sources, 200 per source address (the default per-source cap), each
// with a partial header, then waits to be killed.
func tcpChild(target string, n, base int) {
	var conns []net.Conn
	for i := range n {
		blk := base + i/200
		src := net.IPv4(127, byte(200+blk/250), byte(blk%250), 1)
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", target)
		if err != nil {
			if errors.Is(err, syscall.EMFILE) {
				break
			}
			continue
		}
		_, _ = c.Write([]byte("REGISTER sip:soak.example SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK-idle\r\n"))
		conns = append(conns, c)
	}
	fmt.Printf("opened %d\n", len(conns))
	select {}
}

// floodRegister makes n failing REGISTER round trips, each from its own
// source address: a challenge, then a wrong password echoing its nonce,
// so every failure counts against its source.
func floodRegister(target string, n int) error {
	ta, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	var fails, blocked, lost atomic.Int64
	workers := 64
	for w := range workers {
		wg.Go(func() {
			buf := make([]byte, 65535)
			for i := w; i < n; i += workers {
				s := source(2_000_000 + i) // other addresses than the spray's
				c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IP(s[:])})
				if err != nil {
					lost.Add(1)
					continue
				}
				port := c.LocalAddr().(*net.UDPAddr).Port
				ex := func(msg string) string {
					_, _ = c.WriteToUDP([]byte(msg), ta)
					_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
					k, _, err := c.ReadFromUDP(buf)
					if err != nil {
						return ""
					}
					return string(buf[:k])
				}
				u := strconv.Itoa(1000 + i%5000)
				res := ex(register(port, 1, "flood"+strconv.Itoa(i), u, ""))
				switch m := nonceRE.FindStringSubmatch(res); {
				case m != nil:
					res = ex(register(port, 2, "flood"+strconv.Itoa(i), u, digest(u, "wrong", m[1])))
					if strings.HasPrefix(res, "SIP/2.0 401") {
						fails.Add(1)
					} else if strings.HasPrefix(res, "SIP/2.0 403") {
						blocked.Add(1)
					} else {
						lost.Add(1)
					}
				case strings.HasPrefix(res, "SIP/2.0 403"):
					blocked.Add(1)
				default:
					lost.Add(1)
				}
				_ = c.Close()
			}
		})
	}
	wg.Wait()
	fmt.Printf("        flood: %d sources, failures answered 401 %d, 403 %d, unanswered %d\n", n, fails.Load(), blocked.Load(), lost.Load())
	return nil
}
