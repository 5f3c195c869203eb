package billing

import (
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// wireCounter is a TCP proxy in front of PostgreSQL that counts, from the
// protocol itself, what a benchmark costs the database: round trips (each
// Sync or simple Query the client sends waits for an answer) and
// transactions ended (the server's ReadyForQuery going from "in a
// transaction" back to idle), commits (COMMIT statements, explicit or
// pipelined) and, with PBXD_BENCH_STATEMENTS=1, executions per statement.
type wireCounter struct {
	ln         net.Listener
	target     string
	roundTrips atomic.Int64
	txEnds     atomic.Int64
	commits    atomic.Int64

	mu    sync.Mutex
	execs map[string]int
}

func (w *wireCounter) reset() {
	w.roundTrips.Store(0)
	w.txEnds.Store(0)
	w.commits.Store(0)
	w.mu.Lock()
	w.execs = map[string]int{}
	w.mu.Unlock()
}

func (w *wireCounter) report(b *testing.B) {
	n := float64(b.N)
	b.ReportMetric(float64(w.roundTrips.Load())/n, "roundtrips/op")
	b.ReportMetric(float64(w.commits.Load())/n, "commits/op")
	if os.Getenv("PBXD_BENCH_STATEMENTS") == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	type kv struct {
		sql string
		n   int
	}
	var all []kv
	for k, v := range w.execs {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].n > all[j].n })
	for _, e := range all {
		sql := strings.Join(strings.Fields(e.sql), " ")
		if len(sql) > 160 {
			sql = sql[:160]
		}
		b.Logf("%6.2f/op %s", float64(e.n)/n, sql)
	}
}

func (w *wireCounter) exec(sql string) {
	if strings.EqualFold(strings.TrimSpace(sql), "commit") {
		w.commits.Add(1)
	}
	w.mu.Lock()
	if w.execs != nil {
		w.execs[sql]++
	}
	w.mu.Unlock()
}

// proxyDatabase starts a counter in front of dbURL's server and returns
// the URL to give the daemon instead.
func proxyDatabase(t testing.TB, dbURL string) (*wireCounter, string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := &wireCounter{ln: ln, target: u.Host}
	t.Cleanup(func() { _ = ln.Close() })
	go w.serve()
	q := u.Query()
	q.Set("sslmode", "disable")
	u.Host, u.RawQuery = ln.Addr().String(), q.Encode()
	return w, u.String()
}

func (w *wireCounter) serve() {
	for {
		c, err := w.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			s, err := net.Dial("tcp", w.target)
			if err != nil {
				_ = c.Close() // a proxy of a test: nothing to report
				return
			}
			go func() { w.frontend(c, s); _ = s.Close() }()
			w.backend(s, c)
			_ = c.Close()
		}()
	}
}

// frontend copies the client's messages, counting Sync ('S') and Query ('Q').
func (w *wireCounter) frontend(from io.Reader, to io.Writer) {
	// The startup packet has no type byte.
	if _, _, err := copyMessage(from, to, false); err != nil {
		return
	}
	prepared := map[string]string{}
	for {
		typ, body, err := copyMessage(from, to, true)
		if err != nil {
			return
		}
		switch typ {
		case 'S':
			w.roundTrips.Add(1)
		case 'Q':
			w.roundTrips.Add(1)
			w.exec(cstrings(body, 1)[0])
		case 'P': // Parse: statement name, query
			f := cstrings(body, 2)
			prepared[f[0]] = f[1]
		case 'B': // Bind: portal, statement name
			w.exec(prepared[cstrings(body, 2)[1]])
		}
	}
}

// cstrings reads the first n NUL-terminated strings of a message body.
func cstrings(body []byte, n int) []string {
	out := make([]string, n)
	for i := range n {
		j := strings.IndexByte(string(body), 0)
		if j < 0 {
			break
		}
		out[i], body = string(body[:j]), body[j+1:]
	}
	return out
}

// backend copies the server's messages, counting transactions ended.
func (w *wireCounter) backend(from io.Reader, to io.Writer) {
	status := byte('I')
	for {
		hdr := make([]byte, 5)
		if _, err := io.ReadFull(from, hdr); err != nil {
			return
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[1:])-4)
		if _, err := io.ReadFull(from, body); err != nil {
			return
		}
		if hdr[0] == 'Z' && len(body) == 1 {
			if status != 'I' && body[0] == 'I' {
				w.txEnds.Add(1)
			}
			status = body[0]
		}
		if _, err := to.Write(append(hdr, body...)); err != nil {
			return
		}
	}
}

func copyMessage(from io.Reader, to io.Writer, typed bool) (byte, []byte, error) {
	n := 4
	if typed {
		n = 5
	}
	hdr := make([]byte, n)
	if _, err := io.ReadFull(from, hdr); err != nil {
		return 0, nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[n-4:])-4)
	if _, err := io.ReadFull(from, body); err != nil {
		return 0, nil, err
	}
	_, err := to.Write(append(hdr, body...))
	if typed {
		return hdr[0], body, err
	}
	return 0, body, err
}
