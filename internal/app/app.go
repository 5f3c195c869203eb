// Package app wires pbxd together: it builds every part from the config,
// runs them under one errgroup, reloads on SIGHUP and tears down in order.
// Integration tests start whole daemons in-process through it.
package app

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/sync/errgroup"

	"github.com/pbxd/pbxd/billing"
	"github.com/pbxd/pbxd/internal/clock"
	"github.com/pbxd/pbxd/internal/config"
	"github.com/pbxd/pbxd/internal/httpapi"
	"github.com/pbxd/pbxd/internal/pgcluster"
	"github.com/pbxd/pbxd/internal/scheduler"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/pbx"
	"github.com/pbxd/pbxd/provisioning"
	"github.com/pbxd/pbxd/provisioning/phones"
	"github.com/pbxd/pbxd/sip"
)

// App is a built daemon: database connected, migrations applied, listeners
// bound. Run serves until its context ends.
type App struct {
	cfg       atomic.Pointer[config.Config]
	log       *slog.Logger
	level     *slog.LevelVar
	reg       *prometheus.Registry
	clock     clock.Clock
	testClock *clock.Test
	cluster   *pgcluster.Cluster
	pool      *store.Pool
	opToken   atomic.Pointer[string]
	secretKey []byte

	httpLn  net.Listener
	httpSrv *http.Server
	api     *httpapi.API
	sched   *scheduler.Scheduler
	prov    *provisioning.Service
	// backend is the PBX; registrar is set when it is the built-in one.
	backend    pbx.Backend
	registrar  *sip.Registrar
	reconciler *provisioning.Reconciler
	biller     provisioning.Biller
	bill       *billing.Service
	phones     *phones.Renderer

	parts    []part   // long-running parts, started in order
	closers  []closer // torn down last-in first-out after the parts stop
	reloads  []reloader
	catalog  func(context.Context, *config.Config) error // writes the catalog (see Reload)
	readies  []func(context.Context) error
	reloadOK prometheus.Gauge
	// loadedAt is when the configuration in force was loaded (Unix
	// seconds), each daemon its own.
	loadedAt atomic.Int64
	version  string
}

// Options are what a daemon gets besides its config.
type Options struct {
	Logger   *slog.Logger
	Level    *slog.LevelVar // changed by reloads
	Registry *prometheus.Registry
	// Version is the build version the API reports ("dev" when empty).
	Version string
}

// reloader prepares one reloadable part's new state from a config without
// changing anything, and returns the swap that puts it in force. The swap
// cannot fail: everything fallible happens in the preparation.
type reloader struct {
	name    string
	prepare func(*config.Config) (swap func(), err error)
}

type part struct {
	name string
	run  func(context.Context) error
}

type closer struct {
	name string
	fn   func() error
}

// New builds the daemon. Errors name what failed (database, migrations, a
// port in use) and leave nothing running.
func New(ctx context.Context, cfg *config.Config, o Options) (_ *App, err error) {
	a := &App{log: o.Logger, level: o.Level, reg: o.Registry, clock: clock.Real{}, version: cmp.Or(o.Version, "dev")}
	log, reg := a.log, a.reg
	a.cfg.Store(cfg)
	defer func() {
		if err != nil {
			a.teardown()
		}
	}()
	if cfg.TestClock != "" {
		start, _ := time.Parse(time.RFC3339, cfg.TestClock)
		a.testClock = clock.NewTest(start)
		a.clock = a.testClock
		log.Warn("test clock enabled: time is set through the API, never use this in production", "now", start)
	}
	a.reloadOK = promauto.With(reg).NewGauge(prometheus.GaugeOpts{Name: "pbxd_config_last_reload_successful", Help: "1 if the last configuration reload succeeded."})
	a.reloadOK.Set(1)
	promauto.With(reg).NewGaugeFunc(prometheus.GaugeOpts{Name: "pbxd_config_last_reload_success_timestamp_seconds", Help: "Time of the last successful configuration load."}, func() float64 { return float64(a.loadedAt.Load()) })
	a.loadedAt.Store(time.Now().Unix())

	if err := a.secrets(cfg); err != nil {
		return nil, err
	}
	if err := a.openDatabase(ctx, cfg); err != nil {
		return nil, err
	}
	if err := a.build(ctx, cfg); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return nil, fmt.Errorf("http listen on %s: %w", cfg.HTTP.Listen, err)
	}
	if cfg.HTTP.TLSCert != "" {
		// HTTPS: phones fetch SIP credentials from /provision/.
		cert, err := tls.LoadX509KeyPair(cfg.HTTP.TLSCert, cfg.HTTP.TLSKey)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("http.tls_cert: %w", err), ln.Close())
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	a.httpLn = ln
	return a, nil
}

