package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/text/language"
	"golang.org/x/text/language/display"

	"github.com/pbxd/pbxd/internal/clock"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/billdb"
)

// This file and the others without a pure-logic purpose (quote.go, issue.go,
// renew.go, pay.go, summary.go) are the transactional shell around the pure
// core: they read PostgreSQL, call the pure functions and store the result,
// one transaction per unit of work.

// Names of the scheduled jobs the wiring registers.
const (
	// RenewalJob renews subscriptions whose period or trial has ended.
	RenewalJob = "billing.renewals"
	// DunningJob retries failed payments and suspends after the last failure.
	DunningJob = "billing.dunning"
	// DunningCron is the cron expression of DunningJob: retries are due
	// at offsets from the first failure, so a quarter-hour granularity keeps
	// them close to their due time.
	DunningCron = "*/15 * * * *"
)

// LineSwitch suspends or resumes the lines of one subscription, in the
// caller's unit of work (store.Tx), so the PBX follows billing. Billing
// declares it; the daemon satisfies it with provisioning's LineSwitch
// (which needs only the database, not provisioning's Service, whose
// Biller is billing), so neither package imports the other.
type LineSwitch interface {
	SetSubscriptionLines(ctx context.Context, tx *store.Tx, subscriptionID string, suspended bool, reason string) (int, error)
}

// Clock is the daemon's notion of now.
type Clock interface{ Now() time.Time }

// Settings are the reloadable billing options from the config.
type Settings struct {
	// IssuerCode names the invoice numbering series (one gapless sequence
	// per issuer and year).
	IssuerCode string
	// Issuer is printed on every invoice.
	Issuer Issuer
	// CreditOnDecrease gives a prorated credit on the next bill when seats
	// are removed mid-period; false gives none.
	CreditOnDecrease bool
	// PaymentTermDays is the due date of invoices not paid at issue.
	PaymentTermDays int
	// Dunning is the retry schedule of failed payments.
	Dunning DunningSchedule
	// RenewalBatch is the most subscriptions one renewal transaction takes;
	// 0 means DefaultRenewalBatch, 1 one transaction per subscription.
	RenewalBatch int
}

// Validate checks the settings before they are used.
func (s Settings) Validate() error {
	if s.IssuerCode == "" || s.Issuer.Name == "" {
		return errors.New("billing: issuer code and name are required")
	}
	if s.PaymentTermDays < 0 {
		return errors.New("billing: payment_term_days must not be negative")
	}
	if s.RenewalBatch < 0 {
		return errors.New("billing: renewal_batch must not be negative")
	}
	return s.Dunning.Validate()
}

// Options configure a Service.
type Options struct {
	DB       *store.DB // the database (store.NewDB over the daemon's pool)
	Clock    Clock
	Settings Settings
	// Gateways by name; nil means the built-in manual and sandbox gateways.
	Gateways map[string]Gateway
	// Lines suspends and resumes the lines of the subscriptions dunning
	// suspends and a payment reactivates; without it, that step fails.
	Lines    LineSwitch
	Logger   *slog.Logger
	Registry prometheus.Registerer
	// Workers bounds the renewal run's parallel transactions (default 8).
	Workers int
	// AfterRenewal, when set, is called after each committed renewal: a hook
	// for tests and benchmarks (e.g. to interrupt a run half-way).
	AfterRenewal func(subscriptionID string)
	// AfterCharge, when set, is called after each gateway charge, before
	// its answer is recorded; an error drops the answer, as a crash there
	// would: a fault-injection hook for tests.
	AfterCharge func(idempotencyKey string) error
}

