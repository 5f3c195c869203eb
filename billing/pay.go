package billing

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/billdb"
)

// PaymentMethod is a saved payment method as the API shows it. Its gateway
// token is never shown: pbxd stores no card numbers, and a token is as good
// as a card to whoever holds it.
type PaymentMethod struct {
	ID        string    `json:"id"`
	Gateway   string    `json:"gateway"`
	Label     string    `json:"label"`
	Default   bool      `json:"default"`
	CreatedAt time.Time `json:"created_at"`
	// SettledInvoices are the overdue invoices a new default method paid
	// in the request that added it.
	SettledInvoices []string `json:"settled_invoices,omitempty"`
}

// NewPaymentMethod is what adding a payment method takes.
type NewPaymentMethod struct {
	Gateway string
	Token   string
	Label   string
	// Default makes it the method recurring billing charges; an account's
	// first method is the default anyway.
	Default bool
}

func (s *Service) gatewayNames() string {
	names := make([]string, 0, len(s.gateways))
	for n := range s.gateways {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// AddPaymentMethod validates the token with its gateway and saves it.
func (s *Service) AddPaymentMethod(ctx context.Context, actor, accountID string, n NewPaymentMethod) (PaymentMethod, error) {
	gw, ok := s.gateways[n.Gateway]
	if !ok {
		return PaymentMethod{}, fault.New(fault.Invalid, "gateway", "unknown payment gateway %q; use one of %s", n.Gateway, s.gatewayNames())
	}
	if err := ValidateToken(gw, n.Token); err != nil {
		return PaymentMethod{}, fault.New(fault.Invalid, "token", "%v", strings.TrimPrefix(err.Error(), "billing: "))
	}
	if len(n.Label) > 100 {
		return PaymentMethod{}, fault.New(fault.Invalid, "label", "label is at most 100 characters")
	}
	if n.Label == "" {
		n.Label = defaultLabel(n.Gateway, n.Token)
	}
	if uuid.Validate(accountID) != nil {
		return PaymentMethod{}, fault.New(fault.NotFound, "", "account not found")
	}
	now := s.clock.Now()
	pm := PaymentMethod{ID: uuid.NewString(), Gateway: n.Gateway, Label: n.Label, CreatedAt: now}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		q := billdb.New(tx)
		// The account row lock serialises default changes of one account.
		_, err := q.LockAccountID(ctx, accountID)
		if errors.Is(err, store.ErrNotFound) {
			return fault.New(fault.NotFound, "", "account not found")
		}
		if err != nil {
			return fmt.Errorf("lock account: %w", err)
		}
		others, err := q.HasDefaultMethod(ctx, accountID)
		if err != nil {
			return fmt.Errorf("read payment methods: %w", err)
		}
		pm.Default = n.Default || !others
		if pm.Default {
			if err := q.UnsetDefaultMethod(ctx, accountID); err != nil {
				return fmt.Errorf("unset default: %w", err)
			}
			if err := reopenDunning(ctx, tx, accountID, now); err != nil {
				return err
			}
		}
		if err := q.InsertPaymentMethod(ctx, billdb.InsertPaymentMethodParams{ID: pm.ID, AccountID: accountID, Gateway: pm.Gateway,
			Token: n.Token, Label: pm.Label, IsDefault: pm.Default, CreatedAt: now}); err != nil {
			return fmt.Errorf("save payment method: %w", err)
		}
		return audit(ctx, tx, now, actor, accountID, "payment_method.added", pm.ID, map[string]any{"gateway": pm.Gateway, "default": pm.Default})
	})
	if err != nil || !pm.Default {
		return pm, err
	}
	// A new default card is the customer's answer to dunning: charge the
	// overdue invoices now, in this request (each as a durable intent,
	// outside the transaction above), which reactivates what they
	// suspended. What fails stays with the dunning job.
	pm.SettledInvoices, err = s.chargeOverdue(ctx, accountID, now)
	if err != nil {
		s.log.Warn("charging overdue invoices with a new card; the dunning job retries", "account", accountID, "err", err)
	}
	return pm, nil
}

// reopenDunning makes a new default method the customer's answer to
// dunning: the account's open invoices are retried at the next pass, even
// after the last retry.
func reopenDunning(ctx context.Context, tx *store.Tx, accountID string, now time.Time) error {
	if err := billdb.New(tx).ReopenDunning(ctx, billdb.ReopenDunningParams{AccountID: accountID, Now: now}); err != nil {
		return fmt.Errorf("reschedule dunning: %w", err)
	}
	return nil
}

// chargeOverdue charges a card account's open invoices with its default
// method, oldest first, and returns those now paid.
func (s *Service) chargeOverdue(ctx context.Context, accountID string, now time.Time) ([]string, error) {
	ids, err := s.q.OverdueInvoices(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("list overdue invoices: %w", err)
	}
	var paid []string
	var errs []error
	for _, id := range ids {
		if err := s.retry(ctx, id, now); err != nil {
			errs = append(errs, fmt.Errorf("invoice %s: %w", id, err))
			continue
		}
		if status, err := s.q.InvoiceStatus(ctx, id); err == nil && Status(status) == StatusPaid {
			paid = append(paid, id)
		}
	}
	return paid, errors.Join(errs...)
}

func defaultLabel(gateway, token string) string {
	switch gateway {
	case "manual":
		return "Bank transfer"
	case "sandbox":
		return "Sandbox card (" + strings.TrimPrefix(token, "sandbox_") + ")"
	}
	if len(token) > 4 {
		token = token[len(token)-4:]
	}
	return gateway + " …" + token
}

// PaymentMethods lists an account's payment methods, the default first.
func (s *Service) PaymentMethods(ctx context.Context, accountID string) ([]PaymentMethod, error) {
	if err := s.accountExists(ctx, accountID); err != nil {
		return nil, err
	}
	rows, err := s.q.PaymentMethods(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("list payment methods: %w", err)
	}
	out := make([]PaymentMethod, 0, len(rows))
	for _, r := range rows {
		out = append(out, PaymentMethod{ID: r.ID, Gateway: r.Gateway, Label: r.Label, Default: r.IsDefault, CreatedAt: r.CreatedAt})
	}
	return out, nil
}

// DeletePaymentMethod removes a method (kept for the payment history).
// Deleting the default leaves the account without one until another is
// chosen: card renewals then fail into dunning.
func (s *Service) DeletePaymentMethod(ctx context.Context, actor, accountID, id string) error {
	if uuid.Validate(id) != nil || uuid.Validate(accountID) != nil {
		return fault.New(fault.NotFound, "", "payment method not found")
	}
	now := s.clock.Now()
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		n, err := billdb.New(tx).DeletePaymentMethod(ctx, billdb.DeletePaymentMethodParams{ID: id, AccountID: accountID, DeletedAt: now})
		if err != nil {
			return fmt.Errorf("delete payment method: %w", err)
		}
		if n == 0 {
			return fault.New(fault.NotFound, "", "payment method not found")
		}
		return audit(ctx, tx, now, actor, accountID, "payment_method.deleted", id, nil)
	})
}

