package billing

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/auditdb"
	"github.com/pbxd/pbxd/internal/store/billdb"
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

// A run renews the subscriptions due: active ones whose period has ended,
// trials that have ended (billdb's renew.sql). Inactive subscriptions
// (unpaid after dunning) do not renew until paid.

// DefaultRenewalBatch is how many subscriptions one renewal transaction
// takes at most by default: large enough to share a transaction's fixed
// cost (snapshot, commit, one statement per table instead of one per row),
// small enough that a batch retried one subscription at a time stays cheap.
const DefaultRenewalBatch = 100

// Renew renews every subscription due at now: it invoices the next period in
// advance for the current quantity at the current catalog price with the
// cycle's discount, takes the account's pending charges and credits onto
// that invoice, charges card accounts, and advances the period. A missed run
// catches up period by period.
//
// An account's subscriptions due at the same time share one invoice (its
// pending charges and credits on it, VAT per rate on the net total) and
// one card charge, taken after commit as a durable intent.
//
// Each subscription × period renewal is atomic and guarded by the renewals
// primary key, so a run repeated or interrupted and restarted never bills a
// period twice nor skips one. For speed, renewals are committed in batches
// of whole accounts, up to Settings.RenewalBatch subscriptions, one
// transaction per batch, written with one statement per table; a batch that
// fails is retried one account per transaction, so an account that cannot
// be renewed holds up no other.
//
// Work is handed to a bounded pool of workers in chunks of accounts, each
// worker locking its accounts with FOR NO KEY UPDATE SKIP LOCKED, so
// several runs (or instances) can share the work safely.
func (s *Service) Renew(ctx context.Context, now time.Time) (RenewalStats, error) {
	var st RenewalStats
	cat, err := catalog(ctx, s.db)
	if err != nil {
		return st, err
	}
	// The due accounts are read in one statement, with how many of their
	// subscriptions are due: an account is renewed whole in one batch, so
	// that its subscriptions due on one date share one invoice and one
	// card charge.
	due, err := s.q.DueAccounts(ctx, now)
	if err != nil {
		return st, fmt.Errorf("list due subscriptions: %w", err)
	}
	total := 0
	for _, d := range due {
		total += int(d.Subs)
	}
	t := &renewalTally{s: s}
	chunks := make(chan []string)
	var wg sync.WaitGroup
	for range s.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ids := range chunks {
				s.renewChunk(ctx, cat, ids, now, t)
			}
		}()
	}
	size := batchSize(total, s.workers, s.cfg().RenewalBatch)
feed:
	for len(due) > 0 {
		// Whole accounts, up to size subscriptions (at least one account).
		n, subs := 1, int(due[0].Subs)
		for n < len(due) && subs+int(due[n].Subs) <= size {
			subs += int(due[n].Subs)
			n++
		}
		chunk := make([]string, n)
		for i := range n {
			chunk[i] = due[i].AccountID
		}
		select {
		case chunks <- chunk:
			due = due[n:]
		case <-ctx.Done():
			break feed
		}
	}
	close(chunks)
	wg.Wait()
	st = RenewalStats{Renewed: t.renewed.Load(), Invoiced: t.invoiced.Load(), Errors: t.failed.Load()}
	if err := ctx.Err(); err != nil {
		return st, fmt.Errorf("renewal run interrupted after %d renewals: %w", st.Renewed, err)
	}
	if p := t.firstErr.Load(); p != nil {
		return st, fmt.Errorf("%d renewals failed, first: %w", st.Errors, *p)
	}
	return st, nil
}

// QueueRenewalDue queues into b the check RenewAccount makes first: due
// reports, once b has been sent, whether the account has a period that
// began and is not invoiced yet. A change order reads it with the
// account's state, in the same round trip, and calls RenewAccount only
// then.
func QueueRenewalDue(b *store.Batch, accountID string, now time.Time, due *bool) {
	b.Queue(billdb.RenewalDueSQL, now, accountID).QueryRow(func(row store.Row) error {
		if err := row.Scan(due); err != nil {
			return fmt.Errorf("check due renewals: %w", err)
		}
		return nil
	})
}

