package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/billdb"
)

// Summary is an account's billing overview (GET /v1/accounts/{id}/billing).
type Summary struct {
	AccountID   string        `json:"account_id"`
	Currency    Currency      `json:"currency"`
	PaymentMode string        `json:"payment_mode"`
	Plans       []PlanSummary `json:"plans"`
	// NextPayment is the next renewal (or trial conversion) bill, at the
	// current catalog price and with pending charges and credits.
	NextPayment          *NextPayment   `json:"next_payment"`
	DefaultPaymentMethod *PaymentMethod `json:"default_payment_method"`
	// CreditBalanceMinor is the credit waiting for the next bills.
	CreditBalanceMinor int64 `json:"credit_balance_minor"`
	// PendingChargesMinor are charges waiting for the next bill (invoice accounts).
	PendingChargesMinor int64 `json:"pending_charges_minor"`
	OpenInvoices        int   `json:"open_invoices"`
	OpenGrossMinor      int64 `json:"open_gross_minor"`
}

// Seats are prepaid lines: used ones have a line, available ones do not.
type Seats struct {
	Prepaid   int64 `json:"prepaid"`
	Used      int64 `json:"used"`
	Available int64 `json:"available"`
}

// PlanSummary is one subscription in the overview.
type PlanSummary struct {
	Package         string `json:"package"`
	Name            string `json:"name"`
	Cycle           Cycle  `json:"cycle"`
	Status          string `json:"status"`
	DiscountPercent string `json:"discount_percent"`
	Seats           Seats  `json:"seats"`
	// PricePerLinePerPeriodMinor is the unit price of the current period
	// (discounted); PricePerLinePerMonthMinor its per-month figure, for
	// display (annual / 12, rounded).
	PricePerLinePerPeriodMinor int64 `json:"price_per_line_per_period_minor"`
	PricePerLinePerMonthMinor  int64 `json:"price_per_line_per_month_minor"`
	PeriodTotalMinor           int64 `json:"period_total_minor"`
	MonthlyTotalMinor          int64 `json:"monthly_total_minor"`
	// Description reads "France fixed & mobile, 42.42 per line per month,
	// billed annually; 3 lines: 127.25 per month".
	Description        string     `json:"description"`
	CurrentPeriodStart time.Time  `json:"current_period_start"`
	CurrentPeriodEnd   time.Time  `json:"current_period_end"`
	NextPaymentAt      time.Time  `json:"next_payment_at"`
	TrialEnd           *time.Time `json:"trial_end,omitempty"`
}

// NextPayment is when and how much the next bill will be.
type NextPayment struct {
	At         time.Time `json:"at"`
	NetMinor   int64     `json:"net_minor"`
	TaxMinor   int64     `json:"tax_minor"`
	GrossMinor int64     `json:"gross_minor"`
	Currency   Currency  `json:"currency"`
}

// Summary returns the account's billing overview.
func (s *Service) Summary(ctx context.Context, accountID string) (Summary, error) {
	if uuid.Validate(accountID) != nil {
		return Summary{}, fault.New(fault.NotFound, "", "account not found")
	}
	var sum Summary
	err := s.db.InSnapshot(ctx, func(tx *store.Tx) error {
		var err error
		sum, err = s.summarize(ctx, tx, accountID)
		return err
	})
	return sum, err
}

// summarize reads the overview in tx, one snapshot: the account, its
// plans, its balances, its default payment method and its next bill.
func (s *Service) summarize(ctx context.Context, tx *store.Tx, accountID string) (Summary, error) {
	q := billdb.New(tx)
	acct, err := s.summaryAccount(ctx, q, accountID)
	if err != nil {
		return Summary{}, err
	}
	sum := Summary{AccountID: acct.ID, Currency: acct.Currency, PaymentMode: acct.PaymentMode}
	cat, err := catalog(ctx, tx)
	if err != nil {
		return Summary{}, err
	}
	rows, err := q.SummarySubscriptions(ctx, accountID)
	if err != nil {
		return Summary{}, fmt.Errorf("read subscriptions: %w", err)
	}
	plans, renewing := planSummaries(rows, cat, acct)
	sum.Plans = plans
	if err := readBalances(ctx, q, accountID, &sum); err != nil {
		return Summary{}, err
	}
	if sum.DefaultPaymentMethod, err = summaryPaymentMethod(ctx, tx, q, accountID); err != nil {
		return Summary{}, err
	}
	if sum.NextPayment, err = nextPayment(renewing, cat, acct, sum.PendingChargesMinor, sum.CreditBalanceMinor); err != nil {
		return Summary{}, err
	}
	return sum, nil
}

// summaryAccount reads the account the overview is about.
func (s *Service) summaryAccount(ctx context.Context, q *billdb.Queries, accountID string) (Account, error) {
	ar, err := q.SummaryAccount(ctx, accountID)
	if errors.Is(err, store.ErrNotFound) {
		return Account{}, fault.New(fault.NotFound, "", "account not found")
	}
	if err != nil {
		return Account{}, fmt.Errorf("read account: %w", err)
	}
	acct := Account{ID: ar.ID, Name: ar.Name, Currency: Currency(ar.Currency), Location: s.location(ar.Timezone), VAT: BasisPoints(ar.VatBp),
		PaymentMode: ar.PaymentMode}
	if err := json.Unmarshal(ar.BillingAddress, &acct.BillingAddress); err != nil {
		return Account{}, fmt.Errorf("read account: billing address: %w", err)
	}
	return acct, nil
}

// renewingSub is a subscription the next bill may renew, and when it
// renews.
type renewingSub struct {
	row  subRow
	next time.Time
}

