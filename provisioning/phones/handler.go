package phones

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Directory is what the handler needs from the daemon's store. It is called
// on every request, never cached here, so changes made in the database (a
// device deactivated or moved to another account, a line unbound or its
// password changed) reach the phone on its very next fetch.
type Directory interface {
	// DeviceByMAC returns the device registered with mac, without its
	// lines, or an error wrapping ErrNotFound.
	DeviceByMAC(ctx context.Context, mac MAC) (Device, error)
	// DeviceLines returns the lines currently bound to dev (a device
	// DeviceByMAC returned), passwords included. The handler asks only once
	// the phone has authenticated, so a known MAC with a wrong secret costs
	// what an unknown one does: one lookup and one secret check.
	DeviceLines(ctx context.Context, dev Device) ([]Line, error)
}

// ErrNotFound is what a Directory returns for a MAC no device has.
var ErrNotFound = errors.New("device not found")

// Request outcomes, the values of the result label of
// pbxd_provisioning_requests_total.
const (
	ResultServed       = "served"
	ResultNotFound     = "not_found"    // unknown MAC (answered 401, like a wrong secret), inactive device, or a file of another vendor
	ResultUnauthorized = "unauthorized" // missing or wrong credentials
	ResultThrottled    = "throttled"    // the source is blocked
	ResultBadRequest   = "bad_request"  // wrong method, or a file name this package does not serve
	ResultError        = "error"        // directory or template failure
)

// Options configure a Handler. Directory and Renderer are required.
type Options struct {
	Directory Directory
	Renderer  *Renderer
	// Verify checks a device's credentials; nil means VerifyDevice (user =
	// MAC, password = provisioning secret checked against
	// Device.SecretHash). Replace it to authenticate otherwise, e.g. by
	// source address; it must not be lenient about an empty password. For
	// a MAC no device has, it is called too, on a stand-in device with a
	// random SecretHash, so that both cases cost the same; its answer is
	// then ignored.
	Verify func(dev Device, user, pass string) bool
	// Throttle limits probing; zero values take the defaults.
	Throttle Throttle
	// ClientIP extracts the address throttling and logs use; nil means
	// the host part of RemoteAddr. Behind a reverse proxy the daemon
	// supplies one that trusts the proxy's forwarding header.
	ClientIP func(*http.Request) string
	// Now is the clock for throttling; nil means time.Now.
	Now func() time.Time
	// Logger receives one record per request; nil discards them.
	Logger *slog.Logger
	// Registerer receives the metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
	// Realm is the Basic auth realm phones are challenged with; empty
	// means "pbxd provisioning".
	Realm string
}

// Handler serves GET /provision/{file}: the config file a phone asks for,
// only to that phone. Mount it on "/provision/" (or on a pattern with a
// {file} wildcard). Every request checks, in order: source not throttled,
// known file name, credentials present, device registered and credentials
// valid, device active, file of the device's vendor.
//
// Nothing before a successful authentication depends on whether the MAC
// is registered: an unknown MAC gets the same 401 challenge, byte for byte,
// as a wrong secret, after the same work (a directory lookup and a secret
// check against a stand-in hash), so the endpoint is no oracle of which
// MACs are provisioned.
type Handler struct {
	dir      Directory
	renderer *Renderer
	verify   func(Device, string, string) bool
	// noSecret is the stand-in SecretHash checked for unknown MACs.
	noSecret string
	throttle *throttler
	clientIP func(*http.Request) string
	now      func() time.Time
	log      *slog.Logger
	requests *prometheus.CounterVec
	realm    string
}