// Service is the billing shell over PostgreSQL.
type Service struct {
	db       *store.DB // units of work (db.InTx), batches and the owner's session
	q        *billdb.Queries
	clock    Clock
	settings atomic.Pointer[Settings]
	gateways map[string]Gateway
	lines    LineSwitch
	log      *slog.Logger
	workers  int
	after    func(string)
	// afterCharge is Options.AfterCharge.
	afterCharge func(string) error
	// owner is the key of the advisory lock HoldOwnership holds (0: none),
	// on ownerConn until HoldOwnership takes that over.
	owner     atomic.Int32
	ownerConn atomic.Pointer[store.Session]
	zones     clock.Zones // accounts' time zones, loaded once each
	m         metrics
}

type metrics struct {
	invoices      *prometheus.CounterVec
	invoicedMinor *prometheus.CounterVec
	creditedMinor *prometheus.CounterVec
	attempts      *prometheus.CounterVec
	subs          *prometheus.GaugeVec
	mrr           *prometheus.GaugeVec
	renewals      *prometheus.CounterVec
	refunds       prometheus.Counter
}

// NewService builds the shell and registers its metrics on o.Registry.
func NewService(o Options) (*Service, error) {
	if o.DB == nil || o.Clock == nil {
		return nil, errors.New("billing: database and clock are required")
	}
	if err := o.Settings.Validate(); err != nil {
		return nil, err
	}
	s := &Service{db: o.DB, q: billdb.New(o.DB), clock: o.Clock, gateways: o.Gateways, lines: o.Lines,
		log: o.Logger, workers: o.Workers, after: o.AfterRenewal, afterCharge: o.AfterCharge}
	if s.gateways == nil {
		// The sandbox keeps its ledger in the database, as a remote
		// gateway would keep it on its side: it survives a crash of pbxd.
		s.gateways = map[string]Gateway{Manual{}.Name(): Manual{}, Sandbox{}.Name(): Sandbox{Ledger: PGSandboxLedger(o.DB)}}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.workers <= 0 {
		s.workers = 8
	}
	st := o.Settings
	s.settings.Store(&st)
	reg := o.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	f := promauto.With(reg)
	s.m = metrics{
		invoices:      f.NewCounterVec(prometheus.CounterOpts{Name: "pbxd_billing_invoices_total", Help: "Invoices and credit notes issued, by currency and kind."}, []string{"currency", "kind"}),
		invoicedMinor: f.NewCounterVec(prometheus.CounterOpts{Name: "pbxd_billing_invoiced_minor_total", Help: "Gross amount invoiced (after tax), in minor units, by currency."}, []string{"currency"}),
		creditedMinor: f.NewCounterVec(prometheus.CounterOpts{Name: "pbxd_billing_credited_minor_total", Help: "Gross amount of credit notes issued (after tax, as a positive number), in minor units, by currency."}, []string{"currency"}),
		attempts:      f.NewCounterVec(prometheus.CounterOpts{Name: "pbxd_billing_payment_attempts_total", Help: "Payment attempts by outcome (approved, declined, error, pending, manual), counted when the outcome is committed to the database."}, []string{"outcome"}),
		refunds:       f.NewCounter(prometheus.CounterOpts{Name: "pbxd_billing_refunds_total", Help: "Approved payments refunded because what they paid could not be applied."}),
		subs:          f.NewGaugeVec(prometheus.GaugeOpts{Name: "pbxd_billing_subscriptions", Help: "Subscriptions with seats, by status (trial, active, inactive)."}, []string{"status"}),
		mrr:           f.NewGaugeVec(prometheus.GaugeOpts{Name: "pbxd_billing_mrr_minor", Help: "Monthly recurring revenue of active subscriptions, net, in minor units (annual ones count 1/12)."}, []string{"currency"}),
		renewals:      f.NewCounterVec(prometheus.CounterOpts{Name: "pbxd_billing_renewals_total", Help: "Subscription renewals by result (invoiced, zero_quantity, trial_converted, already_billed, error)."}, []string{"result"}),
	}
	for _, o := range []string{"approved", "declined", "error", "pending", "manual"} {
		s.m.attempts.WithLabelValues(o)
	}
	for _, r := range []string{"invoiced", "zero_quantity", "trial_converted", "already_billed", "error"} {
		s.m.renewals.WithLabelValues(r)
	}
	return s, nil
}

// InitCurrencyMetrics creates the per-currency counters at 0 for the given
// currencies (the catalogue's), so their first invoice is an increase
// Prometheus can see rather than a new series.
func (s *Service) InitCurrencyMetrics(currencies []string) {
	for _, c := range currencies {
		for _, k := range []string{"invoice", "credit_note"} {
			s.m.invoices.WithLabelValues(c, k)
		}
		s.m.invoicedMinor.WithLabelValues(c)
		s.m.creditedMinor.WithLabelValues(c)
	}
}

// SetSettings swaps in reloaded settings atomically.
func (s *Service) SetSettings(st Settings) error {
	if err := st.Validate(); err != nil {
		return err
	}
	s.settings.Store(&st)
	return nil
}

// Settings returns the settings in force.
func (s *Service) Settings() Settings { return *s.settings.Load() }

func (s *Service) cfg() Settings { return *s.settings.Load() }

func (s *Service) switchLines(ctx context.Context, tx *store.Tx, subID string, suspended bool, reason string) error {
	if s.lines == nil {
		return errors.New("billing: no line switch configured")
	}
	if _, err := s.lines.SetSubscriptionLines(ctx, tx, subID, suspended, reason); err != nil {
		return fmt.Errorf("switch lines of subscription %s: %w", subID, err)
	}
	return nil
}

// Run refreshes the slow gauges (subscriptions by status, MRR) until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	for {
		if err := s.RefreshGauges(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("refresh billing gauges", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// RefreshGauges recomputes pbxd_billing_subscriptions and pbxd_billing_mrr_minor.
func (s *Service) RefreshGauges(ctx context.Context) error {
	counts, err := s.q.SubscriptionCounts(ctx)
	if err != nil {
		return fmt.Errorf("count subscriptions: %w", err)
	}
	byStatus := make(map[SubscriptionStatus]float64, len(SubscriptionStatuses))
	for _, st := range SubscriptionStatuses {
		byStatus[st] = 0
	}
	for _, c := range counts {
		byStatus[SubscriptionStatus(c.Status)] = float64(c.Count)
	}
	for st, n := range byStatus {
		s.m.subs.WithLabelValues(string(st)).Set(n)
	}
	// Integer sums per cycle, one division at the end: no float rounding
	// before the gauge itself.
	sums, err := s.q.RecurringRevenue(ctx)
	if err != nil {
		return fmt.Errorf("compute mrr: %w", err)
	}
	mrr := map[string]int64{}
	for _, r := range sums {
		months := Cycle(r.Cycle).Months()
		if months == 0 {
			continue
		}
		mrr[r.Currency] += MulDivRound(r.TotalMinor, 1, int64(months))
	}
	for cur, v := range mrr {
		s.m.mrr.WithLabelValues(cur).Set(float64(v))
	}
	return nil
}

// Account is what billing needs to know of a customer account.
type Account struct {
	ID       string
	Name     string
	Currency Currency
	Location *time.Location
	// VAT is the account's VAT rate.
	VAT BasisPoints
	// PaymentMode is "card" (changes charged at once) or "invoice" (they wait
	// for the next bill).
	PaymentMode    string
	BillingAddress map[string]string
}

// Payment modes of accounts.
const (
	ModeCard    = "card"
	ModeInvoice = "invoice"
)

// Customer is the invoice identity of the account.
func (a Account) Customer() Customer {
	c := Customer{Name: a.Name}
	if n := a.BillingAddress["name"]; n != "" {
		c.Name = n
	}
	c.VATID = a.BillingAddress["vat_id"]
	for _, k := range []string{"line1", "line2", "line3"} {
		if v := a.BillingAddress[k]; v != "" {
			c.Address = append(c.Address, v)
		}
	}
	city := a.BillingAddress["postal_code"]
	if city == "" {
		city = a.BillingAddress["postcode"]
	}
	if v := a.BillingAddress["city"]; v != "" {
		if city != "" {
			city += " "
		}
		city += v
	}
	if city != "" {
		c.Address = append(c.Address, city)
	}
	if v := a.BillingAddress["country"]; v != "" {
		c.Address = append(c.Address, countryName(v))
	}
	return c
}

// countryName spells an ISO 3166 country code out in English ("FR" →
// "France"), as an invoice address reads; anything else is kept as given.
func countryName(code string) string {
	if len(code) != 2 {
		return code
	}
	r, err := language.ParseRegion(code)
	if err != nil || !r.IsCountry() {
		return code
	}
	if name := display.English.Regions().Name(r); name != "" {
		return name
	}
	return code
}

// Package is a catalog entry as billing prices it.
type Package struct {
	Code string
	Name string
	// PriceMinor is the price per line per month, before any discount.
	PriceMinor int64
	Currency   Currency
	// Discounts lists the cycles offered with their discount.
	Discounts map[Cycle]BasisPoints
	TrialDays int
	Proration ProrationSettings
	Retired   bool
}

// PeriodPrice is the unit price of one line for a whole period of cycle c:
// the monthly price for monthly, round(12 × monthly × (1 − discount)) for
// annual (see AnnualPrice), with a discount on a monthly cycle applied the
// same way.
func PeriodPrice(p Package, c Cycle) (int64, error) {
	d := p.Discounts[c]
	switch c {
	case Annual:
		annual, _, err := AnnualPrice(p.PriceMinor, d)
		return annual, err
	case Monthly:
		return MulDivRoundChecked(p.PriceMinor, int64(MaxBasisPoints-d), int64(MaxBasisPoints))
	case Quarterly, Semiannual:
		price, _, err := CyclePrice(p.PriceMinor, c, d)
		return price, err
	}
	return 0, fmt.Errorf("%w: %q", ErrInvalidCycle, string(c))
}

// location is the time zone name, UTC when unknown, loaded once.
func (s *Service) location(name string) *time.Location { return s.zones.Named(name) }

// catalog reads the packages table: the current prices renewals bill.
func catalog(ctx context.Context, db billdb.DBTX) (map[string]Package, error) {
	rows, err := billdb.New(db).Catalog(ctx)
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	out := make(map[string]Package, len(rows))
	for _, r := range rows {
		p := Package{Code: r.Code, Name: r.Name, PriceMinor: r.PriceMinor, Currency: Currency(r.Currency), TrialDays: int(r.TrialDays),
			Proration: ProrationSettings{FixedMonthDays: r.FixedMonthDays, ExcludeOrderDay: r.ExcludeOrderDay}, Retired: r.Retired}
		var cs []struct {
			Cycle      string `json:"cycle"`
			DiscountBP int64  `json:"discount_bp"`
		}
		if err := json.Unmarshal(r.Cycles, &cs); err != nil {
			return nil, fmt.Errorf("package %s cycles: %w", p.Code, err)
		}
		p.Discounts = map[Cycle]BasisPoints{}
		for _, c := range cs {
			p.Discounts[Cycle(c.Cycle)] = BasisPoints(c.DiscountBP)
		}
		out[p.Code] = p
	}
	return out, nil
}

// uuidNS derives invoice ids from what they bill, so a retried transaction
// reuses the same id and the gateway's idempotency key: a charge approved
// before a crash is never taken twice.
var uuidNS = uuid.MustParse("6f1d7c52-4f0e-4a55-9c43-2b0f4d1a9e77")

func derivedID(parts ...string) string {
	name := ""
	for _, p := range parts {
		name += p + "\x00"
	}
	return uuid.NewSHA1(uuidNS, []byte(name)).String()
}

// audit records a billing transition in the caller's transaction.
func audit(ctx context.Context, tx store.DBTX, at time.Time, actor, accountID, action, object string, details map[string]any) error {
	return store.Audit(ctx, tx, at, actor, accountID, action, object, details)
}