// RunDunning charges what is due: open card invoices never attempted (a
// renewal interrupted between issue and charge) and dunning retries whose
// time has come. After the last failed retry the invoice's subscriptions
// become inactive and their lines suspended; a successful retry reactivates
// them. Each invoice is its own transaction.
func (s *Service) RunDunning(ctx context.Context, now time.Time) error {
	ids, err := s.q.DuePayments(ctx, now)
	if err != nil {
		return fmt.Errorf("list due payments: %w", err)
	}
	var errs []error
	for _, id := range ids {
		if err := s.retry(ctx, id, now); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			errs = append(errs, fmt.Errorf("invoice %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// retry charges one open invoice as a durable intent: the attempt is
// committed with the invoice locked, the gateway called after commit, the
// answer recorded (with its dunning step) in a transaction of its own.
func (s *Service) retry(ctx context.Context, invoiceID string, now time.Time) error {
	var a *attempt
	var noMethod bool
	var accountID string
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := store.CheckFence(ctx, tx); err != nil { // the job's leader only
			return err
		}
		q := billdb.New(tx)
		inv, err := q.LockInvoiceForRetry(ctx, invoiceID)
		if errors.Is(err, store.ErrNotFound) {
			return nil // being handled elsewhere
		}
		if err != nil {
			return fmt.Errorf("lock invoice: %w", err)
		}
		accountID = inv.AccountID
		if inv.InFlight {
			return nil // a charge whose answer is not recorded yet: Recover settles it
		}
		if Status(inv.Status) != StatusOpen || (inv.Exhausted != nil && *inv.Exhausted) {
			return q.EndDunning(ctx, invoiceID)
		}
		pm, err := defaultMethod(ctx, tx, accountID)
		if err != nil {
			return err
		}
		if pm == nil {
			noMethod = true
			if err := insertAttempt(ctx, tx, invoiceID, "", now, inv.GrossMinor, AttemptDeclined, "", "no default payment method"); err != nil {
				return err
			}
			return s.afterFailure(ctx, tx, accountID, invoiceID, "no default payment method", now)
		}
		n, err := q.CountAttempts(ctx, invoiceID)
		if err != nil {
			return fmt.Errorf("count attempts: %w", err)
		}
		a = &attempt{key: "invoice:" + invoiceID + ":" + strconv.FormatInt(n+1, 10), accountID: accountID, invoiceID: invoiceID, method: pm,
			amount: Money{Minor: inv.GrossMinor, Currency: Currency(inv.Currency)}}
		return s.beginAttempt(ctx, tx, a, now)
	})
	if err != nil {
		return err
	}
	if noMethod {
		s.m.attempts.WithLabelValues(string(AttemptDeclined)).Inc()
	}
	if a == nil {
		return nil
	}
	res, outcome, err := s.callGateway(ctx, a)
	if outcome == "" {
		return err
	}
	_, err = s.recordOutcomes(ctx, []decided{{a: a, res: res, outcome: outcome}}, now)
	return err
}

// setSubscriptions suspends (inactive, lines suspended) or reactivates the
// subscriptions an invoice renewed.
func (s *Service) setSubscriptions(ctx context.Context, tx *store.Tx, accountID, invoiceID string, suspend bool, now time.Time, actor string) error {
	from, to, action, reason := SubscriptionActive, SubscriptionInactive, "subscription.inactive", "unpaid invoice"
	if !suspend {
		from, to, action, reason = SubscriptionInactive, SubscriptionActive, "subscription.reactivated", "invoice paid"
	}
	subs, err := billdb.New(tx).SetRenewedSubscriptionsStatus(ctx, billdb.SetRenewedSubscriptionsStatusParams{
		InvoiceID: invoiceID, FromStatus: string(from), ToStatus: string(to)})
	if err != nil {
		return fmt.Errorf("set subscriptions %s: %w", to, err)
	}
	for _, sub := range subs {
		if err := s.switchLines(ctx, tx, sub, suspend, reason+" "+invoiceID); err != nil {
			return err
		}
		if err := audit(ctx, tx, now, actor, accountID, action, sub, map[string]any{"invoice": invoiceID}); err != nil {
			return err
		}
	}
	return nil
}

// settle marks an open invoice paid, ends its dunning and reactivates what
// it suspended.
func (s *Service) settle(ctx context.Context, tx *store.Tx, accountID, invoiceID, ref string, now time.Time, actor string) error {
	q := billdb.New(tx)
	n, err := q.MarkInvoicePaid(ctx, billdb.MarkInvoicePaidParams{ID: invoiceID, PaymentRef: ref, PaidAt: now})
	if err != nil {
		return fmt.Errorf("mark invoice paid: %w", err)
	}
	if n == 0 {
		return fault.New(fault.Conflict, "", "invoice is not open")
	}
	if err := q.EndDunning(ctx, invoiceID); err != nil {
		return fmt.Errorf("end dunning: %w", err)
	}
	if err := audit(ctx, tx, now, actor, accountID, "invoice.paid", invoiceID, map[string]any{"reference": ref}); err != nil {
		return err
	}
	return s.setSubscriptions(ctx, tx, accountID, invoiceID, false, now, actor)
}

// MarkPaid records an out-of-band payment (bank transfer) of an open
// invoice, by the operator, and reactivates what its non-payment suspended.
func (s *Service) MarkPaid(ctx context.Context, actor, invoiceID, reference string) (StoredInvoice, error) {
	if uuid.Validate(invoiceID) != nil {
		return StoredInvoice{}, errNoInvoice
	}
	if len(reference) > 200 {
		return StoredInvoice{}, fault.New(fault.Invalid, "reference", "reference is at most 200 characters")
	}
	now := s.clock.Now()
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		q := billdb.New(tx)
		inv, err := q.LockInvoice(ctx, invoiceID)
		if errors.Is(err, store.ErrNotFound) {
			return errNoInvoice
		}
		if err != nil {
			return fmt.Errorf("lock invoice: %w", err)
		}
		accountID, gross := inv.AccountID, inv.GrossMinor
		if Status(inv.Status) != StatusOpen {
			return fault.New(fault.Conflict, "", "invoice is %s; only open invoices can be marked paid", inv.Status)
		}
		// A card charge whose answer is not recorded yet may have paid it:
		// marking it paid too could take the money twice.
		inFlight, err := q.PaymentInFlight(ctx, invoiceID)
		if err != nil {
			return fmt.Errorf("read payment attempts: %w", err)
		}
		if inFlight {
			return fault.New(fault.Conflict, "", "a card payment of this invoice is in progress; try again in a few minutes")
		}
		ref := reference
		if ref == "" {
			ref = "manual"
		}
		if err := insertAttempt(ctx, tx, invoiceID, "", now, gross, AttemptManual, ref, "marked paid by "+actor); err != nil {
			return err
		}
		return s.settle(ctx, tx, accountID, invoiceID, ref, now, actor)
	})
	if err != nil {
		return StoredInvoice{}, err
	}
	s.m.attempts.WithLabelValues(string(AttemptManual)).Inc()
	return s.Invoice(ctx, invoiceID, "")
}
