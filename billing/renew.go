package billing

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pbxd/pbxd/internal/store"
)

// RenewalStats summarise one renewal run.
type RenewalStats struct {
	// Renewed counts committed renewals (one per subscription × period).
	Renewed int64
	// Invoiced counts the invoices they issued.
	Invoiced int64
	// Errors counts subscriptions left for the next run.
	Errors int64
}

// dueCondition selects the subscriptions a run renews: active ones whose
// period has ended, trials that have ended. Inactive subscriptions (unpaid
// after dunning) do not renew until paid.
const dueCondition = `((s.status = 'active' AND s.period_end <= $1) OR (s.status = 'trial' AND s.trial_end <= $1))`

// Renew renews every subscription due at now: it invoices the next period in
// advance for the current quantity at the current catalog price with the
// cycle's discount, takes the account's pending charges and credits onto
// that invoice, charges card accounts, and advances the period. A missed run
// catches up period by period. Each subscription × period is its own
// transaction, guarded by the renewals primary key, so a run repeated or
// interrupted and restarted never bills a period twice nor skips one.
//
// Work is claimed in pages of ids and renewed by a bounded pool of workers,
// each locking its subscription with FOR UPDATE SKIP LOCKED, so several
// runs (or instances) can share the work safely.
func (s *Service) Renew(ctx context.Context, now time.Time) (RenewalStats, error) {
	var st RenewalStats
	cat, err := catalog(ctx, s.pool)
	if err != nil {
		return st, err
	}
	ids := make(chan string, 2*s.workers)
	var wg sync.WaitGroup
	var renewed, invoiced, failed atomic.Int64
	var firstErr atomic.Pointer[error]
	for range s.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				for ctx.Err() == nil {
					res, more, err := s.renewOne(ctx, cat, id, now)
					if err != nil {
						if ctx.Err() != nil {
							break
						}
						failed.Add(1)
						s.m.renewals.WithLabelValues("error").Inc()
						s.log.Error("renewal failed; retried next run", "subscription", id, "err", err)
						e := fmt.Errorf("renew subscription %s: %w", id, err)
						firstErr.CompareAndSwap(nil, &e)
						break
					}
					if res == "" {
						break // not due (any more), or locked by another run
					}
					renewed.Add(1)
					if res == "invoiced" || res == "trial_converted" {
						invoiced.Add(1)
					}
					s.m.renewals.WithLabelValues(res).Inc()
					if s.after != nil {
						s.after(id)
					}
					if !more {
						break
					}
				}
			}
		}()
	}
	// The due ids are read in one statement (100,000 uuids are a few MB);
	// workers then lock them one by one, skipping those taken meanwhile.
	var pageErr error
	rows, err := s.pool.Query(ctx, `SELECT s.id FROM subscriptions s WHERE `+dueCondition+` ORDER BY s.id`, now)
	if err == nil {
		var due []string
		due, err = pgx.CollectRows(rows, pgx.RowTo[string])
		for _, id := range due {
			select {
			case ids <- id:
			case <-ctx.Done():
			}
			if ctx.Err() != nil {
				break
			}
		}
	}
	if err != nil {
		pageErr = fmt.Errorf("list due subscriptions: %w", err)
	}
	close(ids)
	wg.Wait()
	st = RenewalStats{Renewed: renewed.Load(), Invoiced: invoiced.Load(), Errors: failed.Load()}
	if err := ctx.Err(); err != nil {
		return st, fmt.Errorf("renewal run interrupted after %d renewals: %w", st.Renewed, err)
	}
	if pageErr != nil {
		return st, pageErr
	}
	if p := firstErr.Load(); p != nil {
		return st, fmt.Errorf("%d renewals failed, first: %w", st.Errors, *p)
	}
	return st, nil
}

// subRow is a claimed subscription with what renewing it needs.
type subRow struct {
	id, accountID, pkg string
	cycle              Cycle
	quantity           int64
	status             string
	periodStart        time.Time
	periodEnd          time.Time
	trialEnd           *time.Time
	acct               Account
	tz                 string
	hasPending         bool
	pm                 *method
}