// RenewAccount renews the account's subscriptions due at now, at once: a
// change order previewed after a period began but before the renewal job
// invoiced it must be priced against the new period, not the one ended.
// Nothing due is one cheap query.
func (s *Service) RenewAccount(ctx context.Context, accountID string, now time.Time) error {
	due, err := s.q.RenewalDue(ctx, billdb.RenewalDueParams{Now: now, AccountID: accountID})
	if err != nil {
		return fmt.Errorf("check due renewals: %w", err)
	}
	if !due {
		return nil
	}
	cat, err := catalog(ctx, s.db)
	if err != nil {
		return err
	}
	t := &renewalTally{s: s}
	s.renewChunk(ctx, cat, []string{accountID}, now, t)
	if p := t.firstErr.Load(); p != nil {
		return *p
	}
	return ctx.Err()
}

// batchSize spreads due subscriptions over the workers in several chunks
// each (so that workers finish together), at most limit (0: the default).
func batchSize(due, workers, limit int) int {
	if limit <= 0 {
		limit = DefaultRenewalBatch
	}
	return max(1, min(limit, due/(4*max(1, workers))))
}

// renewalTally counts a run's results across its workers.
type renewalTally struct {
	s                         *Service
	renewed, invoiced, failed atomic.Int64
	firstErr                  atomic.Pointer[error]
}

// done records committed renewals and returns the accounts that have
// another period due.
func (t *renewalTally) done(rs []renewed) (again []string) {
	for _, r := range rs {
		t.renewed.Add(1)
		t.s.m.renewals.WithLabelValues(r.result).Inc()
		if r.issued != nil {
			t.invoiced.Add(1)
			t.s.countIssued(r.issued.inv)
		}
		if t.s.after != nil {
			t.s.after(r.id)
		}
		if r.more && !slices.Contains(again, r.accountID) {
			again = append(again, r.accountID)
		}
	}
	return again
}

func (t *renewalTally) fail(id string, err error) {
	t.failed.Add(1)
	t.s.m.renewals.WithLabelValues("error").Inc()
	t.s.log.Error("renewal failed; retried next run", "account", id, "err", err)
	e := fmt.Errorf("renew account %s: %w", id, err)
	t.firstErr.CompareAndSwap(nil, &e)
}

// renewChunk renews the due subscriptions of the accounts ids, one period
// per batch, until none is due. A failed batch is retried one account per
// transaction, so that only the account at fault is left for the next run.
func (s *Service) renewChunk(ctx context.Context, cat map[string]Package, ids []string, now time.Time, t *renewalTally) {
	for len(ids) > 0 && ctx.Err() == nil {
		rs, err := s.renewBatch(ctx, cat, ids, now)
		if err == nil {
			ids = t.done(rs)
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if len(ids) == 1 {
			t.fail(ids[0], err)
			return
		}
		var again []string
		for _, id := range ids {
			rs, err := s.renewBatch(ctx, cat, []string{id}, now)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				t.fail(id, err)
				continue
			}
			again = append(again, t.done(rs)...)
		}
		ids = again
	}
}

// subRow is a claimed subscription with what renewing it needs.
type subRow struct {
	id, accountID, pkg string
	cycle              Cycle
	quantity           int64
	status             SubscriptionStatus
	periodStart        time.Time
	periodEnd          time.Time
	trialEnd           *time.Time
	acct               Account
	tz                 string
	hasPending         bool
	pm                 *method
}

// subRowOf is a claimed subscription (billdb's ClaimRenewals: the
// accounts among ids that no other transaction holds, another renewal run
// or a confirm in progress, then their due subscriptions, with their
// account and default payment method; an account is claimed whole, so its
// renewals share an invoice).
func (s *Service) subRowOf(c billdb.ClaimRenewalsRow) (subRow, error) {
	r := subRow{id: c.ID, accountID: c.AccountID, pkg: c.PackageCode, cycle: Cycle(c.Cycle), quantity: int64(c.Quantity),
		status: SubscriptionStatus(c.Status), periodStart: c.PeriodStart, periodEnd: c.PeriodEnd, trialEnd: c.TrialEnd,
		acct: Account{ID: c.AccountID, Name: c.Name, Currency: Currency(c.Currency), Location: s.location(c.Timezone), VAT: BasisPoints(c.VatBp),
			PaymentMode: c.PaymentMode},
		tz: c.Timezone, hasPending: c.HasPending}
	if err := json.Unmarshal(c.BillingAddress, &r.acct.BillingAddress); err != nil {
		return r, fmt.Errorf("account %s billing address: %w", c.AccountID, err)
	}
	if c.PmID != nil {
		r.pm = &method{ID: *c.PmID, Gateway: *c.PmGateway, Token: *c.PmToken}
	}
	return r, nil
}

// renewed is one committed renewal.
type renewed struct {
	id        string
	accountID string
	result    string // invoiced, zero_quantity or trial_converted
	more      bool   // another period is due
	issued    *issue
}

// renewBatch renews one period of each of ids that is due and not locked
// by another run, in one transaction driven by hand in pipelined round
// trips (BEGIN + claim, pending items if any, then every write + COMMIT),
// so that the invoice counter row, locked by the last write, is held for no
// round trip.
func (s *Service) renewBatch(ctx context.Context, cat map[string]Package, ids []string, now time.Time) ([]renewed, error) {
	conn, err := s.db.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()
	open := true
	defer func() {
		if open {
			conn.Rollback(context.WithoutCancel(ctx))
		}
	}()
	var subs []subRow
	claim := &store.Batch{}
	claim.Queue("BEGIN")
	if f, ok := store.FenceFrom(ctx); ok { // the job's leader only
		claim.Queue(store.FenceSQL, f.Job, f.Epoch)
	}
	// Generic plans: with an array of ids PostgreSQL would otherwise plan
	// every statement anew for each batch (a few milliseconds, more than
	// the whole renewal of one subscription); the generic plans are the
	// index lookups a batch needs.
	//
	// Asynchronous commit for batches without card charges: a crash may
	// lose the last few hundred milliseconds of renewals, which is safe
	// there (the next run bills the same periods again, and the counter
	// rolls back with the invoices: no gap). A batch with card charges
	// commits synchronously (see below).
	claim.Queue(billdb.RenewalSettingsSQL)
	store.QueryRows(claim.Queue(billdb.ClaimRenewalsSQL, now, ids), func(claimed []billdb.ClaimRenewalsRow) error {
		subs = make([]subRow, 0, len(claimed))
		for _, c := range claimed {
			r, err := s.subRowOf(c)
			if err != nil {
				return err
			}
			subs = append(subs, r)
		}
		return nil
	})
	if err := conn.SendBatch(ctx, claim); err != nil {
		return nil, fmt.Errorf("claim: %w", store.FenceError(err))
	}
	if len(subs) == 0 {
		return nil, nil
	}
	// The subscriptions are locked: finish even if the run is being
	// cancelled, since card charges may be taken from here on.
	work := context.WithoutCancel(ctx)
	pending, err := lockPending(work, billdb.New(conn), subs)
	if err != nil {
		return nil, err
	}
	w := &renewalWrites{now: now, owner: s.ownerOrNull()}
	out := make([]renewed, 0, len(subs))
	var charges []*renewalCharge
	// One invoice per account and due date: the subscriptions due then
	// (claimed in account order) are grouped, in the order claimed.
	type group struct {
		r     subRow // the first subscription: the account and its method
		plans []renewalPlan
		subs  []int // indexes in out
	}
	var groups []*group
	byKey := map[string]*group{}
	plans := make([]renewalPlan, len(subs))
	for i, r := range subs {
		pkg, ok := cat[r.pkg]
		if !ok {
			return nil, fmt.Errorf("subscription %s: package %s not in the catalog", r.id, r.pkg)
		}
		plan, err := planRenewal(r, pkg, now)
		if err != nil {
			return nil, fmt.Errorf("subscription %s: %w", r.id, err)
		}
		plans[i] = plan
		res := renewed{id: r.id, accountID: r.accountID, result: "invoiced", more: !plan.end.After(now)}
		switch {
		case r.quantity == 0:
			res.result, plan.invoice = "zero_quantity", false
		case plan.trial:
			res.result = "trial_converted"
			w.audit(r.accountID, "subscription.trial_converted", r.id, map[string]any{"period_start": plan.start, "period_end": plan.end})
		}
		out = append(out, res)
		if !plan.invoice {
			continue
		}
		key := r.accountID + "|" + plan.due.UTC().Format(time.RFC3339)
		g := byKey[key]
		if g == nil {
			g = &group{r: r}
			byKey[key] = g
			groups = append(groups, g)
		}
		g.plans, g.subs = append(g.plans, plan), append(g.subs, i)
	}
	invoiceOf := make([]string, len(subs))
	for _, g := range groups {
		// Derived from what it bills: the same renewal retried gets the
		// same id.
		parts := []string{"renewal", g.r.accountID, g.plans[0].due.UTC().Format(time.RFC3339)}
		for _, i := range g.subs {
			parts = append(parts, subs[i].id)
		}
		invoiceID := derivedID(parts...)
		issued, ch, err := s.buildRenewalInvoice(w, g.r, g.plans, invoiceID, pending, now)
		if err != nil {
			return nil, fmt.Errorf("account %s: %w", g.r.accountID, err)
		}
		if ch != nil {
			charges = append(charges, ch)
		}
		out[g.subs[0]].issued = issued
		for _, i := range g.subs {
			invoiceOf[i] = invoiceID
		}
	}
	for i, r := range subs {
		w.renewal(r.id, plans[i], invoiceOf[i])
	}
	if len(charges) > 0 {
		w.durable = true
	}
	b := &store.Batch{}
	if w.durable {
		// Card charges follow the commit: it must be on disk first, or a
		// crash could lose the invoice of a charge about to be taken.
		b.Queue(billdb.SynchronousCommitSQL)
	}
	if err := w.queue(b, s.cfg().IssuerCode); err != nil {
		return nil, err
	}
	b.Queue("COMMIT").Commit(func(committed bool) error {
		if !committed {
			return errors.New(`commit answered "ROLLBACK"`)
		}
		open = false
		return nil
	})
	if err := conn.SendBatch(work, b); err != nil {
		if store.IsUniqueViolation(err, "renewals_pkey") {
			return nil, fmt.Errorf("a period was already billed but its subscription did not advance: %w", err)
		}
		return nil, fmt.Errorf("write renewals: %w", err)
	}
	s.m.attempts.WithLabelValues(string(AttemptDeclined)).Add(float64(w.noMethod))
	// Committed: the invoices and their payment intents exist, so the
	// charges are taken now, outside any transaction. A crash from here on
	// leaves intents that Recover settles by idempotency key.
	conn.Release()
	s.chargeAll(work, charges, now)
	return out, nil
}

// renewalWrites collects a batch's rows, table by table, to write them with
// one statement per table.
type renewalWrites struct {
	now time.Time
	// durable: the batch takes card charges after commit, so its commit
	// is synchronous.
	durable bool
	// renewals and subscription updates
	subIDs, renewalInvoices []string
	starts, ends            []time.Time
	units                   []int64
	// audit_log
	auditAccounts, auditActions, auditObjects, auditDetails []string
	// payment_attempts
	attemptIDs, attemptInvoices, attemptMethods, attemptOutcomes, attemptRefs, attemptDetails []string // outcomes: AttemptOutcome
	attemptKeys, attemptAccounts                                                              []string
	attemptAmounts                                                                            []int64
	noMethod                                                                                  int
	owner                                                                                     *int32 // the attempts' owner (Service.ownerOrNull)
	// dunning
	dunningInvoices []string
	dunningNext     []time.Time
	// pending items taken whole, and credits split (rare: two statements
	// each, in the order they were used)
	takenItems, takenBy []string
	splits              []pendingSplit
	issues              []*issue
}

type pendingSplit struct {
	item      pendingItem
	used      int64
	invoiceID string
}

func (w *renewalWrites) renewal(subID string, plan renewalPlan, invoiceID string) {
	w.subIDs, w.renewalInvoices = append(w.subIDs, subID), append(w.renewalInvoices, invoiceID)
	w.starts, w.ends, w.units = append(w.starts, plan.start), append(w.ends, plan.end), append(w.units, plan.unit)
}

func (w *renewalWrites) audit(accountID, action, object string, details map[string]any) {
	d, _ := json.Marshal(details) // maps of strings and times always encode
	w.auditAccounts, w.auditActions = append(w.auditAccounts, accountID), append(w.auditActions, action)
	w.auditObjects, w.auditDetails = append(w.auditObjects, object), append(w.auditDetails, string(d))
}

func (w *renewalWrites) attempt(id, accountID, invoiceID, methodID, key string, amount int64, outcome AttemptOutcome, ref, detail string) {
	w.attemptIDs, w.attemptInvoices, w.attemptMethods = append(w.attemptIDs, id), append(w.attemptInvoices, invoiceID), append(w.attemptMethods, methodID)
	w.attemptKeys, w.attemptAccounts = append(w.attemptKeys, key), append(w.attemptAccounts, accountID)
	w.attemptAmounts, w.attemptOutcomes = append(w.attemptAmounts, amount), append(w.attemptOutcomes, string(outcome))
	w.attemptRefs, w.attemptDetails = append(w.attemptRefs, ref), append(w.attemptDetails, detail)
}

// queue adds the batch's writes to b, the invoices (which lock the counter
// row) last.
func (w *renewalWrites) queue(b *store.Batch, issuerCode string) error {
	// The primary key (subscription, period start) is the last defence
	// against billing a period twice: a conflict aborts the transaction.
	b.Queue(billdb.InsertRenewalsSQL, w.subIDs, w.starts, w.renewalInvoices, w.now)
	b.Queue(billdb.AdvanceSubscriptionsSQL, w.subIDs, w.starts, w.ends, w.units)
	if len(w.auditActions) > 0 {
		b.Queue(auditdb.InsertRenewalAuditsSQL, w.now, w.auditAccounts, w.auditActions, w.auditObjects, w.auditDetails)
	}
	for _, sp := range w.splits {
		it := sp.item
		b.Queue(billdb.ReducePendingItemSQL, it.id, sp.used)
		b.Queue(billdb.InsertPendingPartSQL, uuid.NewString(), it.accountID, it.pkg, it.desc, it.qty, it.unit, sp.used, it.currency,
			it.ps, it.pe, it.note+" (part)", w.now, it.changeID, sp.invoiceID)
	}
	// After the splits: a credit's remainder may be taken whole by the
	// account's next renewal in the batch.
	if len(w.takenItems) > 0 {
		b.Queue(billdb.TakePendingItemsSQL, w.takenItems, w.takenBy)
	}
	if len(w.attemptIDs) > 0 {
		b.Queue(billdb.InsertRenewalAttemptsSQL, w.now, w.attemptIDs, w.attemptInvoices, w.attemptMethods, w.attemptAmounts, w.attemptOutcomes,
			w.attemptRefs, w.attemptDetails, w.attemptKeys, w.attemptAccounts, w.owner)
	}
	if len(w.dunningInvoices) > 0 {
		b.Queue(billdb.StartRenewalDunningSQL, w.now, w.dunningInvoices, w.dunningNext)
	}
	if len(w.issues) == 0 {
		return nil
	}
	return queueInvoices(b, w.issues, issuerCode)
}

// renewalPlan is what one renewal bills.
type renewalPlan struct {
	trial      bool
	start, end time.Time
	unit       int64
	line       Line
	invoice    bool
	// due is when the renewal falls due: the period's start, or the
	// trial's end. An account's renewals due together share an invoice.
	due time.Time
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
	if r.status == SubscriptionTrial && r.trialEnd != nil {
		p.trial = true
		p.start, p.end = PeriodContaining(r.cycle, r.periodStart, *r.trialEnd, loc)
		day, p.due = DateOf(*r.trialEnd, loc), *r.trialEnd
	} else {
		p.start, p.end = NextPeriod(r.cycle, r.periodStart, loc)
		day, p.due = DateOf(p.start, loc), p.start
	}
	p.line, err = ProratedLine(pkg.Name, pkg.Code, r.quantity, unit, DateOf(p.start, loc), DateOf(p.end, loc), day, r.acct.VAT, pkg.Proration)
	if err != nil {
		return p, fmt.Errorf("renewal line: %w", err)
	}
	if r.cycle == Annual {
		p.line.Description += " (annual)"
	}
	return p, nil
}

// buildRenewalInvoice adds the renewal invoice and what goes with it
// (pending items taken, dunning when there is no way to pay) to w, and
// returns the card charge it needs, if any: chargeAll takes the batch's
// charges before the invoice numbers are allocated, so the counter lock is
// never held across a gateway call.
func (s *Service) buildRenewalInvoice(w *renewalWrites, r subRow, plans []renewalPlan, invoiceID string, pending map[string][]pendingItem, now time.Time) (*issue, *renewalCharge, error) {
	cfg := s.cfg()
	var lines []Line
	var net int64
	for _, p := range plans {
		lines, net = append(lines, p.line), net+p.line.AmountMinor
	}
	if items := pending[r.accountID]; len(items) > 0 {
		// The account's first invoice in the batch takes them; a credit it
		// cannot use goes to the next one, as in separate transactions.
		var taken []Line
		taken, pending[r.accountID] = w.takePending(items, r.acct, net, invoiceID)
		lines = append(lines, taken...)
	}
	local := now.In(r.acct.Location)
	due := local.AddDate(0, 0, cfg.PaymentTermDays)
	if r.acct.PaymentMode == ModeCard {
		due = local // the card is charged at issue
	}
	inv, err := BuildInvoice(Draft{Issuer: cfg.Issuer, Customer: r.acct.Customer(), IssuedAt: local,
		DueAt: due, Currency: r.acct.Currency, Lines: lines})
	if err != nil {
		return nil, nil, fmt.Errorf("build renewal invoice: %w", err)
	}
	is := &issue{id: invoiceID, accountID: r.accountID, inv: inv, status: StatusOpen}
	w.issues = append(w.issues, is)
	gross := inv.Totals.GrossMinor
	switch {
	case gross <= 0:
		is.status, is.paymentRef, is.paidAt = StatusPaid, "credit", &now
		is.inv.DueAt = local // nothing to pay
	case r.acct.PaymentMode != ModeCard:
		// Invoice accounts pay by transfer by the due date.
	case r.pm == nil:
		w.noMethod++
		w.attempt(uuid.NewString(), r.accountID, is.id, "", "", gross, AttemptDeclined, "", "no default payment method")
		s.startDunning(w, cfg, r, is.id, "no default payment method")
	default:
		// The intent is committed with the invoice; the card is charged
		// after commit. The key derives from the invoice id, itself from
		// the subscription and period: a renewal retried never charges twice.
		a := &attempt{id: uuid.NewString(), key: "invoice:" + is.id + ":1", accountID: r.accountID, invoiceID: is.id, method: r.pm,
			amount: Money{Minor: gross, Currency: r.acct.Currency}, outcome: string(AttemptUnknown)}
		w.attempt(a.id, a.accountID, is.id, r.pm.ID, a.key, gross, AttemptUnknown, "", "")
		return is, &renewalCharge{a: a}, nil
	}
	return is, nil, nil
}

// renewalCharge is a committed renewal invoice's card payment intent.
type renewalCharge struct{ a *attempt }

// chargeConcurrency bounds a batch's gateway calls in flight: a real
// gateway answers in hundreds of milliseconds, which one at a time would
// hold a renewal worker for as many times that.
const chargeConcurrency = 8

// chargeAll takes a committed batch's card charges, several at a time,
// outside any transaction, then records the answers in one transaction.
// What it cannot record (cancelled, database lost) stays unknown for
// Recover, which asks the gateway under the same idempotency key.
func (s *Service) chargeAll(ctx context.Context, charges []*renewalCharge, now time.Time) {
	if len(charges) == 0 {
		return
	}
	ds := make([]decided, len(charges))
	var g errgroup.Group
	g.SetLimit(chargeConcurrency)
	for i, ch := range charges {
		g.Go(func() error {
			ds[i].a = ch.a
			ds[i].res, ds[i].outcome, _ = s.callGateway(ctx, ch.a)
			return nil
		})
	}
	g.Wait() //nolint:errcheck // outcomes are in ds
	answered := ds[:0]
	for _, d := range ds {
		if d.outcome != "" {
			answered = append(answered, d)
		}
	}
	if _, err := s.recordOutcomes(ctx, answered, now); err != nil {
		s.log.Error("renewal payments not recorded; recovery settles them", "count", len(answered), "err", err)
	}
}

