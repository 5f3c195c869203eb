package app

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/pbxd/pbxd/billing"
	"github.com/pbxd/pbxd/internal/config"
	"github.com/pbxd/pbxd/internal/scheduler"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/provisioning"
)

// newBilling builds the billing shell from the config, makes it the
// provisioning Biller (a.biller, read by provisioning.New) and registers
// its settings for SIGHUP reloads.
func (a *App) newBilling(cfg *config.Config) (*billing.Service, error) {
	svc, err := billing.NewService(billing.Options{
		DB: store.NewDB(a.pool), Clock: a.clock, Settings: billingSettings(cfg),
		// Dunning suspends and payments resume lines through provisioning's
		// line switch (the database only: provisioning's Service needs
		// billing first, as its Biller).
		Lines:  provisioning.NewLineSwitch(a.clock),
		Logger: a.log.With("component", "billing"), Registry: a.reg,
		// Renewals are CPU-bound (pbxd and PostgreSQL): two workers per core,
		// 7,400-7,900 renewals/s on 2 cores against 6,600 with 2 and 6,100
		// with 8.
		Workers: max(1, min(2*runtime.GOMAXPROCS(0), int(cfg.Database.MaxConns)/2)),
	})
	if err != nil {
		return nil, err
	}
	a.biller = billerAdapter{svc: svc}
	svc.InitCurrencyMetrics(catalogCurrencies(cfg))
	a.reloads = append(a.reloads, reloader{"billing settings", func(c *config.Config) (func(), error) {
		st := billingSettings(c)
		if err := st.Validate(); err != nil {
			return nil, err
		}
		return func() {
			svc.InitCurrencyMetrics(catalogCurrencies(c))
			_ = svc.SetSettings(st) // validated above: cannot fail
		}, nil
	}})
	return svc, nil
}

// catalogCurrencies lists the catalogue's currencies once each: the label
// values of the per-currency billing counters.
func catalogCurrencies(cfg *config.Config) []string {
	var cs []string
	for _, p := range cfg.Catalog {
		if !slices.Contains(cs, p.Currency) {
			cs = append(cs, p.Currency)
		}
	}
	return cs
}

func billingSettings(cfg *config.Config) billing.Settings {
	b := cfg.Billing
	st := billing.Settings{
		IssuerCode: b.Issuer.Code,
		Issuer: billing.Issuer{Name: b.Issuer.Name, Address: b.Issuer.Address, VATID: b.Issuer.VATID,
			Bank: b.Issuer.Bank, IBAN: b.Issuer.IBAN, BIC: b.Issuer.BIC},
		CreditOnDecrease: b.CreditOnDecrease,
		PaymentTermDays:  b.PaymentTermDays,
		RenewalBatch:     b.RenewalBatch,
	}
	for _, d := range b.Dunning {
		st.Dunning = append(st.Dunning, d.D())
	}
	if len(st.Dunning) == 0 {
		st.Dunning = billing.DefaultDunningSchedule
	}
	return st
}

// billingJobs are the scheduled billing jobs: renewals on the configured
// schedule, payment retries every quarter of an hour. Renewals come first,
// so a retry never precedes the renewal it follows in one pass. The
// recovery job completes paid changes through changes (provisioning).
func billingJobs(svc *billing.Service, changes billing.ChangeApplier, cfg *config.Config) []scheduler.Job {
	return []scheduler.Job{
		{Name: billing.RenewalJob, Schedule: cfg.Billing.Schedule, Run: func(ctx context.Context, now time.Time) error {
			_, err := svc.Renew(ctx, now)
			_ = svc.RefreshGauges(ctx)
			return err
		}},
		{Name: billing.DunningJob, Schedule: billing.DunningCron, Run: svc.RunDunning},
		{Name: billing.RecoveryJob, Schedule: billing.RecoveryCron, Run: func(ctx context.Context, now time.Time) error {
			return svc.Recover(ctx, now, changes)
		}},
	}
}