const claimSQL = `SELECT s.id, s.account_id, s.package_code, s.cycle, s.quantity, s.status, s.period_start, s.period_end, s.trial_end,
	a.name, a.currency, a.timezone, a.vat_bp, a.payment_mode, a.billing_address,
	EXISTS (SELECT 1 FROM pending_items i WHERE i.account_id = s.account_id AND i.invoice_id IS NULL),
	pm.id, pm.gateway, pm.token
FROM subscriptions s
JOIN accounts a ON a.id = s.account_id
LEFT JOIN payment_methods pm ON pm.account_id = s.account_id AND pm.is_default AND pm.deleted_at IS NULL
WHERE s.id = $2 AND ` + dueCondition + `
FOR UPDATE OF s SKIP LOCKED`

// renewOne renews one period of one subscription in its own transaction.
// It returns the result ("" if the subscription was not due or is being
// renewed by someone else) and whether another period is due.
func (s *Service) renewOne(ctx context.Context, cat map[string]Package, id string, now time.Time) (result string, more bool, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return "", false, fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()
	// The transaction is driven by hand, in two pipelined round trips
	// (BEGIN + claim, then every write + COMMIT), so that the invoice
	// counter row, locked by the last write, is held for no round trip.
	open := true
	defer func() {
		if open {
			if _, rerr := conn.Exec(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
				conn.Conn().Close(context.WithoutCancel(ctx)) //nolint:errcheck // the pool drops a closed connection
			}
		}
	}()
	var r subRow
	var cycle string
	var vat int64
	var cur string
	var pmID, pmGateway, pmToken *string
	var found bool
	claim := &pgx.Batch{}
	claim.Queue("BEGIN")
	claim.Queue(claimSQL, now, id).QueryRow(func(row pgx.Row) error {
		err := row.Scan(&r.id, &r.accountID, &r.pkg, &cycle, &r.quantity, &r.status, &r.periodStart, &r.periodEnd, &r.trialEnd,
			&r.acct.Name, &cur, &r.tz, &vat, &r.acct.PaymentMode, &r.acct.BillingAddress, &r.hasPending, &pmID, &pmGateway, &pmToken)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	})
	if err := conn.SendBatch(ctx, claim).Close(); err != nil {
		return "", false, fmt.Errorf("claim: %w", err)
	}
	if !found {
		return "", false, nil
	}
	r.cycle, r.acct.ID, r.acct.Currency, r.acct.VAT, r.acct.Location = Cycle(cycle), r.accountID, Currency(cur), BasisPoints(vat), s.location(r.tz)
	if pmID != nil {
		r.pm = &method{ID: *pmID, Gateway: *pmGateway, Token: *pmToken}
	}
	pkg, ok := cat[r.pkg]
	if !ok {
		return "", false, fmt.Errorf("package %s not in the catalog", r.pkg)
	}
	plan, err := planRenewal(r, pkg, now)
	if err != nil {
		return "", false, err
	}
	result = "invoiced"
	switch {
	case r.quantity == 0:
		result, plan.invoice = "zero_quantity", false
	case plan.trial:
		result = "trial_converted"
	}
	b := &pgx.Batch{}
	// Asynchronous commit: a crash may lose the last few hundred
	// milliseconds of renewals, which is safe here. The next run bills the
	// same periods again with the same invoice ids, hence the same gateway
	// idempotency keys (no second charge), and the counter rolls back with
	// the invoices (no gap).
	b.Queue(`SET LOCAL synchronous_commit = off`)
	// The primary key (subscription, period start) is the last defence
	// against billing a period twice: a conflict aborts the transaction.
	b.Queue(`INSERT INTO renewals (subscription_id, period_start, invoice_id, created_at) VALUES ($1, $2, $3, $4)`,
		r.id, plan.start, nilIfZero(plan.invoice, plan.invoiceID), now)
	b.Queue(`UPDATE subscriptions SET status = 'active', period_start = $2, period_end = $3, next_payment_at = $3,
		period_price_minor = $4, version = version + 1 WHERE id = $1`, r.id, plan.start, plan.end, plan.unit)
	if plan.trial {
		b.Queue(`INSERT INTO audit_log (at, actor, account_id, action, object, details) VALUES ($1, 'billing', $2, 'subscription.trial_converted', $3, $4)`,
			now, r.accountID, r.id, map[string]any{"period_start": plan.start, "period_end": plan.end})
	}
	var is *issue
	if plan.invoice {
		is, err = s.buildRenewalInvoice(ctx, conn, b, r, plan, now)
		if err != nil {
			return "", false, err
		}
	}
	b.Queue("COMMIT").Exec(func(tag pgconn.CommandTag) error {
		if tag.String() != "COMMIT" {
			return fmt.Errorf("commit answered %q", tag.String())
		}
		open = false
		return nil
	})
	// Once the charge is taken, finish even if the run is being cancelled.
	if err := conn.SendBatch(context.WithoutCancel(ctx), b).Close(); err != nil {
		if store.IsUniqueViolation(err, "renewals_pkey") {
			return "", false, fmt.Errorf("period starting %s already billed but the subscription did not advance: %w", plan.start, err)
		}
		return "", false, fmt.Errorf("write renewal: %w", err)
	}
	if is != nil {
		s.countIssued(is.inv)
	}
	return result, !plan.end.After(now), nil
}

