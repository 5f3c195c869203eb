package httpapi

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pbxd/pbxd/internal/clock"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/provisioning"
)

// Principal is who is calling: the operator, or one account's token.
type Principal struct {
	Operator  bool
	AccountID string
}

// Actor names the principal in the audit log.
func (p Principal) Actor() string {
	if p.Operator {
		return "operator"
	}
	return "account:" + p.AccountID
}

// TokenLookup finds the account an account token belongs to.
type TokenLookup func(ctx context.Context, token string) (accountID string, ok bool, err error)

// Options wires the API to the rest of the daemon.
type Options struct {
	Logger   *slog.Logger
	Registry *prometheus.Registry
	// OperatorToken is compared in constant time; it is read through a
	// pointer so a SIGHUP reload can replace it.
	OperatorToken *atomic.Pointer[string]
	AccountToken  TokenLookup
	// Ready reports why the daemon is not ready, or nil.
	Ready func(ctx context.Context) error
	// TestClock is nil unless the test clock is enabled; RunDue runs the jobs
	// that became due after it moved.
	TestClock *clock.Test
	RunDue    func(ctx context.Context) error
	// MapError turns domain errors into problems.
	MapError func(error) *Problem
	// Pool stores idempotency keys.
	DB *store.DB
	// Provisioning serves accounts, lines and change orders.
	Provisioning *provisioning.Service
	// Provision serves phone configuration files under /provision/ (nil:
	// not served).
	Provision http.Handler
	// Routes lets other route sets register themselves.
	Routes []func(*API)
	// Version is the build version /v1/status reports ("dev" when empty).
	Version string
}

// API is the HTTP handler of the daemon.
type API struct {
	log      *slog.Logger
	mux      *http.ServeMux
	opts     Options
	mapError func(error) *Problem
	reqs     *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	routes   []string
}

// New builds the handler and registers its metrics on opts.Registry.
func New(opts Options) *API {
	a := &API{log: opts.Logger, mux: http.NewServeMux(), opts: opts, mapError: opts.MapError}
	if a.log == nil {
		a.log = discardLogger
	}
	f := promauto.With(opts.Registry)
	a.reqs = f.NewCounterVec(prometheus.CounterOpts{
		Name: "pbxd_http_requests_total",
		Help: "HTTP requests by route pattern, method and status class.",
	}, []string{"route", "method", "code"})
	a.latency = f.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "pbxd_http_request_duration_seconds",
		Help:    "HTTP request latency by route pattern.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"route", "method"})

	a.handle("GET /healthz", a.public(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	a.handle("GET /readyz", a.public(a.readyz))
	a.handle("GET /metrics", promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{Registry: opts.Registry}))
	a.handle("GET /v1/test-clock", a.operator(a.getTestClock))
	a.handle("POST /v1/test-clock", a.operator(a.setTestClock))
	a.handle("GET /v1/status", a.authed(a.status))
	a.handle("GET /v1/openapi.yaml", a.public(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(OpenAPI)
	}))
	if opts.Provisioning != nil {
		a.provisioningRoutes(opts.Provisioning)
		a.deviceRoutes(opts.Provisioning)
		a.accountStatusRoutes(opts.Provisioning)
		a.moveRoutes(opts.Provisioning)
		a.numberRoutes(opts.Provisioning)
		a.scheduledRoutes(opts.Provisioning)
		a.requestRoutes(opts.Provisioning)
		a.hardwareRoutes(opts.Provisioning)
		a.clusterRoutes(opts.Provisioning)
	}
	if opts.Provision != nil {
		a.handle("GET /provision/{file}", opts.Provision)
	}
	for _, r := range opts.Routes {
		r(a)
	}
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, NotFound("route "+r.URL.Path))
	})
	return a
}

// Routes lists the patterns served (the OpenAPI test compares them).
func (a *API) Routes() []string { return a.routes }

// Handle registers h for a "METHOD /path" pattern; domain route sets use it.
func (a *API) Handle(pattern string, h http.Handler) { a.handle(pattern, h) }