// billerAdapter makes the billing shell a provisioning.Biller, converting
// between the two packages' types (neither imports the other).
type billerAdapter struct{ svc *billing.Service }

var _ provisioning.Biller = billerAdapter{}

func billingAccount(a provisioning.Account) billing.Account {
	return billing.Account{ID: a.ID, Name: a.Name, Currency: billing.Currency(a.Currency), Location: a.Location(),
		VAT: billing.BasisPoints(a.VATBP), PaymentMode: a.PaymentMode, BillingAddress: a.BillingAddress}
}

func billingPackage(p provisioning.Package) billing.Package {
	bp := billing.Package{Code: p.Code, Name: p.Name, PriceMinor: p.PriceMinor, Currency: billing.Currency(p.Currency),
		TrialDays: p.TrialDays, Retired: p.Retired, Discounts: map[billing.Cycle]billing.BasisPoints{},
		Proration: billing.ProrationSettings{FixedMonthDays: p.FixedMonthDays, ExcludeOrderDay: p.ExcludeOrderDay}}
	for _, c := range p.Cycles {
		bp.Discounts[billing.Cycle(c.Cycle)] = billing.BasisPoints(c.DiscountBP)
	}
	return bp
}

// cycleOf is the billing cycle named s. An unknown name is an error, never
// a monthly cycle: provisioning checks cycles against the catalog before
// pricing, so one reaching here is bad data.
func cycleOf(s string) (billing.Cycle, error) {
	return billing.ParseCycle(s)
}

// knownCycle is cycleOf for the Biller methods that cannot return an
// error (NewPeriod, PeriodPrice), which provisioning only calls with a
// cycle the package offers (the catalog's cycles are checked when the
// config is loaded). An unknown one is a bug: it panics, as billing's own
// period arithmetic does, rather than price a monthly period.
func knownCycle(s string) billing.Cycle {
	c, err := cycleOf(s)
	if err != nil {
		panic(fmt.Errorf("biller: %w", err))
	}
	return c
}

// NewPeriod is the period containing at, in the account's time zone.
func (b billerAdapter) NewPeriod(acct provisioning.Account, cycle string, at time.Time) (time.Time, time.Time) {
	return billing.PeriodContaining(knownCycle(cycle), at, at, acct.Location())
}

// PeriodPrice is the discounted unit price per period.
func (b billerAdapter) PeriodPrice(pkg provisioning.Package, cycle string) int64 {
	c := knownCycle(cycle)
	p, err := billing.PeriodPrice(billingPackage(pkg), c)
	if err != nil {
		return pkg.PriceMinor * int64(c.Months()) // unreachable for catalog prices
	}
	return p
}

// Quote prices the changes.
func (b billerAdapter) Quote(ctx context.Context, acct provisioning.Account, changes []provisioning.PriceChange, at time.Time) (provisioning.Quote, error) {
	cs := make([]billing.Change, 0, len(changes))
	for _, c := range changes {
		cycle, err := cycleOf(c.Cycle)
		if err != nil {
			return provisioning.Quote{}, fmt.Errorf("quote %s: %w", c.Package.Code, err)
		}
		cs = append(cs, billing.Change{Package: billingPackage(c.Package), Cycle: cycle, From: c.From, To: c.To,
			PeriodStart: c.PeriodStart, PeriodEnd: c.PeriodEnd, PeriodPriceMinor: c.PeriodPriceMinor, Trial: c.Trial, OneTimeMinor: c.OneTimeMinor})
	}
	q, err := b.svc.QuoteChanges(ctx, billingAccount(acct), cs, at)
	if err != nil {
		return provisioning.Quote{}, err
	}
	loc := acct.Location()
	out := provisioning.Quote{
		DueNow:         provisioning.Amounts{NetMinor: q.DueNow.NetMinor, TaxMinor: q.DueNow.TaxMinor, GrossMinor: q.DueNow.GrossMinor, Currency: acct.Currency},
		CreditNextBill: q.CreditNextBill, ChargeNextBill: q.ChargeNextBill, Currency: acct.Currency,
		PaymentMethod: q.PaymentMethod, PaymentMethodID: q.PaymentMethodID, Items: []provisioning.QuoteItem{},
	}
	for _, l := range q.Lines {
		out.Items = append(out.Items, provisioning.QuoteItem{Package: l.PackageCode, Quantity: int(l.Quantity), ProratedMinor: l.AmountMinor,
			PeriodStart: l.PeriodStart.Start(loc), PeriodEnd: l.PeriodEnd.Start(loc), Note: l.ProrationNote})
	}
	for _, l := range q.OneTime {
		out.Items = append(out.Items, provisioning.QuoteItem{Package: l.PackageCode, Quantity: int(l.Quantity), ProratedMinor: l.AmountMinor,
			PeriodStart: l.PeriodStart.Start(loc), PeriodEnd: l.PeriodEnd.Start(loc), Note: l.ProrationNote,
			OneTime: true, Description: l.Description, UnitMinor: l.UnitMinor})
	}
	return out, nil
}