// startDunning starts dunning for a renewal invoice whose payment failed.
func (s *Service) startDunning(w *renewalWrites, cfg Settings, r subRow, invoiceID string, reason string) {
	next, _ := cfg.Dunning.NextRetry(1, w.now)
	w.dunningInvoices, w.dunningNext = append(w.dunningInvoices, invoiceID), append(w.dunningNext, next)
	w.audit(r.accountID, "dunning.started", invoiceID, map[string]any{"subscription": r.id, "reason": reason, "next_retry_at": next})
}

// pendingItem is a charge or credit waiting for an account's next bill.
type pendingItem struct {
	id, accountID, pkg, desc, note, currency string
	qty, unit, amount                        int64
	ps, pe, created                          time.Time
	changeID                                 *string
}

// lockPending locks the pending items of the accounts of subs that have
// some, in the account's currency, charges first. Locks are taken in
// account order, as every batch does, so batches sharing an account wait
// for each other rather than deadlock; a batch that waited finds the items
// taken (invoice_id set) and leaves them.
func lockPending(ctx context.Context, q *billdb.Queries, subs []subRow) (map[string][]pendingItem, error) {
	var accounts, currencies []string
	for _, r := range subs {
		if r.hasPending && (len(accounts) == 0 || accounts[len(accounts)-1] != r.accountID) {
			accounts, currencies = append(accounts, r.accountID), append(currencies, string(r.acct.Currency))
		}
	}
	if len(accounts) == 0 {
		return nil, nil
	}
	rows, err := q.LockPending(ctx, billdb.LockPendingParams{AccountIds: accounts, Currencies: currencies})
	if err != nil {
		return nil, fmt.Errorf("lock pending items: %w", err)
	}
	out := map[string][]pendingItem{}
	for _, p := range rows {
		it := pendingItem{id: p.ID, accountID: p.AccountID, pkg: p.PackageCode, desc: p.Description, note: p.Note, currency: p.Currency,
			qty: int64(p.Quantity), unit: p.UnitMinor, amount: p.AmountMinor, ps: p.PeriodStart, pe: p.PeriodEnd, created: p.CreatedAt, changeID: p.ChangeID}
		out[it.accountID] = append(out[it.accountID], it)
	}
	return out, nil
}

// takePending turns an account's pending items into invoice lines, marking
// them taken by invoiceID, and returns the items left. Charges are all
// taken; credits only up to the invoice's net (an invoice never goes
// negative): a partly used credit is split, its remainder staying pending.
func (w *renewalWrites) takePending(items []pendingItem, acct Account, baseNet int64, invoiceID string) (lines []Line, rest []pendingItem) {
	net := baseNet
	for i, it := range items { // charges first (amount DESC), then credits
		amount, note := it.amount, it.note
		if amount < 0 && net+amount < 0 {
			if net <= 0 {
				return lines, append(rest, items[i:]...)
			}
			amount = -net // use part of the credit: the rest stays pending
			w.splits = append(w.splits, pendingSplit{item: it, used: amount, invoiceID: invoiceID})
			it.amount -= amount
			rest = append(rest, it)
			// Say so on the invoice: the line's quantity and unit price are
			// the whole credit's.
			cur := Currency(it.currency)
			note = fmt.Sprintf("credit %s: %s applied, %s carried forward", cur.FormatMinor(-(it.amount + amount)), cur.FormatMinor(-amount), cur.FormatMinor(-it.amount))
			if it.note != "" {
				note = it.note + "; " + note
			}
		} else {
			w.takenItems, w.takenBy = append(w.takenItems, it.id), append(w.takenBy, invoiceID)
		}
		net += amount
		lines = append(lines, Line{Description: it.desc, PackageCode: it.pkg, Quantity: it.qty,
			UnitMinor: it.unit, PeriodStart: DateOf(it.ps, time.UTC), PeriodEnd: DateOf(it.pe, time.UTC),
			ProrationNote: note, AmountMinor: amount, VATBasisPoints: acct.VAT})
	}
	// The order lockPending reads them in, which a split may change.
	slices.SortFunc(rest, func(a, b pendingItem) int {
		return cmp.Or(cmp.Compare(b.amount, a.amount), a.created.Compare(b.created), cmp.Compare(a.id, b.id))
	})
	return lines, rest
}