func nilIfZero(ok bool, id string) any {
	if !ok {
		return nil
	}
	return id
}

// rowsQuerier is a connection or transaction.
type rowsQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// renewalPlan is what one renewal bills.
type renewalPlan struct {
	trial      bool
	start, end time.Time
	unit       int64
	line       Line
	invoice    bool
	invoiceID  string
}

// planRenewal works out the period to bill and its line: the next period
// for an active subscription, or for an ended trial the period containing
// the trial's end, prorated from that day.
func planRenewal(r subRow, pkg Package, now time.Time) (renewalPlan, error) {
	loc := r.acct.Location
	p := renewalPlan{invoice: true}
	unit, err := PeriodPrice(pkg, r.cycle)
	if err != nil {
		return p, fmt.Errorf("price of %s %s: %w", pkg.Code, r.cycle, err)
	}
	p.unit = unit
	var day Date
	if r.status == "trial" && r.trialEnd != nil {
		p.trial = true
		p.start, p.end = PeriodContaining(r.cycle, r.periodStart, *r.trialEnd, loc)
		day = DateOf(*r.trialEnd, loc)
	} else {
		p.start, p.end = NextPeriod(r.cycle, r.periodStart, loc)
		day = DateOf(p.start, loc)
	}
	p.invoiceID = derivedID("renewal", r.id, p.start.UTC().Format(time.RFC3339))
	p.line, err = ProratedLine(pkg.Name, pkg.Code, r.quantity, unit, DateOf(p.start, loc), DateOf(p.end, loc), day, r.acct.VAT, pkg.Proration)
	if err != nil {
		return p, fmt.Errorf("renewal line: %w", err)
	}
	if r.cycle == Annual {
		p.line.Description += " (annual)"
	}
	return p, nil
}

// buildRenewalInvoice queues the renewal invoice and what goes with it
// (pending items taken, payment attempt, dunning) on b. The card charge
// happens here, before the invoice number is allocated, so the counter lock
// is never held across a gateway call; the charge's idempotency key is the
// invoice id, derived from the subscription and period, so a retried
// renewal never charges twice.
func (s *Service) buildRenewalInvoice(ctx context.Context, tx rowsQuerier, b *pgx.Batch, r subRow, plan renewalPlan, now time.Time) (*issue, error) {
	cfg := s.cfg()
	lines := []Line{plan.line}
	if r.hasPending {
		extra, err := s.takePending(ctx, tx, b, r.acct, plan.line.AmountMinor, plan.invoiceID, now)
		if err != nil {
			return nil, err
		}
		lines = append(lines, extra...)
	}
	local := now.In(r.acct.Location)
	inv, err := BuildInvoice(Draft{Issuer: cfg.Issuer, Customer: r.acct.Customer(), IssuedAt: local,
		DueAt: local.AddDate(0, 0, cfg.PaymentTermDays), Currency: r.acct.Currency, Lines: lines})
	if err != nil {
		return nil, fmt.Errorf("build renewal invoice: %w", err)
	}
	is := &issue{id: plan.invoiceID, accountID: r.accountID, inv: inv, status: StatusOpen}
	gross := inv.Totals.GrossMinor
	switch {
	case gross <= 0:
		is.status, is.paymentRef, is.paidAt = StatusPaid, "credit", &now
	case r.acct.PaymentMode != ModeCard:
		// Invoice accounts pay by transfer by the due date.
	case r.pm == nil:
		s.m.attempts.WithLabelValues("declined").Inc()
		queueAttempt(b, is.id, "", now, gross, "declined", "", "no default payment method")
		s.queueDunning(b, cfg, r, is.id, now, "no default payment method")
	default:
		res, outcome, err := s.charge(ctx, r.pm, Money{Minor: gross, Currency: r.acct.Currency}, "invoice:"+is.id+":1")
		if outcome == "" && err != nil {
			return nil, err // cancelled: nothing written
		}
		queueAttempt(b, is.id, r.pm.ID, now, gross, outcome, res.TransactionRef, res.Message)
		switch outcome {
		case "approved":
			is.status, is.paymentRef, is.paidAt = StatusPaid, res.TransactionRef, &now
			is.inv.DueAt = local
		case "declined", "error":
			s.queueDunning(b, cfg, r, is.id, now, res.Message)
		}
	}
	return is, s.queueInvoice(b, is, cfg.IssuerCode)
}

