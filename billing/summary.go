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
		q := billdb.New(tx)
		ar, err := q.SummaryAccount(ctx, accountID)
		if errors.Is(err, store.ErrNotFound) {
			return fault.New(fault.NotFound, "", "account not found")
		}
		if err != nil {
			return fmt.Errorf("read account: %w", err)
		}
		acct := Account{ID: ar.ID, Name: ar.Name, Currency: Currency(ar.Currency), Location: s.location(ar.Timezone), VAT: BasisPoints(ar.VatBp),
			PaymentMode: ar.PaymentMode}
		if err := json.Unmarshal(ar.BillingAddress, &acct.BillingAddress); err != nil {
			return fmt.Errorf("read account: billing address: %w", err)
		}
		sum = Summary{AccountID: acct.ID, Currency: acct.Currency, PaymentMode: acct.PaymentMode, Plans: []PlanSummary{}}
		cat, err := catalog(ctx, tx)
		if err != nil {
			return err
		}
		rows, err := q.SummarySubscriptions(ctx, accountID)
		if err != nil {
			return fmt.Errorf("read subscriptions: %w", err)
		}
		type subInfo struct {
			row  subRow
			next time.Time
		}
		var subs []subInfo
		for _, sr := range rows {
			r := subRow{id: sr.ID, pkg: sr.PackageCode, cycle: Cycle(sr.Cycle), quantity: int64(sr.Quantity), status: SubscriptionStatus(sr.Status),
				periodStart: sr.PeriodStart, periodEnd: sr.PeriodEnd, trialEnd: sr.TrialEnd, acct: acct}
			price := sr.PeriodPriceMinor
			ps := PlanSummary{NextPaymentAt: sr.NextPaymentAt}
			ps.Seats.Used = sr.Used
			pkg := cat[r.pkg]
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
			ps.Description = describePlan(pkg.Name, acct.Currency, r.cycle, ps.PricePerLinePerMonthMinor, r.quantity, ps.MonthlyTotalMinor)
			sum.Plans = append(sum.Plans, ps)
			if r.quantity > 0 && r.status != SubscriptionInactive {
				subs = append(subs, subInfo{r, ps.NextPaymentAt})
			}
		}
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
		pm, err := defaultMethod(ctx, tx, accountID)
		if err != nil {
			return err
		}
		if pm != nil {
			v, err := q.PaymentMethodView(ctx, pm.ID)
			if err != nil {
				return fmt.Errorf("read payment method: %w", err)
			}
			sum.DefaultPaymentMethod = &PaymentMethod{ID: v.ID, Gateway: v.Gateway, Label: v.Label, Default: v.IsDefault, CreatedAt: v.CreatedAt}
		}
		// The next bill: every subscription renewing at the earliest date,
		// priced as the renewal will price it, plus what is pending.
		var at time.Time
		for _, si := range subs {
			if at.IsZero() || si.next.Before(at) {
				at = si.next
			}
		}
		if at.IsZero() {
			return nil
		}
		var lines []TaxLine
		var net int64
		for _, si := range subs {
			if !si.next.Equal(at) {
				continue
			}
			p, err := planRenewal(si.row, cat[si.row.pkg], at)
			if err != nil {
				return err
			}
			lines = append(lines, TaxLine{NetMinor: p.line.AmountMinor, Rate: acct.VAT})
			net += p.line.AmountMinor
		}
		net += sum.PendingChargesMinor
		credit := min(sum.CreditBalanceMinor, max(net, 0))
		lines = append(lines, TaxLine{NetMinor: sum.PendingChargesMinor - credit, Rate: acct.VAT})
		t, err := ComputeTotals(lines)
		if err != nil {
			return fmt.Errorf("next payment: %w", err)
		}
		sum.NextPayment = &NextPayment{At: at, NetMinor: t.NetMinor, TaxMinor: t.TaxMinor, GrossMinor: t.GrossMinor, Currency: acct.Currency}
		return nil
	})
	return sum, err
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
