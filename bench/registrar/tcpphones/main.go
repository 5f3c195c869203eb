// Command tcpphones simulates phones registering over persistent TCP
// connections: each opens one connection, registers (REGISTER, 401,
// REGISTER with digest, 200) and re-registers on the same connection every
// -interval, as phones behind NAT do. It is the load of
// bench/registrar/tcp.sh; the users and passwords are those of
// shared/bench/registrar/gen-subscribers.sh.
//
// It prints "phase=connected ok=N failed=N" once every phone has
// registered once, "phase=steady ok=N failed=N" every -report, and
// "phase=end ok=N failed=N conns=N" after -duration of steady state.
package main

import (
	"bufio"
	"crypto/md5"
	"encoding/hex"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	target := flag.String("target", "", "registrar TCP address host:port")
	domain := flag.String("domain", "bench.example", "SIP domain (digest realm)")
	users := flag.Int("users", 10000, "phones (one TCP connection each)")
	first := flag.Int("first", 100000, "first username")
	interval := flag.Duration("interval", 60*time.Second, "re-registration interval")
	ramp := flag.Duration("ramp", 20*time.Second, "spread the first registrations over this long")
	duration := flag.Duration("duration", 120*time.Second, "steady state to run after every phone registered")
	report := flag.Duration("report", 30*time.Second, "progress line interval")
	flag.Parse()
	if *target == "" {
		fmt.Fprintln(os.Stderr, "tcpphones: -target required")
		os.Exit(2)
	}
	var ok, failed, conns atomic.Int64
	var registered sync.WaitGroup
	registered.Add(*users)
	stop := make(chan struct{})
	for i := range *users {
		p := phone{user: strconv.Itoa(*first + i), domain: *domain, target: *target}
		p.password = fmt.Sprintf("pw%08d", ((*first+i)*7919+12345)%99999989)
		start := time.Duration(int64(*ramp) * int64(i) / int64(*users))
		go p.run(start, *interval, stop, &registered, &ok, &failed, &conns)
	}
	registered.Wait()
	fmt.Printf("phase=connected ok=%d failed=%d conns=%d\n", ok.Load(), failed.Load(), conns.Load())
	end := time.After(*duration)
	tick := time.NewTicker(*report)
	for {
		select {
		case <-tick.C:
			fmt.Printf("phase=steady ok=%d failed=%d conns=%d\n", ok.Load(), failed.Load(), conns.Load())
		case <-end:
			close(stop)
			fmt.Printf("phase=end ok=%d failed=%d conns=%d\n", ok.Load(), failed.Load(), conns.Load())
			return
		}
	}
}

type phone struct {
	user, password, domain, target string
	callID                         string
	cseq                           int
}

// run keeps one connection and registers on it every interval; a broken
// connection is counted as a failure and reopened.
func (p *phone) run(start, interval time.Duration, stop chan struct{}, registered *sync.WaitGroup, ok, failed, conns *atomic.Int64) {
	time.Sleep(start)
	p.callID = fmt.Sprintf("%x@tcpphones", rand.Uint64())
	first := true
	var c net.Conn
	var r *textproto.Reader
	for {
		if c == nil {
			var err error
			if c, err = net.DialTimeout("tcp", p.target, 10*time.Second); err != nil {
				failed.Add(1)
				c = nil
			} else {
				conns.Add(1)
				r = textproto.NewReader(bufio.NewReader(c))
			}
		}
		if c != nil {
			if err := p.register(c, r); err != nil {
				failed.Add(1)
				_ = c.Close()
				conns.Add(-1)
				c = nil
			} else {
				ok.Add(1)
			}
		}
		if first {
			first = false
			registered.Done()
		}
		select {
		case <-stop:
			if c != nil {
				_ = c.Close()
			}
			return
		case <-time.After(interval):
		}
	}
}

// register does REGISTER, 401, REGISTER with Authorization, 200.
func (p *phone) register(c net.Conn, r *textproto.Reader) error {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	code, hdr, err := p.send(c, r, "")
	if err != nil {
		return err
	}
	if code != 401 {
		return fmt.Errorf("first REGISTER: %d", code)
	}
	nonce := param(hdr.Get("WWW-Authenticate"), "nonce")
	cnonce := strconv.FormatUint(rand.Uint64(), 16)
	uri := "sip:" + p.domain
	ha1 := md5hex(p.user + ":" + p.domain + ":" + p.password)
	ha2 := md5hex("REGISTER:" + uri)
	resp := md5hex(ha1 + ":" + nonce + ":00000001:" + cnonce + ":auth:" + ha2)
	auth := fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=MD5, cnonce="%s", qop=auth, nc=00000001`,
		p.user, p.domain, nonce, uri, resp, cnonce)
	if code, _, err = p.send(c, r, auth); err != nil {
		return err
	}
	if code != 200 {
		return fmt.Errorf("authenticated REGISTER: %d", code)
	}
	return nil
}

func (p *phone) send(c net.Conn, r *textproto.Reader, auth string) (int, textproto.MIMEHeader, error) {
	p.cseq++
	la := c.LocalAddr().String()
	var b strings.Builder
	fmt.Fprintf(&b, "REGISTER sip:%s SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK%x\r\nMax-Forwards: 70\r\n", p.domain, la, rand.Uint64())
	fmt.Fprintf(&b, "From: <sip:%s@%s>;tag=%s\r\nTo: <sip:%s@%s>\r\nCall-ID: %s\r\nCSeq: %d REGISTER\r\n", p.user, p.domain, p.user, p.user, p.domain, p.callID, p.cseq)
	fmt.Fprintf(&b, "Contact: <sip:%s@%s;transport=tcp>\r\nExpires: 120\r\n", p.user, la)
	b.WriteString("Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, MESSAGE, NOTIFY, REFER, UPDATE\r\nSupported: path, gruu, outbound\r\n")
	if auth != "" {
		b.WriteString("Authorization: " + auth + "\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	if _, err := c.Write([]byte(b.String())); err != nil {
		return 0, nil, err
	}
	status, err := r.ReadLine()
	if err != nil {
		return 0, nil, err
	}
	hdr, err := r.ReadMIMEHeader()
	if err != nil {
		return 0, nil, err
	}
	if n, _ := strconv.Atoi(hdr.Get("Content-Length")); n > 0 {
		if _, err := r.R.Discard(n); err != nil {
			return 0, nil, err
		}
	}
	f := strings.Fields(status)
	if len(f) < 2 {
		return 0, nil, fmt.Errorf("status line %q", status)
	}
	code, err := strconv.Atoi(f[1])
	return code, hdr, err
}

// param returns a parameter of a Digest challenge.
func param(h, name string) string {
	i := strings.Index(h, name+`="`)
	if i < 0 {
		return ""
	}
	v := h[i+len(name)+2:]
	if j := strings.IndexByte(v, '"'); j >= 0 {
		return v[:j]
	}
	return ""
}

func md5hex(s string) string { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }
