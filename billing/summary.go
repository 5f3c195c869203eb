package billing

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/pbxd/pbxd/internal/fault"
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
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var acct Account
		var cur, tz string
		var vat int64
		err := tx.QueryRow(ctx, `SELECT id, name, currency, timezone, vat_bp, payment_mode, billing_address FROM accounts WHERE id = $1`, accountID).
			Scan(&acct.ID, &acct.Name, &cur, &tz, &vat, &acct.PaymentMode, &acct.BillingAddress)
		if errors.Is(err, pgx.ErrNoRows) {
			return fault.New(fault.NotFound, "", "account not found")
		}
		if err != nil {
			return fmt.Errorf("read account: %w", err)
		}
		acct.Currency, acct.Location, acct.VAT = Currency(cur), s.location(tz), BasisPoints(vat)
		sum = Summary{AccountID: acct.ID, Currency: acct.Currency, PaymentMode: acct.PaymentMode, Plans: []PlanSummary{}}
		cat, err := catalog(ctx, tx)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT s.id, s.package_code, s.cycle, s.quantity, s.status, s.period_price_minor, s.period_start, s.period_end,
			s.next_payment_at, s.trial_end,
			(SELECT count(*) FROM lines l WHERE l.account_id = s.account_id AND l.package_code = s.package_code AND l.state <> 'deleted')
			FROM subscriptions s JOIN packages p ON p.code = s.package_code
			WHERE s.account_id = $1 ORDER BY p.position, s.package_code`, accountID)
		if err != nil {
			return fmt.Errorf("read subscriptions: %w", err)
		}
		type subInfo struct {
			row  subRow
			next time.Time
		}
		var subs []subInfo
		for rows.Next() {
			var r subRow
			var cycle string
			var ps PlanSummary
			var price int64
			if err := rows.Scan(&r.id, &r.pkg, &cycle, &r.quantity, &r.status, &price, &r.periodStart, &r.periodEnd,
				&ps.NextPaymentAt, &r.trialEnd, &ps.Seats.Used); err != nil {
				rows.Close()
				return fmt.Errorf("read subscriptions: %w", err)
			}
			r.cycle, r.acct = Cycle(cycle), acct
			pkg := cat[r.pkg]
			ps.Package, ps.Name, ps.Cycle, ps.Status = r.pkg, pkg.Name, r.cycle, r.status
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
			if r.quantity > 0 && r.status != "inactive" {
				subs = append(subs, subInfo{r, ps.NextPaymentAt})
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read subscriptions: %w", err)
		}
		if err := tx.QueryRow(ctx, `SELECT coalesce(sum(amount_minor) FILTER (WHERE amount_minor < 0), 0)::bigint,
			coalesce(sum(amount_minor) FILTER (WHERE amount_minor > 0), 0)::bigint
			FROM pending_items WHERE account_id = $1 AND invoice_id IS NULL`, accountID).Scan(&sum.CreditBalanceMinor, &sum.PendingChargesMinor); err != nil {
			return fmt.Errorf("read pending items: %w", err)
		}
		sum.CreditBalanceMinor = -sum.CreditBalanceMinor
		if err := tx.QueryRow(ctx, `SELECT count(*), coalesce(sum(gross_minor), 0)::bigint FROM invoices WHERE account_id = $1 AND status = 'open'`, accountID).
			Scan(&sum.OpenInvoices, &sum.OpenGrossMinor); err != nil {
			return fmt.Errorf("read open invoices: %w", err)
		}
		pm, err := defaultMethod(ctx, tx, accountID)
		if err != nil {
			return err
		}
		if pm != nil {
			var v PaymentMethod
			if err := tx.QueryRow(ctx, `SELECT id, gateway, label, is_default, created_at FROM payment_methods WHERE id = $1`, pm.ID).
				Scan(&v.ID, &v.Gateway, &v.Label, &v.Default, &v.CreatedAt); err != nil {
				return fmt.Errorf("read payment method: %w", err)
			}
			sum.DefaultPaymentMethod = &v
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
