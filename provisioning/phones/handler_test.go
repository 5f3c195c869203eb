package phones

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeDirectory is a hand-written Directory over a map the test edits, the
// way the daemon's store changes under a running handler.
type fakeDirectory struct {
	mu        sync.Mutex
	devices   map[MAC]Device
	err       error
	calls     int // DeviceByMAC
	lineCalls int // DeviceLines
}

func (d *fakeDirectory) DeviceByMAC(_ context.Context, mac MAC) (Device, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	if d.err != nil {
		return Device{}, d.err
	}
	dev, ok := d.devices[mac]
	if !ok {
		return Device{}, fmt.Errorf("device %s: %w", mac, ErrNotFound)
	}
	dev.Lines = nil
	return dev, nil
}

func (d *fakeDirectory) DeviceLines(_ context.Context, dev Device) ([]Line, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lineCalls++
	return d.devices[dev.MAC].Lines, nil
}

func (d *fakeDirectory) edit(mac MAC, f func(*Device)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dev := d.devices[mac]
	f(&dev)
	d.devices[mac] = dev
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type bundle struct {
	h      *Handler
	dir    *fakeDirectory
	clock  *fakeClock
	reg    *prometheus.Registry
	logs   *bytes.Buffer
	secret string // the provisioning secret of every test device
	devs   map[Vendor]Device
}

// setup builds a handler over one active device per vendor, each with two
// lines and its own MAC.
func setup(t *testing.T) *bundle {
	t.Helper()
	b := &bundle{
		dir:    &fakeDirectory{devices: make(map[MAC]Device)},
		clock:  &fakeClock{now: testNow},
		reg:    prometheus.NewRegistry(),
		logs:   new(bytes.Buffer),
		secret: NewSecret(),
		devs:   make(map[Vendor]Device),
	}
	for i, v := range Vendors {
		dev := testDevice(v)
		dev.MAC[5] = byte(i + 1)
		dev.SecretHash = HashSecret(b.secret)
		b.dir.devices[dev.MAC] = dev
		b.devs[v] = dev
	}
	h, err := NewHandler(Options{
		Directory:  b.dir,
		Renderer:   newTestRenderer(t, testSettings()),
		Throttle:   Throttle{MaxFailures: 5, Window: time.Minute, Block: 10 * time.Minute},
		Now:        b.clock.Now,
		Logger:     slog.New(slog.NewJSONHandler(&syncWriter{b: b.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: b.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	b.h = h
	return b
}

type syncWriter struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// get requests file from remote, with Basic credentials unless user is "-".
func (b *bundle) get(file, remote, user, pass string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, "/provision/"+file, nil)
	req.RemoteAddr = remote + ":40000"
	if user != "-" {
		req.SetBasicAuth(user, pass)
	}
	w := httptest.NewRecorder()
	b.h.ServeHTTP(w, req)
	return w
}

func (b *bundle) count(vendor, result string) float64 {
	return testutil.ToFloat64(b.h.requests.WithLabelValues(vendor, result))
}

func TestHandlerServesEveryVendor(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for vendor, files := range vendorFiles {
		dev := b.devs[vendor]
		for _, f := range files {
			if f.Kind != KindYealinkCommon {
				f.MAC = dev.MAC
			}
			w := b.get(f.Name(), "192.0.2.1", dev.MAC.String(), b.secret)
			if w.Code != http.StatusOK {
				t.Fatalf("%s %s: status %d: %s", vendor, f.Name(), w.Code, w.Body)
			}
			want, err := b.h.renderer.Render(f, dev)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(w.Body.Bytes(), want) {
				t.Errorf("%s %s: body differs from Render", vendor, f.Name())
			}
			if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q", cc)
			}
		}
		if got := b.count(string(vendor), ResultServed); got != float64(len(files)) {
			t.Errorf("served{%s} = %v, want %d", vendor, got, len(files))
		}
	}
	// Logs carry the fields operators search by, never a secret.
	logs := b.logs.String()
	for _, s := range []string{`"mac":"805ec0123401"`, `"vendor":"yealink"`, `"file":"805ec0123401.cfg"`, `"remote":"192.0.2.1"`, `"result":"served"`} {
		if !strings.Contains(logs, s) {
			t.Errorf("logs lack %s", s)
		}
	}
	for _, secret := range []string{b.secret, "Pa&ss", "s3cr3t", "Pa\\u0026ss"} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain secret %q", secret)
		}
	}
}

func TestHandlerRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t)
	yl := b.devs[Yealink]
	mac := yl.MAC.String()
	for _, tc := range []struct {
		name, file, user, pass string
		status                 int
		vendor, result         string
	}{
		{"no credentials", mac + ".cfg", "-", "", 401, "unknown", ResultUnauthorized},
		{"wrong password", mac + ".cfg", mac, "wrong", 401, "yealink", ResultUnauthorized},
		{"empty password", mac + ".cfg", mac, "", 401, "yealink", ResultUnauthorized},
		{"another device's MAC as user", mac + ".cfg", b.devs[Snom].MAC.String(), b.secret, 401, "yealink", ResultUnauthorized},
		{"unknown MAC", "0015650000ff.cfg", "0015650000ff", b.secret, 401, "unknown", ResultNotFound},
		{"unknown MAC, vendor file", "cfg0015650000ff.xml", "0015650000ff", b.secret, 401, "grandstream", ResultNotFound},
		{"common file, unknown MAC", "y000000000108.cfg", "0015650000ff", b.secret, 401, "yealink", ResultNotFound},
		{"vendor mismatch", "cfg" + mac + ".xml", mac, b.secret, 404, "yealink", ResultNotFound},
		{"polycom file for yealink", mac + "-phone.xml", mac, b.secret, 404, "yealink", ResultNotFound},
		{"common file, user not a MAC", "y000000000044.cfg", "admin", b.secret, 401, "yealink", ResultUnauthorized},
		{"common file, snom device", "y000000000044.cfg", b.devs[Snom].MAC.String(), b.secret, 404, "snom", ResultNotFound},
		{"not a provisioning file", "sip.ld", mac, b.secret, 404, "unknown", ResultBadRequest},
		{"polycom fallback master", "000000000000.cfg", mac, b.secret, 404, "unknown", ResultBadRequest},
		{"nested path", "x/" + mac + ".cfg", mac, b.secret, 404, "unknown", ResultBadRequest},
	} {
		before := b.count(tc.vendor, tc.result)
		w := b.get(tc.file, "198.51.100."+fmt.Sprint(len(tc.name)), tc.user, tc.pass)
		if w.Code != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, w.Code, tc.status)
		}
		if tc.status == 401 && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic realm=") {
			t.Errorf("%s: WWW-Authenticate = %q", tc.name, w.Header().Get("WWW-Authenticate"))
		}
		if strings.Contains(w.Body.String(), "101") || strings.Contains(w.Body.String(), "acme") {
			t.Errorf("%s: body leaks config: %s", tc.name, w.Body)
		}
		if got := b.count(tc.vendor, tc.result); got != before+1 {
			t.Errorf("%s: %s{%s} = %v, want %v", tc.name, tc.result, tc.vendor, got, before+1)
		}
	}

	req := httptest.NewRequest(http.MethodPost, "/provision/"+mac+".cfg", nil)
	w := httptest.NewRecorder()
	b.h.ServeHTTP(w, req)
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") == "" {
		t.Errorf("POST: %d, Allow %q", w.Code, w.Header().Get("Allow"))
	}
}

