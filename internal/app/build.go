package app

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/pbxd/pbxd/billing"
	"github.com/pbxd/pbxd/internal/config"
	"github.com/pbxd/pbxd/internal/httpapi"
	"github.com/pbxd/pbxd/internal/portal"
	"github.com/pbxd/pbxd/internal/scheduler"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/users"
	"github.com/pbxd/pbxd/provisioning"
	"github.com/pbxd/pbxd/provisioning/phones"
)

// build constructs the domain parts and the HTTP API.
func (a *App) build(ctx context.Context, cfg *config.Config) error {
	bill, err := a.newBilling(cfg) // sets a.biller, which provisioning prices changes with
	if err != nil {
		return fmt.Errorf("billing: %w", err)
	}
	a.bill = bill
	charger, _ := a.biller.(provisioning.Charger)
	prov, err := provisioning.New(provisioning.Options{
		Charger: charger,
		DB:      store.NewDB(a.pool), Clock: a.clock, SecretKey: a.secretKey, Biller: a.biller,
		Logger: a.log.With("component", "provisioning"), Registry: a.reg,
		NumberQuarantine: time.Duration(cfg.Numbers.Quarantine),
	})
	if err != nil {
		return err
	}
	a.prov = prov
	if err := prov.SyncCatalog(ctx, catalogOf(cfg)); err != nil {
		return fmt.Errorf("sync catalog: %w", err)
	}
	a.reloads = append(a.reloads, reloader{"catalog", func(c *config.Config) (func(), error) {
		return func() {}, provisioning.CheckCatalog(catalogOf(c))
	}})
	a.catalog = func(ctx context.Context, c *config.Config) error {
		if err := prov.SyncCatalog(ctx, catalogOf(c)); err != nil {
			return fmt.Errorf("sync catalog: %w", err)
		}
		return nil
	}
	a.parts = append(a.parts, part{"provisioning gauges", prov.Run})
	if err := a.buildBackend(cfg); err != nil {
		return err
	}
	a.parts = append(a.parts, part{"billing gauges", bill.Run})
	// The payment attempts this process creates carry its owner lock, so
	// that another instance (or this one restarted) settles them at once
	// if it dies.
	if err := bill.TakeOwnership(ctx); err != nil {
		return err
	}
	a.closers = append(a.closers, closer{"payment owner", bill.ReleaseOwnership})
	a.parts = append(a.parts, part{"payment owner", bill.HoldOwnership})
	// Payments a crash left half-way are settled at start: at once those
	// of processes that are gone, after a minute those of live ones (a
	// request in flight); the scheduled job takes the rest.
	a.parts = append(a.parts, part{"payment recovery", func(ctx context.Context) error {
		if err := bill.Recover(ctx, a.clock.Now(), prov); err != nil && ctx.Err() == nil {
			a.log.Error("payment recovery at start", "err", err)
		}
		return nil
	}})

	jobs := withScheduledChanges(billingJobs(bill, prov, cfg), prov)
	sched, err := scheduler.New(store.NewDB(a.pool), a.clock, a.log.With("component", "scheduler"), a.reg, jobs...)
	if err != nil {
		return err
	}
	sched.CheckInterval = cfg.Scheduler.CheckInterval.D()
	a.sched = sched
	a.parts = append(a.parts, part{"scheduler", sched.Run})

	provisionHandler, err := a.buildPhones(cfg)
	if err != nil {
		return err
	}

	var runDue func(context.Context) error
	if a.testClock != nil {
		runDue = sched.RunDue
	}
	db := store.NewDB(a.pool)
	accountUsers := users.New(db, a.clock)
	a.api = httpapi.New(httpapi.Options{
		Logger:        a.log.With("component", "http"),
		Registry:      a.reg,
		OperatorToken: &a.opToken,
		AccountToken:  prov.AccountForToken,
		Ready:         a.Ready,
		TestClock:     a.testClock,
		RunDue:        runDue,
		DB:            db,
		Provisioning:  prov,
		Provision:     provisionHandler,
		Version:       a.version,
		Routes: []func(*httpapi.API){httpapi.BillingRoutes(bill, func(ctx context.Context) error {
			return sched.RunNow(ctx, billing.RenewalJob)
		}), httpapi.UserRoutes(accountUsers)},
	})
	web, err := portal.New(portal.Options{
		DB: db, Users: accountUsers, Provisioning: prov, Billing: bill, PeriodPrice: a.biller.PeriodPrice,
		Clock: a.clock, OperatorToken: a.OperatorToken, Logger: a.log.With("component", "portal"),
	})
	if err != nil {
		return err
	}
	// The portal's HTML pages sit beside the JSON API, outside its
	// problem+json error handling and OpenAPI description.
	root := http.NewServeMux()
	root.Handle("/portal/", web)
	root.Handle("/", a.api)
	a.httpSrv = &http.Server{Handler: root, ReadHeaderTimeout: 10 * time.Second}
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
			TrialDays: p.TrialDays, DialContext: p.DialContext, FixedMonthDays: p.FixedMonthDays, ExcludeOrderDay: p.ExcludeOrderDay,
			Decrease: p.Decrease, DecreaseChoice: p.DecreaseChoice, Stock: p.Stock, Vendor: p.Vendor, Model: p.Model}
		if pp.Decrease == "" {
			pp.Decrease = provisioning.DecreaseImmediate
		}
		for _, c := range p.Cycles {
			pp.Cycles = append(pp.Cycles, provisioning.Cycle{Cycle: c.Cycle, DiscountBP: c.DiscountPercent.BP})
		}
		out = append(out, pp)
	}
	return out
}

// buildPhones builds the phone provisioning server; its settings and
// templates reload on SIGHUP.
func (a *App) buildPhones(cfg *config.Config) (http.Handler, error) {
	r, err := phones.NewRenderer(phoneSettings(cfg))
	if err != nil {
		return nil, fmt.Errorf("phone templates: %w", err)
	}
	a.phones = r
	a.reloads = append(a.reloads, reloader{"phone templates", func(c *config.Config) (func(), error) {
		return r.Prepare(phoneSettings(c))
	}})
	return phones.NewHandler(phones.Options{
		Directory: a.prov, Renderer: r, Registerer: a.reg, Logger: a.log.With("component", "phones"),
		Now:      a.clock.Now,
		Throttle: phones.Throttle{MaxFailures: cfg.Phones.ThrottleMisses, Window: cfg.Phones.ThrottleWindow.D(), Block: cfg.Phones.ThrottleBlock.D()},
	})
}

func phoneSettings(cfg *config.Config) phones.Settings {
	registrar := cfg.Phones.Registrar
	if registrar == "" {
		registrar, _, _ = net.SplitHostPort(cfg.SIP.Listen)
	}
	return phones.Settings{Registrar: registrar, Port: cfg.Phones.Port, Transport: phones.Transport(cfg.Phones.Transport),
		OutboundProxy: cfg.Phones.OutboundProxy, RegisterExpiry: cfg.Phones.RegisterExpiry, NTPServer: cfg.Phones.NTPServer,
		OverrideDir: cfg.Phones.TemplateDir}
}