// planSummaries describes each subscription (never nil: no plans is an
// empty list) and returns those that renew: with seats and not inactive.
func planSummaries(rows []billdb.SummarySubscriptionsRow, cat map[string]Package, acct Account) ([]PlanSummary, []renewingSub) {
	plans := []PlanSummary{}
	var renewing []renewingSub
	for _, sr := range rows {
		r := subRow{id: sr.ID, pkg: sr.PackageCode, cycle: Cycle(sr.Cycle), quantity: int64(sr.Quantity), status: SubscriptionStatus(sr.Status),
			periodStart: sr.PeriodStart, periodEnd: sr.PeriodEnd, trialEnd: sr.TrialEnd, acct: acct}
		ps := planSummary(r, cat[r.pkg], sr.PeriodPriceMinor, sr.Used, sr.NextPaymentAt)
		plans = append(plans, ps)
		if r.quantity > 0 && r.status != SubscriptionInactive {
			renewing = append(renewing, renewingSub{r, ps.NextPaymentAt})
		}
	}
	return plans, renewing
}

// planSummary is subscription r of package pkg: its seats (used of them
// have a line), its prices (price per line for the current period, per
// month for display) and when it is paid next.
func planSummary(r subRow, pkg Package, price, used int64, next time.Time) PlanSummary {
	ps := PlanSummary{NextPaymentAt: next}
	ps.Seats.Used = used
	ps.Package, ps.Name, ps.Cycle, ps.Status = r.pkg, pkg.Name, r.cycle, string(r.status)
	ps.DiscountPercent = percentString(pkg.Discounts[r.cycle])
	ps.Seats.Prepaid = r.quantity
	ps.Seats.Available = max(0, r.quantity-ps.Seats.Used)
	months := int64(max(1, r.cycle.Months()))
	ps.PricePerLinePerPeriodMinor = price
	ps.PricePerLinePerMonthMinor = MulDivRound(price, 1, months)
	ps.PeriodTotalMinor = price * r.quantity
	ps.MonthlyTotalMinor = MulDivRound(ps.PeriodTotalMinor, 1, months)
	ps.CurrentPeriodStart, ps.CurrentPeriodEnd, ps.TrialEnd = r.periodStart, r.periodEnd, r.trialEnd
	ps.Description = describePlan(pkg.Name, r.acct.Currency, r.cycle, ps.PricePerLinePerMonthMinor, r.quantity, ps.MonthlyTotalMinor)
	return ps
}

// readBalances fills in the account's pending credit and charges and its
// open invoices.
func readBalances(ctx context.Context, q *billdb.Queries, accountID string, sum *Summary) error {
	bal, err := q.PendingBalance(ctx, accountID)
	if err != nil {
		return fmt.Errorf("read pending items: %w", err)
	}
	sum.CreditBalanceMinor, sum.PendingChargesMinor = -bal.Credits, bal.Charges
	open, err := q.OpenInvoiceTotals(ctx, accountID)
	if err != nil {
		return fmt.Errorf("read open invoices: %w", err)
	}
	sum.OpenInvoices, sum.OpenGrossMinor = int(open.N), open.GrossMinor
	return nil
}

// summaryPaymentMethod is the account's default payment method, nil when
// it has none.
func summaryPaymentMethod(ctx context.Context, tx *store.Tx, q *billdb.Queries, accountID string) (*PaymentMethod, error) {
	pm, err := defaultMethod(ctx, tx, accountID)
	if err != nil || pm == nil {
		return nil, err
	}
	v, err := q.PaymentMethodView(ctx, pm.ID)
	if err != nil {
		return nil, fmt.Errorf("read payment method: %w", err)
	}
	return &PaymentMethod{ID: v.ID, Gateway: v.Gateway, Label: v.Label, Default: v.IsDefault, CreatedAt: v.CreatedAt}, nil
}

// nextPayment is the next bill: every subscription renewing at the
// earliest date, priced as the renewal will price it, plus the pending
// charges less the credit that covers them. Nil when nothing renews.
func nextPayment(renewing []renewingSub, cat map[string]Package, acct Account, pendingCharges, credits int64) (*NextPayment, error) {
	var at time.Time
	for _, si := range renewing {
		if at.IsZero() || si.next.Before(at) {
			at = si.next
		}
	}
	if at.IsZero() {
		return nil, nil
	}
	var lines []TaxLine
	var net int64
	for _, si := range renewing {
		if !si.next.Equal(at) {
			continue
		}
		p, err := planRenewal(si.row, cat[si.row.pkg], at)
		if err != nil {
			return nil, err
		}
		lines = append(lines, TaxLine{NetMinor: p.line.AmountMinor, Rate: acct.VAT})
		net += p.line.AmountMinor
	}
	net += pendingCharges
	credit := min(credits, max(net, 0))
	lines = append(lines, TaxLine{NetMinor: pendingCharges - credit, Rate: acct.VAT})
	t, err := ComputeTotals(lines)
	if err != nil {
		return nil, fmt.Errorf("next payment: %w", err)
	}
	return &NextPayment{At: at, NetMinor: t.NetMinor, TaxMinor: t.TaxMinor, GrossMinor: t.GrossMinor, Currency: acct.Currency}, nil
}

func describePlan(name string, cur Currency, c Cycle, perLineMonth, qty, monthly int64) string {
	billed := "billed monthly"
	switch c {
	case Quarterly, Semiannual:
		billed = "billed " + string(c)
	case Annual:
		billed = "billed annually"
	}
	unit := "lines"
	if qty == 1 {
		unit = "line"
	}
	return name + ", " + cur.FormatMinor(perLineMonth) + " per line per month, " + billed + "; " +
		strconv.FormatInt(qty, 10) + " " + unit + ": " + cur.FormatMinor(monthly) + " per month"
}