// Changes in the directory apply at the next request: nothing is cached.
func TestHandlerFollowsDirectory(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dev := b.devs[Grandstream]
	file := "cfg" + dev.MAC.String() + ".xml"
	fetch := func() *httptest.ResponseRecorder { return b.get(file, "192.0.2.7", dev.MAC.String(), b.secret) }

	if w := fetch(); w.Code != 200 || !strings.Contains(w.Body.String(), "s3cr3t") {
		t.Fatalf("initial fetch: %d", w.Code)
	}
	b.dir.edit(dev.MAC, func(d *Device) { d.Lines = d.Lines[:1] }) // line 102 unbound
	w := fetch()
	if w.Code != 200 || strings.Contains(w.Body.String(), "s3cr3t") || strings.Contains(w.Body.String(), ">102<") {
		t.Errorf("unbound line still served: %d\n%s", w.Code, w.Body)
	}
	if !strings.Contains(w.Body.String(), `<P401>0</P401>`) {
		t.Error("unbound slot not explicitly disabled")
	}
	b.dir.edit(dev.MAC, func(d *Device) { d.Active = false })
	if w := fetch(); w.Code != 404 {
		t.Errorf("inactive device: %d", w.Code)
	}
	if got := b.count("grandstream", ResultNotFound); got != 1 {
		t.Errorf("not_found{grandstream} = %v", got)
	}
	// Inactive is not revealed to whoever lacks the credentials.
	if w := b.get(file, "192.0.2.7", dev.MAC.String(), "wrong"); w.Code != 401 {
		t.Errorf("inactive device, wrong password: %d", w.Code)
	}
	b.dir.edit(dev.MAC, func(d *Device) { d.Active = true; d.SecretHash = HashSecret("rotated") })
	if w := fetch(); w.Code != 401 {
		t.Errorf("rotated secret, old password: %d", w.Code)
	}
	if w := b.get(file, "192.0.2.7", dev.MAC.String(), "rotated"); w.Code != 200 {
		t.Errorf("rotated secret: %d", w.Code)
	}
	if b.dir.calls != 6 {
		t.Errorf("directory called %d times for 6 requests", b.dir.calls)
	}
}