// secrets fills the password-encryption key and operator token. Without
// configured ones (the zero-set-up default) they are generated once into the
// state directory, so a development daemon keeps its data readable across
// restarts.
func (a *App) secrets(cfg *config.Config) error {
	key := cfg.SecretKey
	if key == "" {
		var err error
		if key, err = a.stateSecret(cfg.StateDir, "secret.key", "secret_key", 32); err != nil {
			return err
		}
	}
	k, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(k) != 32 {
		return errors.New("secret_key: must be the base64 encoding of 32 bytes")
	}
	a.secretKey = k
	tok := cfg.HTTP.OperatorToken
	if tok == "" {
		if tok, err = a.stateSecret(cfg.StateDir, "operator-token", "operator token", 24); err != nil {
			return err
		}
	}
	a.opToken.Store(&tok)
	return nil
}

// stateSecret reads the secret kept in the state directory's file name,
// generating n random bytes into it the first time. Only generating one is
// worth a warning; reusing it is the normal development start.
func (a *App) stateSecret(dir, name, what string, n int) (string, error) {
	p := filepath.Join(dir, name)
	if b, err := os.ReadFile(p); err == nil {
		a.log.Info("no "+what+" configured: using the one in the state directory", "path", p)
		return strings.TrimSpace(string(b)), nil
	}
	a.log.Warn("no "+what+" configured: generating one into the state directory", "path", p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("state directory: %w", err)
	}
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	s := base64.StdEncoding.EncodeToString(b)
	if name != "secret.key" {
		s = base64.RawURLEncoding.EncodeToString(b)
	}
	if err := os.WriteFile(p, []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", p, err)
	}
	return s, nil
}

// openDatabase connects (starting a private cluster when no URL is set) and
// applies the migrations.
func (a *App) openDatabase(ctx context.Context, cfg *config.Config) error {
	url := cfg.Database.URL
	if url == "" {
		dir, err := filepath.Abs(filepath.Join(cfg.StateDir, "postgres"))
		if err != nil {
			return err
		}
		// One daemon per state directory: a second one would stop the
		// first one's PostgreSQL, taking it for a crash leftover.
		unlock, err := lockDir(cfg.StateDir)
		if err != nil {
			return err
		}
		a.closers = append(a.closers, closer{"state directory lock", unlock})
		a.log.Info("no database url: starting a private PostgreSQL", "dir", dir)
		c, err := pgcluster.Start(ctx, dir)
		if err != nil {
			return fmt.Errorf("private PostgreSQL: %w", err)
		}
		a.cluster = c
		a.closers = append(a.closers, closer{"private postgresql", c.Stop})
		if err := store.EnsureDatabase(ctx, c.URL("postgres"), "pbxd"); err != nil {
			return err
		}
		url = c.URL("pbxd")
	}
	pool, err := store.Open(ctx, url, cfg.Database.MaxConns, cfg.Database.ConnectWait.D(), a.log)
	if err != nil {
		return err
	}
	a.pool = pool
	a.closers = append(a.closers, closer{"database pool", func() error { pool.Close(); return nil }})
	if err := store.Migrate(ctx, pool); err != nil {
		return err
	}
	a.readies = append(a.readies, func(ctx context.Context) error {
		if err := pool.Ping(ctx); err != nil {
			return fmt.Errorf("database unreachable: %w", err)
		}
		if n, err := store.Pending(ctx, pool); err != nil || n > 0 {
			return fmt.Errorf("migrations pending: %d %v", n, err)
		}
		return nil
	})
	return nil
}

func lockDir(dir string) (func() error, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "pbxd.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state directory lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return nil, errors.Join(fmt.Errorf("state directory %s is in use by another pbxd", dir), f.Close())
	}
	return f.Close, nil
}

// HTTPAddr is the bound API address (useful with port 0 in tests).
func (a *App) HTTPAddr() string { return a.httpLn.Addr().String() }

// Routes lists the HTTP route patterns served.
func (a *App) Routes() []string { return a.api.Routes() }

// Registrar is the built-in SIP registrar, nil with another backend.
func (a *App) Registrar() *sip.Registrar { return a.registrar }

// Backend is the PBX backend.
func (a *App) Backend() pbx.Backend { return a.backend }

// Reconciler keeps the backend equal to the database.
func (a *App) Reconciler() *provisioning.Reconciler { return a.reconciler }