// NewHandler checks opts and registers the handler's metrics:
// pbxd_provisioning_requests_total{vendor,result} and
// pbxd_provisioning_throttled_sources.
func NewHandler(opts Options) (*Handler, error) {
	if opts.Directory == nil || opts.Renderer == nil {
		return nil, errors.New("phones: Directory and Renderer are required")
	}
	h := &Handler{
		dir: opts.Directory, renderer: opts.Renderer, verify: opts.Verify,
		throttle: newThrottler(opts.Throttle), clientIP: opts.ClientIP,
		now: opts.Now, log: opts.Logger, realm: opts.Realm, noSecret: HashSecret(NewSecret()),
	}
	if h.verify == nil {
		h.verify = VerifyDevice
	}
	if h.clientIP == nil {
		h.clientIP = remoteHost
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.realm == "" {
		h.realm = "pbxd provisioning"
	}
	h.realm = strings.NewReplacer(`"`, "", `\`, "").Replace(h.realm) // it is quoted in a header
	h.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pbxd_provisioning_requests_total",
		Help: "Phone provisioning requests by vendor and result.",
	}, []string{"vendor", "result"})
	throttled := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pbxd_provisioning_throttled_sources",
		Help: "Client sources currently blocked for probing unknown MACs or failing authentication.",
	}, func() float64 { return float64(h.throttle.blockedCount(h.now())) })
	// Pre-create every series so rates and alerts work from the first
	// scrape.
	for _, v := range append([]string{"unknown"}, vendorLabels()...) {
		for _, r := range []string{ResultServed, ResultNotFound, ResultUnauthorized, ResultThrottled, ResultBadRequest, ResultError} {
			h.requests.WithLabelValues(v, r)
		}
	}
	if reg := opts.Registerer; reg != nil {
		for _, c := range []prometheus.Collector{h.requests, throttled} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("phones: register metrics: %w", err)
			}
		}
	}
	return h, nil
}

func vendorLabels() []string {
	s := make([]string, len(Vendors))
	for i, v := range Vendors {
		s[i] = string(v)
	}
	return s
}

// outcome is what one request produced, for the log and the metrics.
type outcome struct {
	status int
	result string
	reason string // finer than result, for the log only
	vendor string
	mac    string
	acct   string
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.now()
	remote := h.clientIP(r)
	name := fileName(r)
	o := h.serve(w, r, name, remote, start)

	h.requests.WithLabelValues(o.vendor, o.result).Inc()
	level := slog.LevelInfo
	switch {
	case o.result == ResultError:
		level = slog.LevelError
	case o.result == ResultThrottled, o.reason == "no_credentials":
		level = slog.LevelDebug // routine challenge, or a flood already dealt with
	}
	h.log.LogAttrs(r.Context(), level, "provisioning request",
		slog.String("mac", o.mac),
		slog.String("vendor", o.vendor),
		slog.String("file", truncate(name, 64)),
		slog.String("remote", remote),
		slog.String("result", o.result),
		slog.String("reason", o.reason),
		slog.Int("status", o.status),
		slog.String("account", o.acct),
		slog.String("user_agent", truncate(r.UserAgent(), 128)),
	)
}

// exchange is one provisioning request being answered: its source, its
// time and the outcome built up for the log and the metrics.
type exchange struct {
	h      *Handler
	w      http.ResponseWriter
	r      *http.Request
	remote string
	key    string // the throttled source
	now    time.Time
	o      outcome
}

// serve answers one request for file name from remote at now.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, name, remote string, now time.Time) outcome {
	x := &exchange{h: h, w: w, r: r, remote: remote, key: sourceKey(remote), now: now, o: outcome{vendor: "unknown"}}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return x.fail(http.StatusMethodNotAllowed, ResultBadRequest, "method")
	}
	f, err := ParseFile(name)
	if err == nil {
		x.o.vendor = kindVendor(f.Kind)
		if !f.MAC.IsZero() {
			x.o.mac = f.MAC.String()
		}
	}
	if until, blocked := h.throttle.blockedUntil(x.key, now); blocked {
		secs := int(math.Ceil(until.Sub(now).Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		return x.fail(http.StatusTooManyRequests, ResultThrottled, "blocked")
	}
	if err != nil {
		return x.fail(http.StatusNotFound, ResultBadRequest, "unknown_file")
	}
	dev, ok := x.authenticate(f)
	if !ok {
		return x.o
	}
	// Only past authentication may the answer depend on the device's
	// state: before it, a prober would learn which devices exist.
	if !dev.Active {
		return x.fail(http.StatusNotFound, ResultNotFound, "inactive")
	}
	if !f.Kind.Serves(dev.Vendor) {
		return x.fail(http.StatusNotFound, ResultNotFound, "vendor_mismatch")
	}
	return x.answer(f, dev)
}

// fail answers with status and records result and reason; it returns the
// outcome.
func (x *exchange) fail(status int, result, reason string) outcome {
	x.o.status, x.o.result, x.o.reason = status, result, reason
	switch status {
	case http.StatusUnauthorized:
		x.w.Header().Set("WWW-Authenticate", `Basic realm="`+x.h.realm+`", charset="UTF-8"`)
	case http.StatusMethodNotAllowed:
		x.w.Header().Set("Allow", "GET, HEAD")
	}
	http.Error(x.w, strings.ToLower(http.StatusText(status)), status)
	return x.o
}

// probe counts a failure against the source. Counted failures are those
// only a prober produces: a MAC no device has, or credentials that do not
// match. A missing Authorization header is not one, since phones send it
// only once challenged.
func (x *exchange) probe() {
	if x.h.throttle.fail(x.key, x.now) {
		x.h.log.Warn("provisioning source blocked", "remote", x.remote, "source", x.key,
			"failures", x.h.throttle.cfg.MaxFailures, "block", x.h.throttle.cfg.Block)
	}
}

// authenticate finds the device file f is for and checks the request's
// credentials against it. On false the request has been answered and x.o
// is its outcome.
func (x *exchange) authenticate(f File) (Device, bool) {
	user, pass, ok := x.r.BasicAuth()
	if !ok {
		x.fail(http.StatusUnauthorized, ResultUnauthorized, "no_credentials")
		return Device{}, false
	}
	mac := f.MAC
	if f.Kind == KindYealinkCommon {
		// The common file names no device: the credentials do.
		var err error
		if mac, err = ParseMAC(user); err != nil {
			x.h.verify(Device{SecretHash: x.h.noSecret}, user, pass) // the work a real check costs
			x.probe()
			x.fail(http.StatusUnauthorized, ResultUnauthorized, "bad_credentials")
			return Device{}, false
		}
		x.o.mac = mac.String()
	}
	dev, ok := x.device(mac, user, pass)
	if !ok {
		return Device{}, false
	}
	if dev.Vendor.Valid() {
		x.o.vendor = string(dev.Vendor)
	}
	x.o.acct = dev.AccountID
	if !x.h.verify(dev, user, pass) {
		x.probe()
		x.fail(http.StatusUnauthorized, ResultUnauthorized, "bad_credentials")
		return Device{}, false
	}
	return dev, true
}

// device looks up the device with mac in the directory. An unknown MAC is
// answered exactly as a wrong secret (user, pass), after the same work. On
// false the request has been answered.
func (x *exchange) device(mac MAC, user, pass string) (Device, bool) {
	dev, err := x.h.dir.DeviceByMAC(x.r.Context(), mac)
	switch {
	case errors.Is(err, ErrNotFound):
		x.h.verify(Device{MAC: mac, SecretHash: x.h.noSecret}, user, pass)
		x.probe()
		x.fail(http.StatusUnauthorized, ResultNotFound, "unknown_mac")
		return Device{}, false
	case err != nil:
		x.h.log.Error("provisioning directory lookup", "mac", mac.String(), "err", err)
		x.fail(http.StatusInternalServerError, ResultError, "directory")
		return Device{}, false
	case dev.MAC != mac:
		x.h.log.Error("provisioning directory returned another device", "mac", mac.String(), "got", dev.MAC.String())
		x.fail(http.StatusInternalServerError, ResultError, "directory")
		return Device{}, false
	}
	return dev, true
}

// answer renders file f for the authenticated device dev, with its lines,
// and sends it.
func (x *exchange) answer(f File, dev Device) outcome {
	var err error
	if dev.Lines, err = x.h.dir.DeviceLines(x.r.Context(), dev); err != nil {
		x.h.log.Error("provisioning directory lines", "mac", dev.MAC.String(), "err", err)
		return x.fail(http.StatusInternalServerError, ResultError, "directory")
	}
	body, err := x.h.renderer.Render(f, dev)
	if err != nil {
		x.h.log.Error("provisioning render", "mac", dev.MAC.String(), "file", f.Name(), "err", err)
		return x.fail(http.StatusInternalServerError, ResultError, "render")
	}
	ct := "application/xml; charset=utf-8"
	if f.Kind == KindMACCfg && dev.Vendor == Yealink || f.Kind == KindYealinkCommon {
		ct = "text/plain; charset=utf-8"
	}
	hd := x.w.Header()
	hd.Set("Content-Type", ct)
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	hd.Set("Cache-Control", "no-store") // it carries SIP passwords
	hd.Set("X-Content-Type-Options", "nosniff")
	x.w.WriteHeader(http.StatusOK)
	if x.r.Method != http.MethodHead {
		_, _ = x.w.Write(body)
	}
	x.o.status, x.o.result = http.StatusOK, ResultServed
	return x.o
}

// fileName takes the {file} wildcard if the handler is mounted with one,
// else the single path segment after /provision/. Anything deeper yields ""
// (an unknown file), so no path can reach outside the flat namespace.
func fileName(r *http.Request) string {
	if v := r.PathValue("file"); v != "" {
		return v
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/provision/")
	if !ok || strings.Contains(rest, "/") {
		return ""
	}
	return rest
}

// kindVendor labels a request before the device is known; {mac}.cfg could
// be either of two vendors.
func kindVendor(k Kind) string {
	switch k {
	case KindYealinkCommon:
		return string(Yealink)
	case KindPolycomPhone:
		return string(Polycom)
	case KindGrandstream:
		return string(Grandstream)
	case KindSnom:
		return string(Snom)
	case KindCisco:
		return string(Cisco)
	}
	return "unknown"
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