func TestHandlerDirectoryError(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.dir.err = errors.New("connection refused")
	dev := b.devs[Cisco]
	if w := b.get("spa"+dev.MAC.String()+".xml", "192.0.2.8", dev.MAC.String(), b.secret); w.Code != 500 {
		t.Errorf("status %d", w.Code)
	}
	if got := b.count("cisco", ResultError); got != 1 {
		t.Errorf("error{cisco} = %v", got)
	}
}

func TestHandlerThrottlesScanning(t *testing.T) {
	t.Parallel()
	b := setup(t)
	gauge := func() float64 {
		t.Helper()
		n, err := testutil.GatherAndCount(b.reg, "pbxd_provisioning_throttled_sources")
		if err != nil || n != 1 {
			t.Fatalf("gauge: %d series, %v", n, err)
		}
		mfs, _ := b.reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "pbxd_provisioning_throttled_sources" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return -1
	}
	scanner, bystander := "203.0.113.9", "192.0.2.50"
	dev := b.devs[Snom]
	good := dev.MAC.String() + ".xml"

	// Four misses (unknown MACs, a bad password) stay under the limit of 5.
	for i := range 3 {
		mac := fmt.Sprintf("0015650000%02x", i+16)
		if w := b.get(mac+".xml", scanner, mac, "x"); w.Code != 401 {
			t.Fatalf("miss %d: %d", i, w.Code)
		}
	}
	if w := b.get(good, scanner, dev.MAC.String(), "bad"); w.Code != 401 {
		t.Fatalf("bad password: %d", w.Code)
	}
	// Challenges without credentials are not misses: phones get them first.
	for range 10 {
		if w := b.get(good, scanner, "-", ""); w.Code != 401 {
			t.Fatalf("challenge: %d", w.Code)
		}
	}
	if gauge() != 0 {
		t.Fatal("blocked too early")
	}
	// The fifth miss blocks the source, even for valid requests.
	if w := b.get("0015650000ff.xml", scanner, "0015650000ff", "x"); w.Code != 401 {
		t.Fatalf("fifth miss: %d", w.Code)
	}
	w := b.get(good, scanner, dev.MAC.String(), b.secret)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "600" {
		t.Fatalf("blocked source: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	if got := b.count("snom", ResultThrottled); got != 1 {
		t.Errorf("throttled{snom} = %v", got)
	}
	if gauge() != 1 {
		t.Errorf("throttled_sources = %v", gauge())
	}
	if !strings.Contains(b.logs.String(), "provisioning source blocked") {
		t.Error("block not logged")
	}
	// Other sources are unaffected.
	if w := b.get(good, bystander, dev.MAC.String(), b.secret); w.Code != 200 {
		t.Errorf("bystander: %d", w.Code)
	}
	// The block lifts after its duration.
	b.clock.Add(10*time.Minute - time.Second)
	if w := b.get(good, scanner, dev.MAC.String(), b.secret); w.Code != 429 || w.Header().Get("Retry-After") != "1" {
		t.Errorf("before expiry: %d %q", w.Code, w.Header().Get("Retry-After"))
	}
	b.clock.Add(time.Second)
	if gauge() != 0 {
		t.Errorf("throttled_sources after expiry = %v", gauge())
	}
	if w := b.get(good, scanner, dev.MAC.String(), b.secret); w.Code != 200 {
		t.Errorf("after expiry: %d", w.Code)
	}
	// Misses spread wider than the window never block.
	for range 20 {
		b.get("0015650000fe.xml", bystander, "0015650000fe", "x")
		b.clock.Add(20 * time.Second)
	}
	if gauge() != 0 {
		t.Errorf("slow misses blocked the source")
	}
}

func TestThrottleIPv6Prefix(t *testing.T) {
	t.Parallel()
	if a, b := sourceKey("2001:db8:1:2::1"), sourceKey("2001:db8:1:2:ffff::9"); a != b {
		t.Errorf("same /64, keys %s %s", a, b)
	}
	if a, b := sourceKey("2001:db8:1:2::1"), sourceKey("2001:db8:1:3::1"); a == b {
		t.Error("different /64 share a key")
	}
	if k := sourceKey("::ffff:192.0.2.1"); k != "192.0.2.1" {
		t.Errorf("mapped IPv4 key %s", k)
	}
	// The table is bounded (internal/throttle tests the eviction); a
	// source past MaxSources is still tracked and blocked.
	th := newThrottler(Throttle{MaxFailures: 1, Window: time.Minute, MaxSources: 2})
	for _, k := range []string{"a", "b", "c"} {
		if !th.fail(k, testNow) {
			t.Errorf("source %s not blocked", k)
		}
	}
}

func TestNewHandlerOptions(t *testing.T) {
	t.Parallel()
	if _, err := NewHandler(Options{}); err == nil {
		t.Error("missing Directory accepted")
	}
	reg := prometheus.NewRegistry()
	opts := Options{Directory: &fakeDirectory{}, Renderer: newTestRenderer(t, testSettings()), Registerer: reg}
	if _, err := NewHandler(opts); err != nil {
		t.Fatal(err)
	}
	if _, err := NewHandler(opts); err == nil {
		t.Error("second registration on the same registry accepted")
	}
}

func TestHandlerHEADAndPattern(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dev := b.devs[Polycom]
	mux := http.NewServeMux()
	mux.Handle("GET /provision/{file}", b.h)
	req := httptest.NewRequest(http.MethodHead, "/provision/"+dev.MAC.String()+"-phone.xml", nil)
	req.SetBasicAuth(strings.ToUpper(dev.MAC.String()), b.secret)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, req)
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/xml; charset=utf-8" {
		t.Errorf("HEAD: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
}

// An unknown MAC must be indistinguishable from a known one with a wrong
// secret, on every file kind: same status, headers and body, and the same
// work (a secret check, seen through a counting verifier).
func TestHandlerUnknownMACIsNoOracle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var checks int
	verify := func(dev Device, user, pass string) bool {
		checks++
		return VerifyDevice(dev, user, pass)
	}
	h, err := NewHandler(Options{Directory: b.dir, Renderer: b.h.renderer, Verify: verify,
		Throttle: Throttle{MaxFailures: 1000}, Now: b.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	b.dir.edit(b.devs[Cisco].MAC, func(d *Device) { d.Active = false }) // inactive is no different
	unknown := "0015650000ee"
	get := func(file, user, pass string) (*httptest.ResponseRecorder, int) {
		t.Helper()
		req := httptest.NewRequest(http.MethodGet, "/provision/"+file, nil)
		req.RemoteAddr = "192.0.2.99:40000"
		req.SetBasicAuth(user, pass)
		w := httptest.NewRecorder()
		before := checks
		h.ServeHTTP(w, req)
		return w, checks - before
	}
	for vendor, files := range vendorFiles {
		known := b.devs[vendor].MAC.String()
		for _, f := range files {
			knownFile, unknownFile := f, f
			if f.Kind != KindYealinkCommon {
				knownFile.MAC = b.devs[vendor].MAC
				unknownFile.MAC, _ = ParseMAC(unknown)
			}
			for _, pass := range []string{"wrong", b.secret, ""} {
				kw, kn := get(knownFile.Name(), known, "wrong")
				uw, un := get(unknownFile.Name(), unknown, pass)
				name := fmt.Sprintf("%s %s (password %q)", vendor, unknownFile.Name(), pass)
				if kw.Code != http.StatusUnauthorized || uw.Code != kw.Code {
					t.Errorf("%s: unknown MAC %d, wrong secret %d", name, uw.Code, kw.Code)
				}
				if fmt.Sprint(uw.Header()) != fmt.Sprint(kw.Header()) {
					t.Errorf("%s: headers differ:\n%v\n%v", name, uw.Header(), kw.Header())
				}
				if !bytes.Equal(uw.Body.Bytes(), kw.Body.Bytes()) {
					t.Errorf("%s: bodies differ: %q vs %q", name, uw.Body, kw.Body)
				}
				if un != 1 || kn != 1 {
					t.Errorf("%s: %d secret checks for the unknown MAC, %d for the wrong secret", name, un, kn)
				}
				if b.dir.lineCalls != 0 {
					t.Errorf("%s: lines loaded before authentication", name)
				}
			}
		}
	}
}
