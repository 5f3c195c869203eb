package app

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/pbxd/pbxd/internal/config"
)

// ExitConfig is pbxd's exit code when its configuration cannot be read or
// is invalid (sysexits' EX_CONFIG): restarting cannot help, so the unit's
// RestartPreventExitStatus= names it.
const ExitConfig = 78

// Main is pbxd's whole process lifecycle, separated from package main so
// tests can run it with their own arguments, environment and signals. It
// returns the exit code.
func Main(args []string, getenv func(string) string, signals <-chan os.Signal, stderr io.Writer) int {
	cfgPath, code, exit := parseFlags(args, stderr)
	if exit {
		return code
	}
	journal := toJournal(getenv, stderr)
	cfg, err := config.Load(cfgPath, getenv)
	if err != nil {
		bootLogger(journal, stderr).Error("invalid configuration; not starting", "err", err)
		return ExitConfig
	}
	logger, level := NewLogger(cfg, stderr)
	if journal {
		logger = slog.New(newJournalHandler(stderr, func(w io.Writer) slog.Handler { return newHandler(cfg, w, level) }))
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := start(ctx, cfg, signals, Options{Logger: logger, Level: level, Registry: newRegistry(), Version: buildVersion()})
	if err != nil {
		logger.Error("start-up failed", "err", err)
		return 1
	}

	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	notify(logger, getenv, daemon.SdNotifyReady)
	logger.Info("pbxd ready", "version", buildVersion(), "http", a.HTTPAddr(), "backend", cfg.Backend)
	stopWatchdog := watchdog(ctx, logger, getenv)
	defer stopWatchdog()
	stopStatus := statusLoop(ctx, a, logger, getenv, 15*time.Second)
	defer stopStatus()

	d := &daemonLife{app: a, cfg: cfg, cfgPath: cfgPath, logger: logger, getenv: getenv, done: done, cancel: cancel}
	return d.serve(ctx, signals)
}

// parseFlags reads pbxd's command line. It returns the config file's path,
// or exit set with the exit code when pbxd must not start (a bad flag, or
// -version, which it prints).
func parseFlags(args []string, stderr io.Writer) (cfgPath string, code int, exit bool) {
	fs := flag.NewFlagSet("pbxd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "YAML config file (default: embedded defaults)")
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return "", 2, true
	}
	if *version {
		if _, err := fmt.Fprintln(stderr, "pbxd", buildVersion()); err != nil {
			return "", 1, true
		}
		return "", 0, true
	}
	return *path, 0, false
}

// bootLogger is the logger used before the configuration is read: plain
// text on stderr, or journal fields when stderr is the journal.
func bootLogger(journal bool, stderr io.Writer) *slog.Logger {
	if journal {
		return slog.New(newJournalHandler(stderr, func(w io.Writer) slog.Handler { return slog.NewTextHandler(w, nil) }))
	}
	return slog.New(slog.NewTextHandler(stderr, nil))
}

// newRegistry is the process's metrics registry with the Go and process
// collectors and pbxd_build_info.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	promauto.With(reg).NewGauge(prometheus.GaugeOpts{
		Name:        "pbxd_build_info",
		Help:        "Always 1; labels carry the build version and Go version.",
		ConstLabels: prometheus.Labels{"version": buildVersion(), "goversion": runtime.Version()},
	}).Set(1)
	return reg
}

// start builds the daemon; a SIGTERM (or interrupt) during start-up aborts it.
func start(ctx context.Context, cfg *config.Config, signals <-chan os.Signal, opts Options) (*App, error) {
	startCtx, startCancel := context.WithCancel(ctx)
	go func() { // a SIGTERM during start-up aborts it
		select {
		case s := <-signals:
			if s == syscall.SIGTERM || s == os.Interrupt {
				startCancel()
			}
		case <-startCtx.Done():
		}
	}()
	a, err := New(startCtx, cfg, opts)
	startCancel()
	return a, err
}

