package app

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/pbxd/pbxd/internal/config"
	"github.com/pbxd/pbxd/internal/httpapi"
	"github.com/pbxd/pbxd/internal/scheduler"
	"github.com/pbxd/pbxd/provisioning"
)

// build constructs the domain parts and the HTTP API.
func (a *App) build(ctx context.Context, cfg *config.Config) error {
	prov, err := provisioning.New(provisioning.Options{
		Pool: a.pool, Clock: a.clock, SecretKey: a.secretKey, Biller: a.biller,
		Logger: a.log.With("component", "provisioning"), Registry: a.reg,
	})
	if err != nil {
		return err
	}
	a.prov = prov
	if err := prov.SyncCatalog(ctx, catalogOf(cfg)); err != nil {
		return fmt.Errorf("sync catalog: %w", err)
	}
	a.reloads = append(a.reloads, func(c *config.Config) error {
		if err := prov.SyncCatalog(context.Background(), catalogOf(c)); err != nil {
			return fmt.Errorf("sync catalog: %w", err)
		}
		return nil
	})
	a.parts = append(a.parts, part{"provisioning gauges", prov.Run})

	var jobs []scheduler.Job
	sched, err := scheduler.New(a.pool, a.clock, a.log.With("component", "scheduler"), a.reg, jobs...)
	if err != nil {
		return err
	}
	a.sched = sched
	a.parts = append(a.parts, part{"scheduler", sched.Run})

	var runDue func(context.Context) error
	if a.testClock != nil {
		runDue = sched.RunDue
	}
	a.api = httpapi.New(httpapi.Options{
		Logger:        a.log.With("component", "http"),
		Registry:      a.reg,
		OperatorToken: &a.opToken,
		AccountToken:  prov.AccountForToken,
		Ready:         a.Ready,
		TestClock:     a.testClock,
		RunDue:        runDue,
		Pool:          a.pool,
		Provisioning:  prov,
	})
	a.httpSrv = &http.Server{Handler: a.api, ReadHeaderTimeout: 10 * time.Second}
	return nil
}

// catalogOf converts the configured catalog for provisioning.
func catalogOf(cfg *config.Config) []provisioning.Package {
	out := make([]provisioning.Package, 0, len(cfg.Catalog))
	for _, p := range cfg.Catalog {
		kind := p.Kind
		if kind == "" {
			kind = "package"
		}
		pp := provisioning.Package{Code: p.Code, Name: p.Name, Kind: kind, PriceMinor: p.PriceMinor, Currency: p.Currency,
			TrialDays: p.TrialDays, DialContext: p.DialContext, FixedMonthDays: p.FixedMonthDays, ExcludeOrderDay: p.ExcludeOrderDay}
		for _, c := range p.Cycles {
			pp.Cycles = append(pp.Cycles, provisioning.Cycle{Cycle: c.Cycle, DiscountBP: c.DiscountPercent.BP})
		}
		out = append(out, pp)
	}
	return out
}