func queueAttempt(b *pgx.Batch, invoiceID, methodID string, at time.Time, amount int64, outcome, ref, detail string) {
	var pm any
	if methodID != "" {
		pm = methodID
	}
	b.Queue(`INSERT INTO payment_attempts (id, invoice_id, payment_method_id, at, amount_minor, outcome, reference, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, uuid.NewString(), invoiceID, pm, at, amount, outcome, ref, detail)
}

// queueDunning starts dunning for a renewal invoice whose payment failed.
func (s *Service) queueDunning(b *pgx.Batch, cfg Settings, r subRow, invoiceID string, now time.Time, reason string) {
	next, _ := cfg.Dunning.NextRetry(1, now)
	b.Queue(`INSERT INTO dunning (invoice_id, failures, first_failure, next_retry_at) VALUES ($1, 1, $2, $3)`, invoiceID, now, next)
	b.Queue(`INSERT INTO audit_log (at, actor, account_id, action, object, details) VALUES ($1, 'billing', $2, 'dunning.started', $3, $4)`,
		now, r.accountID, invoiceID, map[string]any{"subscription": r.id, "reason": reason, "next_retry_at": next})
}

// takePending locks the account's pending items and returns them as invoice
// lines, marking them taken by invoiceID on b. Charges are all taken;
// credits only up to the invoice's net (an invoice never goes negative): a
// partly used credit is split, its remainder staying pending for the next
// bill.
func (s *Service) takePending(ctx context.Context, tx rowsQuerier, b *pgx.Batch, acct Account, baseNet int64, invoiceID string, now time.Time) ([]Line, error) {
	rows, err := tx.Query(ctx, `SELECT id, package_code, description, quantity, unit_minor, amount_minor, period_start, period_end, note, change_id
		FROM pending_items WHERE account_id = $1 AND invoice_id IS NULL AND currency = $2 ORDER BY amount_minor DESC, created_at, id FOR UPDATE`,
		acct.ID, string(acct.Currency))
	if err != nil {
		return nil, fmt.Errorf("lock pending items: %w", err)
	}
	type item struct {
		id, pkg, desc, note string
		qty, unit           int64
		amount              int64
		ps, pe              time.Time
		changeID            *string
	}
	var items []item
	for rows.Next() {
		var it item
		if err := rows.Scan(&it.id, &it.pkg, &it.desc, &it.qty, &it.unit, &it.amount, &it.ps, &it.pe, &it.note, &it.changeID); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read pending items: %w", err)
		}
		items = append(items, it)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read pending items: %w", err)
	}
	net := baseNet
	var lines []Line
	var taken []string
	for _, it := range items { // charges first (amount DESC), then credits
		amount := it.amount
		if amount < 0 && net+amount < 0 {
			if net <= 0 {
				break
			}
			// Use part of the credit: the rest stays pending.
			amount = -net
			b.Queue(`UPDATE pending_items SET amount_minor = amount_minor - $2 WHERE id = $1`, it.id, amount)
			b.Queue(`INSERT INTO pending_items (id, account_id, package_code, description, quantity, unit_minor, amount_minor, currency,
				period_start, period_end, note, created_at, change_id, invoice_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
				uuid.NewString(), acct.ID, it.pkg, it.desc, it.qty, it.unit, amount, string(acct.Currency), it.ps, it.pe, it.note+" (part)", now, it.changeID, invoiceID)
		} else {
			taken = append(taken, it.id)
		}
		net += amount
		lines = append(lines, Line{Description: it.desc, PackageCode: it.pkg, Quantity: it.qty,
			UnitMinor: it.unit, PeriodStart: DateOf(it.ps, time.UTC), PeriodEnd: DateOf(it.pe, time.UTC),
			ProrationNote: it.note, AmountMinor: amount, VATBasisPoints: acct.VAT})
	}
	if len(taken) > 0 {
		b.Queue(`UPDATE pending_items SET invoice_id = $2 WHERE id = ANY($1)`, taken, invoiceID)
	}
	return lines, nil
}