// daemonLife is a started daemon as Main's signal loop sees it.
type daemonLife struct {
	app     *App
	cfg     *config.Config
	cfgPath string
	logger  *slog.Logger
	getenv  func(string) string
	done    <-chan error // Run's result
	cancel  context.CancelFunc
}

// serve waits for Run to end or a signal: SIGHUP reloads, SIGTERM (or an
// interrupt) shuts down. It returns the exit code.
func (d *daemonLife) serve(ctx context.Context, signals <-chan os.Signal) int {
	for {
		select {
		case err := <-d.done:
			if err != nil {
				d.logger.Error("pbxd stopped on an error", "err", err)
				return 1
			}
			return 0
		case s := <-signals:
			switch s {
			case syscall.SIGHUP:
				d.reload(ctx)
			case syscall.SIGTERM, os.Interrupt:
				return d.shutdown(s)
			}
		}
	}
}

// reload re-reads the configuration and applies it, telling systemd it is
// reloading, then ready again, with a status naming a failed reload.
func (d *daemonLife) reload(ctx context.Context) {
	notify(d.logger, d.getenv, daemon.SdNotifyReloading)
	newCfg, err := config.Load(d.cfgPath, d.getenv)
	if err == nil {
		err = d.app.Reload(newCfg)
	} else {
		d.app.reloadOK.Set(0)
	}
	if err != nil {
		d.logger.Error("reload failed; the running configuration stays", "err", err)
	}
	notify(d.logger, d.getenv, daemon.SdNotifyReady)
	status := d.app.StatusLine(ctx)
	if err != nil {
		status += "; last reload failed: " + err.Error()
	}
	notify(d.logger, d.getenv, "STATUS="+status)
}

// shutdown stops the daemon on signal s and waits for Run to end, at most
// the configured shutdown timeout plus five seconds. It returns the exit code.
func (d *daemonLife) shutdown(s os.Signal) int {
	d.logger.Info("shutting down", "signal", s.String())
	notify(d.logger, d.getenv, daemon.SdNotifyStopping)
	notify(d.logger, d.getenv, "STATUS=stopping")
	d.cancel()
	select {
	case err := <-d.done:
		if err != nil {
			d.logger.Error("shutdown", "err", err)
			return 1
		}
		d.logger.Info("pbxd stopped")
		return 0
	case <-time.After(d.cfg.ShutdownTimeout.D() + 5*time.Second):
		d.logger.Error("shutdown did not finish in time")
		return 1
	}
}

// notify sends an sd_notify state when NOTIFY_SOCKET is set.
func notify(log *slog.Logger, getenv func(string) string, state string) {
	if getenv("NOTIFY_SOCKET") == "" {
		return
	}
	if _, err := sdNotify(getenv, state); err != nil {
		log.Warn("sd_notify", "state", state, "err", err)
	}
}

// sdNotify sends state to the socket getenv names, as daemon.SdNotify
// does with the process environment's: each daemon (tests run several in
// one process) is told its own socket.
func sdNotify(getenv func(string) string, state string) (bool, error) {
	sock := getenv("NOTIFY_SOCKET")
	if sock == "" {
		return false, nil
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return false, err
	}
	_, err = conn.Write([]byte(state))
	if cerr := conn.Close(); err == nil {
		err = cerr
	}
	return err == nil, err
}

// watchdog pings systemd at half the interval it asks for in WATCHDOG_USEC.
func watchdog(ctx context.Context, log *slog.Logger, getenv func(string) string) func() {
	usec := getenv("WATCHDOG_USEC")
	if usec == "" {
		return func() {}
	}
	var n int64
	if _, err := fmt.Sscan(usec, &n); err != nil || n <= 0 {
		log.Warn("ignoring a bad WATCHDOG_USEC", "value", usec)
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(time.Duration(n) * time.Microsecond / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				notify(log, getenv, daemon.SdNotifyWatchdog)
			}
		}
	}()
	return cancel
}

func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