func (a *API) handle(pattern string, h http.Handler) {
	a.routes = append(a.routes, pattern)
	method, path, _ := strings.Cut(pattern, " ")
	// Every status class exists from start, so the 5xx ratio rule (a rate
	// over 5 min) sees a route's first 5xx.
	for _, code := range []string{"1xx", "2xx", "3xx", "4xx", "5xx"} {
		a.reqs.WithLabelValues(path, method, code)
	}
	a.mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(sw, r.Body, MaxBody)
		}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				// A bug in one handler answers 500 and is logged with its
				// stack; the daemon keeps serving.
				a.log.Error("handler panic", "method", r.Method, "route", path, "panic", p, "stack", string(debug.Stack()))
				if !sw.wrote {
					writeProblem(sw, &Problem{Type: "about:blank", Title: "Internal error", Status: http.StatusInternalServerError, Detail: "internal error; see the server log"})
				}
				a.reqs.WithLabelValues(path, method, "5xx").Inc()
			}
		}()
		h.ServeHTTP(sw, r)
		a.reqs.WithLabelValues(path, method, strconv.Itoa(sw.status/100)+"xx").Inc()
		a.latency.WithLabelValues(path, method).Observe(time.Since(start).Seconds())
	}))
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusWriter) WriteHeader(code int) {
	s.status, s.wrote = code, true
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

type principalKey struct{}

// PrincipalFrom returns the authenticated caller.
func PrincipalFrom(ctx context.Context) Principal {
	p, _ := ctx.Value(principalKey{}).(Principal)
	return p
}

// HandlerFunc is a handler that returns an error mapped onto problem+json.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

func (a *API) public(h http.HandlerFunc) http.Handler { return h }

// authed accepts the operator token or an account token.
func (a *API) authed(h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := a.authenticate(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pbxd"`)
			writeProblem(w, &Problem{Type: "https://pbxd.dev/problems/unauthorized", Title: "Unauthorized", Status: http.StatusUnauthorized, Detail: "a valid bearer token is required"})
			return
		}
		ctx := context.WithValue(r.Context(), principalKey{}, p)
		if err := h(w, r.WithContext(ctx)); err != nil {
			a.writeError(w, r, err)
		}
	})
}

// Authed wraps a domain handler with authentication and error mapping.
func (a *API) Authed(h HandlerFunc) http.Handler { return a.authed(h) }

// Operator wraps a handler only the operator may call.
func (a *API) Operator(h HandlerFunc) http.Handler { return a.operator(h) }

func (a *API) operator(h HandlerFunc) http.Handler {
	return a.authed(func(w http.ResponseWriter, r *http.Request) error {
		if !PrincipalFrom(r.Context()).Operator {
			return &Problem{Type: "https://pbxd.dev/problems/forbidden", Title: "Forbidden", Status: http.StatusForbidden, Detail: "this call needs the operator token"}
		}
		return h(w, r)
	})
}

func (a *API) authenticate(r *http.Request) (Principal, bool) {
	h := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || token == "" {
		return Principal{}, false
	}
	if op := a.opts.OperatorToken.Load(); op != nil && *op != "" {
		a1, b1 := sha256.Sum256([]byte(token)), sha256.Sum256([]byte(*op))
		if subtle.ConstantTimeCompare(a1[:], b1[:]) == 1 {
			return Principal{Operator: true}, true
		}
	}
	if a.opts.AccountToken != nil {
		id, ok, err := a.opts.AccountToken(r.Context(), token)
		if err != nil {
			a.log.Error("account token lookup", "err", err)
		}
		if ok {
			return Principal{AccountID: id}, true
		}
	}
	return Principal{}, false
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if err := a.opts.Ready(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (a *API) status(w http.ResponseWriter, r *http.Request) error {
	ready := "ready"
	if err := a.opts.Ready(r.Context()); err != nil {
		ready = err.Error()
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"version":    cmp.Or(a.opts.Version, "dev"),
		"ready":      ready,
		"test_clock": a.opts.TestClock != nil,
		"now":        a.now(),
	})
	return nil
}

func (a *API) now() time.Time {
	if a.opts.TestClock != nil {
		return a.opts.TestClock.Now()
	}
	return time.Now()
}

// OpenAPI is the API description served at /v1/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte

type clockBody struct {
	Now     string `json:"now,omitempty"`
	Advance string `json:"advance,omitempty"`
}

func (a *API) getTestClock(w http.ResponseWriter, r *http.Request) error {
	if a.opts.TestClock == nil {
		return NotFound("test clock (disabled; set PBXD_TEST_CLOCK)")
	}
	writeJSON(w, http.StatusOK, map[string]string{"now": a.opts.TestClock.Now().Format(time.RFC3339)})
	return nil
}

func (a *API) setTestClock(w http.ResponseWriter, r *http.Request) error {
	c := a.opts.TestClock
	if c == nil {
		return NotFound("test clock (disabled; set PBXD_TEST_CLOCK)")
	}
	var body clockBody
	if err := decode(r, &body); err != nil {
		return err
	}
	switch {
	case body.Now != "" && body.Advance != "":
		return Invalid("advance", "give either now or advance, not both")
	case body.Now != "":
		t, err := time.Parse(time.RFC3339, body.Now)
		if err != nil {
			return Invalid("now", "now must be an RFC 3339 time like 2026-11-16T10:00:00+01:00")
		}
		if err := c.Set(t); err != nil {
			return Invalid("now", "the test clock only moves forward (it is %s)", c.Now().Format(time.RFC3339))
		}
	case body.Advance != "":
		d, err := time.ParseDuration(body.Advance)
		if err != nil || d < 0 {
			return Invalid("advance", "advance must be a positive duration like 24h")
		}
		_ = c.Advance(d)
	default:
		return Invalid("now", "now or advance is required")
	}
	if a.opts.RunDue != nil {
		if err := a.opts.RunDue(r.Context()); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"now": c.Now().Format(time.RFC3339)})
	return nil
}