// Provisioning is the provisioning service (for in-process benchmarks).
func (a *App) Provisioning() *provisioning.Service { return a.prov }

// TestClock is the settable clock when test_clock is on, else nil. Setting
// it directly moves time without running the jobs that became due (the
// API's test clock runs them), for tests of what happens in between.
func (a *App) TestClock() *clock.Test { return a.testClock }

// Pool exposes the database to in-process tests.
func (a *App) Pool() *store.Pool { return a.pool }

// OperatorToken returns the operator token in force.
func (a *App) OperatorToken() string { return *a.opToken.Load() }

// Ready reports why the daemon is not ready, or nil.
func (a *App) Ready(ctx context.Context) error {
	for _, r := range a.readies {
		if err := r(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Run serves until ctx ends, then shuts down within the configured bound:
// stop accepting, let in-flight work finish, close the pool. The first part
// to fail stops the others.
func (a *App) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, p := range a.parts {
		g.Go(func() error {
			if err := p.run(gctx); err != nil && gctx.Err() == nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			return nil
		})
	}
	g.Go(func() error {
		if err := a.httpSrv.Serve(a.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), a.cfg.Load().ShutdownTimeout.D())
		defer cancel()
		return a.httpSrv.Shutdown(sctx)
	})
	err := g.Wait()
	a.teardown()
	return err
}

// teardown closes what New opened, last first.
func (a *App) teardown() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		c := a.closers[i]
		if err := c.fn(); err != nil {
			a.log.Error("shutdown", "part", c.name, "err", err)
		}
	}
	a.closers = nil
	// Run's server closed the listener already: only one New left unused
	// is still open here.
	if a.httpLn != nil {
		if err := a.httpLn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			a.log.Error("shutdown", "part", "http listener", "err", err)
		}
	}
}

// Reload applies what can change at run time from a new, already validated
// config: log level, operator token, billing settings, phone templates and
// the catalog. It is all or nothing: every part first prepares its new state
// without touching the running one; only when all succeeded is the catalog
// written (in one transaction: the last fallible step), then the prepared
// states are swapped in, which cannot fail. A failed reload changes
// nothing. Settings that need a restart are logged as such.
func (a *App) Reload(cfg *config.Config) error {
	if err := a.reload(cfg); err != nil {
		a.reloadOK.Set(0)
		return err
	}
	a.reloadOK.Set(1)
	a.loadedAt.Store(time.Now().Unix())
	a.log.Info("configuration reloaded")
	return nil
}

func (a *App) reload(cfg *config.Config) error {
	old := a.cfg.Load()
	var errs []error
	swaps := make([]func(), 0, len(a.reloads))
	for _, r := range a.reloads {
		swap, err := r.prepare(cfg)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.name, err))
			continue
		}
		swaps = append(swaps, swap)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if a.catalog != nil {
		if err := a.catalog(context.Background(), cfg); err != nil {
			return err
		}
	}
	for _, swap := range swaps {
		swap()
	}
	a.level.Set(parseLevel(cfg.Log.Level))
	if cfg.HTTP.OperatorToken != "" {
		tok := cfg.HTTP.OperatorToken
		a.opToken.Store(&tok)
	}
	for _, s := range restartOnly(old, cfg) {
		a.log.Warn("setting changed but needs a restart", "key", s)
	}
	a.cfg.Store(cfg)
	return nil
}

// LoadedAt is when the configuration in force was loaded.
func (a *App) LoadedAt() time.Time { return time.Unix(a.loadedAt.Load(), 0) }

// Version is the build version the daemon reports.
func (a *App) Version() string { return a.version }

func restartOnly(old, cfg *config.Config) []string {
	var keys []string
	check := func(key string, changed bool) {
		if changed {
			keys = append(keys, key)
		}
	}
	check("database", old.Database != cfg.Database)
	check("http.listen", old.HTTP.Listen != cfg.HTTP.Listen)
	check("sip", !reflect.DeepEqual(old.SIP, cfg.SIP))
	check("backend", old.Backend != cfg.Backend)
	check("scheduler", old.Scheduler != cfg.Scheduler)
	check("secret_key", old.SecretKey != cfg.SecretKey)
	return keys
}

func parseLevel(s string) slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(s))
	return l
}

// NewLogger builds the slog logger the config asks for; the level can be
// changed by a reload through the returned LevelVar.
func NewLogger(cfg *config.Config, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	level.Set(parseLevel(cfg.Log.Level))
	return slog.New(newHandler(cfg, w, level)), level
}

func newHandler(cfg *config.Config, w io.Writer, level slog.Leveler) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}
