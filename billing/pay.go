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
	"github.com/jackc/pgx/v5"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
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
	SettledInvoices []string `json:"settled_invoices,omitempty" db:"-"`
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
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The account row lock serialises default changes of one account.
		var id string
		err := tx.QueryRow(ctx, `SELECT id FROM accounts WHERE id = $1 FOR NO KEY UPDATE`, accountID).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return fault.New(fault.NotFound, "", "account not found")
		}
		if err != nil {
			return fmt.Errorf("lock account: %w", err)
		}
		var others bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM payment_methods WHERE account_id = $1 AND is_default AND deleted_at IS NULL)`, accountID).Scan(&others); err != nil {
			return fmt.Errorf("read payment methods: %w", err)
		}
		pm.Default = n.Default || !others
		if pm.Default {
			if _, err := tx.Exec(ctx, `UPDATE payment_methods SET is_default = false WHERE account_id = $1 AND is_default`, accountID); err != nil {
				return fmt.Errorf("unset default: %w", err)
			}
			if err := reopenDunning(ctx, tx, accountID, now); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO payment_methods (id, account_id, gateway, token, label, is_default, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, pm.ID, accountID, pm.Gateway, n.Token, pm.Label, pm.Default, now); err != nil {
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
func reopenDunning(ctx context.Context, tx pgx.Tx, accountID string, now time.Time) error {
	if _, err := tx.Exec(ctx, `UPDATE dunning d SET next_retry_at = $2, exhausted = false
		FROM invoices i WHERE i.id = d.invoice_id AND i.account_id = $1 AND i.status = 'open'`, accountID, now); err != nil {
		return fmt.Errorf("reschedule dunning: %w", err)
	}
	return nil
}

// chargeOverdue charges a card account's open invoices with its default
// method, oldest first, and returns those now paid.
func (s *Service) chargeOverdue(ctx context.Context, accountID string, now time.Time) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT i.id::text FROM invoices i JOIN accounts a ON a.id = i.account_id
		WHERE i.account_id = $1 AND a.payment_mode = 'card' AND i.status = 'open' AND i.kind = 'invoice' AND i.gross_minor > 0
		ORDER BY i.issued_at, i.number`, accountID)
	if err != nil {
		return nil, fmt.Errorf("list overdue invoices: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
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
		var status string
		if err := s.pool.QueryRow(ctx, `SELECT status FROM invoices WHERE id = $1`, id).Scan(&status); err == nil && status == string(StatusPaid) {
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
	rows, err := s.pool.Query(ctx, `SELECT id, gateway, label, is_default, created_at FROM payment_methods
		WHERE account_id = $1 AND deleted_at IS NULL ORDER BY is_default DESC, created_at, id`, accountID)
	if err != nil {
		return nil, fmt.Errorf("list payment methods: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[PaymentMethod])
	if err != nil {
		return nil, fmt.Errorf("list payment methods: %w", err)
	}
	if out == nil {
		out = []PaymentMethod{}
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
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE payment_methods SET deleted_at = $3, is_default = false
			WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL`, id, accountID, now)
		if err != nil {
			return fmt.Errorf("delete payment method: %w", err)
		}
		if tag.RowsAffected() == 0 {
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
	rows, err := s.pool.Query(ctx, `SELECT i.id FROM invoices i JOIN accounts a ON a.id = i.account_id
		WHERE i.status = 'open' AND i.kind = 'invoice' AND a.payment_mode = 'card' AND i.gross_minor > 0
		  AND NOT EXISTS (SELECT 1 FROM payment_attempts p WHERE p.invoice_id = i.id)
		  AND NOT EXISTS (SELECT 1 FROM dunning d WHERE d.invoice_id = i.id)
		UNION
		SELECT invoice_id FROM dunning WHERE NOT exhausted AND next_retry_at <= $1`, now)
	if err != nil {
		return fmt.Errorf("list due payments: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
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
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := store.CheckFence(ctx, tx); err != nil { // the job's leader only
			return err
		}
		var status, cur string
		var gross int64
		var exhausted *bool
		var inFlight bool
		err := tx.QueryRow(ctx, `SELECT i.account_id, i.status, i.currency, i.gross_minor, d.exhausted,
				EXISTS (SELECT 1 FROM payment_attempts p WHERE p.invoice_id = i.id AND p.outcome = 'unknown')
			FROM invoices i LEFT JOIN dunning d ON d.invoice_id = i.id WHERE i.id = $1 FOR UPDATE OF i SKIP LOCKED`, invoiceID).
			Scan(&accountID, &status, &cur, &gross, &exhausted, &inFlight)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // being handled elsewhere
		}
		if err != nil {
			return fmt.Errorf("lock invoice: %w", err)
		}
		if inFlight {
			return nil // a charge whose answer is not recorded yet: Recover settles it
		}
		if status != string(StatusOpen) || (exhausted != nil && *exhausted) {
			_, err := tx.Exec(ctx, `UPDATE dunning SET next_retry_at = NULL WHERE invoice_id = $1`, invoiceID)
			return err
		}
		pm, err := defaultMethod(ctx, tx, accountID)
		if err != nil {
			return err
		}
		if pm == nil {
			noMethod = true
			if err := insertAttempt(ctx, tx, invoiceID, "", now, gross, "declined", "", "no default payment method"); err != nil {
				return err
			}
			return s.afterFailure(ctx, store.Wrap(tx), accountID, invoiceID, "no default payment method", now)
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM payment_attempts WHERE invoice_id = $1`, invoiceID).Scan(&n); err != nil {
			return fmt.Errorf("count attempts: %w", err)
		}
		a = &attempt{key: "invoice:" + invoiceID + ":" + strconv.Itoa(n+1), accountID: accountID, invoiceID: invoiceID, method: pm,
			amount: Money{Minor: gross, Currency: Currency(cur)}}
		return s.beginAttempt(ctx, store.Wrap(tx), a, now)
	})
	if err != nil {
		return err
	}
	if noMethod {
		s.m.attempts.WithLabelValues("declined").Inc()
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
	from, to, action, reason := "active", "inactive", "subscription.inactive", "unpaid invoice"
	if !suspend {
		from, to, action, reason = "inactive", "active", "subscription.reactivated", "invoice paid"
	}
	rows, err := tx.Query(ctx, `UPDATE subscriptions s SET status = $3, version = version + 1
		FROM renewals r WHERE r.invoice_id = $1 AND s.id = r.subscription_id AND s.status = $2 RETURNING s.id`, invoiceID, from, to)
	if err != nil {
		return fmt.Errorf("set subscriptions %s: %w", to, err)
	}
	subs, err := pgx.CollectRows(rows, pgx.RowTo[string])
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
func (s *Service) settle(ctx context.Context, tx pgx.Tx, accountID, invoiceID, ref string, now time.Time, actor string) error {
	tag, err := tx.Exec(ctx, `UPDATE invoices SET status = 'paid', payment_ref = $2, paid_at = $3 WHERE id = $1 AND status = 'open'`, invoiceID, ref, now)
	if err != nil {
		return fmt.Errorf("mark invoice paid: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fault.New(fault.Conflict, "", "invoice is not open")
	}
	if _, err := tx.Exec(ctx, `UPDATE dunning SET next_retry_at = NULL WHERE invoice_id = $1`, invoiceID); err != nil {
		return fmt.Errorf("end dunning: %w", err)
	}
	if err := audit(ctx, tx, now, actor, accountID, "invoice.paid", invoiceID, map[string]any{"reference": ref}); err != nil {
		return err
	}
	return s.setSubscriptions(ctx, store.Wrap(tx), accountID, invoiceID, false, now, actor)
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
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var accountID, status string
		var gross int64
		err := tx.QueryRow(ctx, `SELECT account_id, status, gross_minor FROM invoices WHERE id = $1 FOR UPDATE`, invoiceID).Scan(&accountID, &status, &gross)
		if errors.Is(err, pgx.ErrNoRows) {
			return errNoInvoice
		}
		if err != nil {
			return fmt.Errorf("lock invoice: %w", err)
		}
		if status != string(StatusOpen) {
			return fault.New(fault.Conflict, "", "invoice is %s; only open invoices can be marked paid", status)
		}
		// A card charge whose answer is not recorded yet may have paid it:
		// marking it paid too could take the money twice.
		var inFlight bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM payment_attempts WHERE invoice_id = $1 AND outcome = 'unknown')`, invoiceID).Scan(&inFlight); err != nil {
			return fmt.Errorf("read payment attempts: %w", err)
		}
		if inFlight {
			return fault.New(fault.Conflict, "", "a card payment of this invoice is in progress; try again in a few minutes")
		}
		ref := reference
		if ref == "" {
			ref = "manual"
		}
		if err := insertAttempt(ctx, tx, invoiceID, "", now, gross, "manual", ref, "marked paid by "+actor); err != nil {
			return err
		}
		return s.settle(ctx, tx, accountID, invoiceID, ref, now, actor)
	})
	if err != nil {
		return StoredInvoice{}, err
	}
	s.m.attempts.WithLabelValues("manual").Inc()
	return s.Invoice(ctx, invoiceID, "")
}