// Record writes the quote's pending items in tx and queues its invoice in
// last.
func (b billerAdapter) Record(ctx context.Context, tx *store.Tx, last *store.Batch, acct provisioning.Account, changeID string, q provisioning.Quote, at time.Time) (string, error) {
	loc := acct.Location()
	items := make([]billing.RecordItem, 0, len(q.Items))
	for _, it := range q.Items {
		items = append(items, billing.RecordItem{Package: it.Package, Quantity: int64(it.Quantity), AmountMinor: it.ProratedMinor,
			PeriodStart: billing.DateOf(it.PeriodStart, loc), PeriodEnd: billing.DateOf(it.PeriodEnd, loc), Note: it.Note,
			Description: it.Description, UnitMinor: it.UnitMinor})
	}
	return b.svc.RecordChange(ctx, tx, last, billingAccount(acct), changeID, items, q.DueNow.GrossMinor, at)
}

// PreparePayment commits-to-be the change's payment intent in tx.
func (b billerAdapter) PreparePayment(ctx context.Context, tx *store.Tx, acct provisioning.Account, changeID string, q provisioning.Quote, at time.Time) (provisioning.Payment, error) {
	p, err := b.svc.PrepareChangePayment(ctx, tx, billingAccount(acct), changeID, q.DueNow.GrossMinor, at)
	if p == nil || err != nil {
		return nil, err
	}
	return p, nil
}

// Pay charges the intent outside any transaction; an approval comes back
// unrecorded.
func (b billerAdapter) Pay(ctx context.Context, p provisioning.Payment) (provisioning.PaymentAnswer, error) {
	ans, err := b.svc.ChargeChange(ctx, p.(*billing.ChangePayment))
	if ans == nil || err != nil {
		return nil, err // no typed nil in the interface
	}
	return ans, nil
}

// SaveSubscription writes what a confirmed change leaves of a subscription.
func (b billerAdapter) SaveSubscription(ctx context.Context, tx *store.Tx, w provisioning.SubscriptionWrite) error {
	return billing.SaveSubscription(ctx, tx, billing.SubscriptionWrite(w))
}

// Refund gives back a refused change's payment.
func (b billerAdapter) Refund(ctx context.Context, changeID, reason string) error {
	return b.svc.RefundChange(ctx, changeID, reason)
}

// QueueRenewalDue queues RenewDue's first check into b.
func (b billerAdapter) QueueRenewalDue(batch *store.Batch, accountID string, at time.Time, due *bool) {
	billing.QueueRenewalDue(batch, accountID, at, due)
}

// RenewDue invoices the account's periods that began and are not invoiced.
func (b billerAdapter) RenewDue(ctx context.Context, accountID string, at time.Time) error {
	return b.svc.RenewAccount(ctx, accountID, at)
}
