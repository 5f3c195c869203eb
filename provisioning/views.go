package provisioning

import (
	"context"
	"time"
)

// Subscription is a subscription as the API shows it.
type Subscription struct {
	ID                 string     `json:"id"`
	Package            string     `json:"package"`
	Quantity           int        `json:"quantity"`
	Used               int        `json:"used"`
	Available          int        `json:"available"`
	Cycle              string     `json:"cycle"`
	Status             string     `json:"status"`
	PeriodPriceMinor   int64      `json:"period_price_minor"`
	PerMonthMinor      int64      `json:"per_month_minor"` // the period price per month, for display
	Currency           string     `json:"currency"`
	CurrentPeriodStart time.Time  `json:"current_period_start"`
	CurrentPeriodEnd   time.Time  `json:"current_period_end"`
	NextPaymentAt      time.Time  `json:"next_payment_at"`
	RegisteredFrom     time.Time  `json:"registered_from"`
	TrialEnd           *time.Time `json:"trial_end,omitempty"`
}

// Subscriptions lists an account's subscriptions with seat usage.
func (s *Service) Subscriptions(ctx context.Context, accountID string) ([]Subscription, error) {
	if _, err := s.Account(ctx, accountID); err != nil {
		return nil, err
	}
	rows, err := s.q.AccountSubscriptions(ctx, accountID)
	if err != nil {
		return nil, err
	}
	out := make([]Subscription, 0, len(rows))
	for _, r := range rows {
		v := Subscription{ID: r.ID, Package: r.PackageCode, Quantity: int(r.Quantity), Used: int(r.Used), Cycle: r.Cycle,
			Status: r.Status, PeriodPriceMinor: r.PeriodPriceMinor, Currency: r.Currency, CurrentPeriodStart: r.PeriodStart,
			CurrentPeriodEnd: r.PeriodEnd, NextPaymentAt: r.NextPaymentAt, RegisteredFrom: r.RegisteredFrom, TrialEnd: r.TrialEnd}
		v.Available = max(0, v.Quantity-v.Used)
		v.PerMonthMinor = perMonth(v.PeriodPriceMinor, v.Cycle)
		out = append(out, v)
	}
	return out, nil
}

// PackageView is one row of the "My packages" page.
type PackageView struct {
	Subscription
	Name       string `json:"name"`
	PriceMinor int64  `json:"price_minor"` // catalog price per line per month
	Lines      []Line `json:"lines"`
	// Scheduled is the decrease waiting for the period end, if any.
	Scheduled *ScheduledChange `json:"scheduled_change,omitempty"`
}

// MyPackages is the "My packages" page: per package the seats, price, cycle,
// status and next payment, with its lines.
func (s *Service) MyPackages(ctx context.Context, accountID string) ([]PackageView, error) {
	subs, err := s.Subscriptions(ctx, accountID)
	if err != nil {
		return nil, err
	}
	lines, err := s.Lines(ctx, accountID)
	if err != nil {
		return nil, err
	}
	pkgs, err := s.Packages(ctx, true)
	if err != nil {
		return nil, err
	}
	byCode := map[string]Package{}
	for _, p := range pkgs {
		byCode[p.Code] = p
	}
	pending, err := s.PendingScheduled(ctx, accountID)
	if err != nil {
		return nil, err
	}
	out := []PackageView{}
	for _, sub := range subs {
		v := PackageView{Subscription: sub, Name: byCode[sub.Package].Name, PriceMinor: byCode[sub.Package].PriceMinor, Lines: []Line{}}
		for i := range pending {
			if pending[i].Package == sub.Package {
				v.Scheduled = &pending[i]
			}
		}
		for _, l := range lines {
			if l.Package == sub.Package {
				v.Lines = append(v.Lines, l)
			}
		}
		out = append(out, v)
	}
	return out, nil
}
