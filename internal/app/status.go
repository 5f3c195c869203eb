package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// StatusLine is the one-line summary pbxd hands systemd as STATUS= (shown
// by `systemctl status pbxd`): readiness, lines by state, SIP registrations
// and the PBX backend's state. The figures are read from the metrics
// registry, so the line says exactly what /metrics says.
func (a *App) StatusLine(ctx context.Context) string {
	ready := "ready"
	if err := a.Ready(ctx); err != nil {
		ready = "not ready: " + err.Error()
	}
	families, err := a.reg.Gather()
	if err != nil {
		return ready + "; metrics: " + err.Error()
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range families {
		byName[f.GetName()] = f
	}
	parts := []string{ready}
	if f := byName["pbxd_lines"]; f != nil {
		var states []string
		for _, m := range f.GetMetric() {
			states = append(states, fmt.Sprintf("%.0f %s", m.GetGauge().GetValue(), label(m, "state")))
		}
		parts = append(parts, "lines: "+strings.Join(states, ", "))
	}
	if f := byName["pbxd_sip_registrations_active"]; f != nil && len(f.GetMetric()) == 1 {
		parts = append(parts, fmt.Sprintf("registrations: %.0f", f.GetMetric()[0].GetGauge().GetValue()))
	}
	backend := "backend " + a.cfg.Load().Backend
	if f := byName["pbxd_pbx_backend_connected"]; f != nil {
		var up []string
		for _, m := range f.GetMetric() {
			if m.GetGauge().GetValue() == 1 {
				up = append(up, label(m, "node"))
			}
		}
		backend += fmt.Sprintf(": %d of %d nodes connected", len(up), len(f.GetMetric()))
		if len(up) > 0 {
			backend += " (" + strings.Join(up, ", ") + ")"
		}
	}
	return strings.Join(append(parts, backend), "; ")
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// statusLoop sends STATUS= now and refreshes it every interval while ctx
// lasts (the lines gauge itself is refreshed every 15 s); every second
// while the daemon is not ready yet (its parts connect after READY=1, which
// means "listening").
func statusLoop(ctx context.Context, a *App, log *slog.Logger, getenv func(string) string, every time.Duration) func() {
	if getenv("NOTIFY_SOCKET") == "" {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		for {
			line := a.StatusLine(ctx)
			notify(log, getenv, "STATUS="+line)
			wait := every
			if !strings.HasPrefix(line, "ready") {
				wait = min(every, time.Second)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}()
	return cancel
}
