package provisioning

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
)

// When a change order item takes effect.
const (
	EffectiveNow       = "now"
	EffectivePeriodEnd = "period_end"
)

// ScheduledChange is a decrease waiting for its subscription's period end:
// until then nothing is charged or credited and the lines stay; at the
// period end, just before the renewal bills the new quantity, the quantity
// drops and the lines and numbers go.
type ScheduledChange struct {
	ID             string     `json:"id"`
	Package        string     `json:"package"`
	From           int        `json:"from"`
	To             int        `json:"to"`
	RemoveLines    []string   `json:"remove_lines"`
	ReleaseNumbers []string   `json:"release_numbers"`
	EffectiveAt    time.Time  `json:"effective_at"`
	State          string     `json:"state"` // pending, applied, cancelled
	ChangeID       string     `json:"change_id"`
	CreatedAt      time.Time  `json:"created_at"`
	DoneAt         *time.Time `json:"done_at,omitempty"`
}

// planSchedule decides, for each decrease of the plan, whether it waits for
// the period end: the item's "effective", else the package's default. Only
// decreases wait; swaps always happen now; a package with a pending
// scheduled decrease may still go up (the decrease then removes as many
// seats as it said), but takes no other decrease or swap until that one is
// cancelled.
func (s *Service) planSchedule(ctx context.Context, tx pgx.Tx, p *plan, req ChangeRequest, lines map[string]lineRow) error {
	pending := p.scheduled
	fields := map[string]string{}
	for i, ci := range req.Items {
		fields[ci.Package] = fmt.Sprintf("items[%d]", i)
	}
	swapped := map[string]bool{}
	for _, sw := range p.swaps {
		swapped[sw.line.Package], swapped[sw.to] = true, true
	}
	released := map[string]bool{}
	for _, nl := range p.numbers {
		if nl.Action == "release" {
			released[nl.Addon] = true
		}
	}
	for _, it := range p.items {
		code := it.pkg.Code
		field, effField := fields[code], fields[code]+".effective"
		if field == "" {
			field, effField = "numbers", "release_effective"
		}
		for _, sc := range pending {
			if sc.Package == code && (it.to < it.from || swapped[code] || it.switchFrom != "") {
				return fault.New(fault.Conflict, field, "package %s has a decrease by %d scheduled for %s; cancel it first (DELETE /v1/accounts/%s/scheduled-changes/%s)",
					code, sc.From-sc.To, sc.EffectiveAt.In(p.acct.Location()).Format(time.RFC3339), p.acct.ID, sc.ID)
			}
		}
		eff := it.effective
		if eff == "" && released[code] {
			eff = req.ReleaseEffective
		}
		if it.to >= it.from {
			if eff == EffectivePeriodEnd && it.to > it.from {
				return fault.New(fault.Invalid, effField, "only a decrease can wait for the period end; %s goes up now", code)
			}
			continue
		}
		def := EffectiveNow
		if it.pkg.Decrease == DecreasePeriodEnd {
			def = EffectivePeriodEnd
		}
		if eff == "" {
			eff = def
		}
		if eff != def && !it.pkg.DecreaseChoice && !req.ByOperator {
			return fault.New(fault.Invalid, effField, "package %s decreases %s only", code, def)
		}
		if eff != EffectivePeriodEnd || swapped[code] || it.switchFrom != "" {
			if eff == EffectivePeriodEnd {
				return fault.New(fault.Invalid, effField, "a package a line is swapped from or to, or whose cycle switches, changes now")
			}
			continue
		}
		it.scheduled, it.effectiveAt = true, it.sub.PeriodEnd
		need := 0
		if it.pkg.Kind != "addon" {
			need = countLines(lines, code) - it.to
		}
		for _, l := range it.remove {
			it.namedAtEnd = append(it.namedAtEnd, l.ID)
		}
		if len(it.remove) > max(need, 0) {
			return fault.New(fault.Invalid, field+".remove_lines", "%d lines named for removal, only %d go", len(it.remove), max(need, 0))
		}
		if need > 0 {
			it.atEnd = chooseRemovals(lines, code, it.remove, need, nil)
		}
		it.remove = nil
		for i := range p.numbers {
			if p.numbers[i].Action == "release" && p.numbers[i].Addon == code {
				p.numbers[i].Effective = EffectivePeriodEnd
			}
		}
	}
	return nil
}

func lineRefs(ls []lineRow) []LineRef {
	out := make([]LineRef, 0, len(ls))
	for _, l := range ls {
		out = append(out, LineRef{ID: l.ID, Extension: l.Extension, Package: l.Package})
	}
	return out
}

// applySchedule records the plan's period-end decreases, in the change's
// transaction; it returns their ids.
func (s *Service) applySchedule(ctx context.Context, tx pgx.Tx, p *plan, changeID string, now time.Time) ([]string, error) {
	ids := []string{}
	for _, it := range p.items {
		if !it.scheduled {
			continue
		}
		release := []string{}
		for _, nl := range p.numbers {
			if nl.Action == "release" && nl.Addon == it.pkg.Code {
				release = append(release, nl.Number)
			}
		}
		named := it.namedAtEnd
		if named == nil {
			named = []string{}
		}
		id := uuid.NewString()
		_, err := tx.Exec(ctx, `INSERT INTO scheduled_changes (id, account_id, subscription_id, package_code, from_quantity, to_quantity,
			remove_lines, release_numbers, effective_at, state, change_id, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11)`,
			id, p.acct.ID, it.sub.ID, it.pkg.Code, it.from, it.to, named, release, it.effectiveAt, changeID, now)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" {
			return nil, fault.New(fault.Conflict, "", "package %s already has a scheduled change; preview again", it.pkg.Code)
		}
		if err != nil {
			return nil, fmt.Errorf("schedule change: %w", err)
		}
		if err := audit(ctx, tx, now, "system", p.acct.ID, "change.schedule", id, map[string]any{
			"package": it.pkg.Code, "from": it.from, "to": it.to, "effective_at": it.effectiveAt, "change_id": changeID}); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

const scheduledCols = `id, package_code, from_quantity, to_quantity, remove_lines, release_numbers, effective_at, state, change_id, created_at, done_at`

const pendingScheduledSQL = `SELECT ` + scheduledCols + ` FROM scheduled_changes WHERE account_id = $1 AND state = 'pending'
	ORDER BY effective_at, package_code`

func scanScheduled(row pgx.CollectableRow) (ScheduledChange, error) {
	var sc ScheduledChange
	err := row.Scan(&sc.ID, &sc.Package, &sc.From, &sc.To, &sc.RemoveLines, &sc.ReleaseNumbers, &sc.EffectiveAt, &sc.State,
		&sc.ChangeID, &sc.CreatedAt, &sc.DoneAt)
	return sc, err
}

type queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// scheduledOf lists an account's pending scheduled changes.
func (s *Service) scheduledOf(ctx context.Context, q queryer, accountID string) ([]ScheduledChange, error) {
	rows, err := q.Query(ctx, pendingScheduledSQL, accountID)
	if err != nil {
		return nil, fmt.Errorf("read scheduled changes: %w", err)
	}
	return pgx.CollectRows(rows, scanScheduled)
}

// ScheduledChanges lists an account's scheduled changes, pending first,
// then the last 100 applied or cancelled.
func (s *Service) ScheduledChanges(ctx context.Context, accountID string) ([]ScheduledChange, error) {
	if _, err := s.Account(ctx, accountID); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+scheduledCols+` FROM scheduled_changes WHERE account_id = $1
		ORDER BY state <> 'pending', effective_at DESC, created_at DESC LIMIT 100`, accountID)
	if err != nil {
		return nil, fmt.Errorf("read scheduled changes: %w", err)
	}
	return pgx.CollectRows(rows, scanScheduled)
}

// PendingScheduled lists an account's pending scheduled changes (the
// billing summary shows them).
func (s *Service) PendingScheduled(ctx context.Context, accountID string) ([]ScheduledChange, error) {
	return s.scheduledOf(ctx, s.pool, accountID)
}

// CancelScheduled cancels a pending scheduled change: nothing will change
// at the period end, and numbers it would have released stay the account's.
func (s *Service) CancelScheduled(ctx context.Context, actor, accountID, id string) (ScheduledChange, error) {
	now := s.clock.Now()
	var sc ScheduledChange
	if uuid.Validate(id) != nil {
		return sc, fault.New(fault.NotFound, "", "scheduled change not found")
	}
	err := store.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := lockAccount(ctx, tx, accountID); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `UPDATE scheduled_changes SET state = 'cancelled', done_at = $3
			WHERE id = $1 AND account_id = $2 AND state = 'pending' RETURNING `+scheduledCols, id, accountID, now)
		if err != nil {
			return fmt.Errorf("cancel scheduled change: %w", err)
		}
		sc, err = pgx.CollectExactlyOneRow(rows, scanScheduled)
		if errors.Is(err, pgx.ErrNoRows) {
			var state string
			if tx.QueryRow(ctx, `SELECT state FROM scheduled_changes WHERE id = $1 AND account_id = $2`, id, accountID).Scan(&state) == nil {
				return fault.New(fault.Conflict, "", "the scheduled change is %s already", state)
			}
			return fault.New(fault.NotFound, "", "scheduled change not found")
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE numbers SET state = CASE WHEN line_id IS NULL THEN 'reserved' ELSE 'assigned' END, updated_at = $3
			WHERE e164 = ANY($1) AND account_id = $2 AND state = 'removal_requested'`, sc.ReleaseNumbers, accountID, now); err != nil {
			return fmt.Errorf("keep numbers: %w", err)
		}
		return audit(ctx, tx, now, actor, accountID, "change.schedule.cancel", id, map[string]any{"package": sc.Package, "to": sc.To})
	})
	return sc, err
}

// ApplyScheduledChanges applies every pending scheduled change whose time
// has come, each in its own transaction. The renewal job calls it just
// before renewing, so the renewal bills the new quantities. Safe to run
// concurrently and twice: a change is claimed under a row lock and applied
// once.
func (s *Service) ApplyScheduledChanges(ctx context.Context, now time.Time) (int, error) {
	return s.applyDueScheduled(ctx, now, "")
}

// applyDueScheduled is ApplyScheduledChanges for one account, or for all
// when accountID is "".
func (s *Service) applyDueScheduled(ctx context.Context, now time.Time, accountID string) (int, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM scheduled_changes WHERE state = 'pending' AND effective_at <= $1
		AND ($2 = '' OR account_id::text = $2) ORDER BY effective_at, id`, now, accountID)
	if err != nil {
		return 0, fmt.Errorf("list due scheduled changes: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("list due scheduled changes: %w", err)
	}
	n := 0
	var errs []error
	for _, id := range ids {
		applied, err := s.applyScheduled(ctx, id, now)
		if err != nil {
			s.log.Error("apply scheduled change", "id", id, "err", err)
			errs = append(errs, fmt.Errorf("scheduled change %s: %w", id, err))
			continue
		}
		if applied {
			n++
		}
	}
	return n, errors.Join(errs...)
}

func (s *Service) applyScheduled(ctx context.Context, id string, now time.Time) (bool, error) {
	applied := false
	err := store.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		var accountID, subID, pkg string
		var from, to int
		var named, release []string
		err := tx.QueryRow(ctx, `SELECT account_id, subscription_id, package_code, from_quantity, to_quantity, remove_lines, release_numbers
			FROM scheduled_changes WHERE id = $1 AND state = 'pending' FOR UPDATE SKIP LOCKED`, id).
			Scan(&accountID, &subID, &pkg, &from, &to, &named, &release)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // applied or cancelled meanwhile, or being applied
		}
		if err != nil {
			return err
		}
		if _, err := lockAccount(ctx, tx, accountID); err != nil {
			return err
		}
		// The decrease removes as many seats as it said: seats bought since
		// it was scheduled stay.
		var qty int
		if err := tx.QueryRow(ctx, `SELECT quantity FROM subscriptions WHERE id = $1 FOR UPDATE`, subID).Scan(&qty); err != nil {
			return fmt.Errorf("read subscription: %w", err)
		}
		to = max(qty-(from-to), 0)
		lines, err := liveLines(ctx, tx, accountID)
		if err != nil {
			return err
		}
		var removed []LineRef
		if need := countLines(lines, pkg) - to; need > 0 {
			var keepNamed []lineRow
			for _, lid := range named {
				if l, ok := lines[lid]; ok && l.Package == pkg && len(keepNamed) < need {
					keepNamed = append(keepNamed, l)
				}
			}
			for _, l := range chooseRemovals(lines, pkg, keepNamed, need, nil) {
				if _, err := tx.Exec(ctx, `UPDATE lines SET state = 'deleted', deleted_at = $2, revision = revision + 1, changed_at = $2 WHERE id = $1`, l.ID, now); err != nil {
					return fmt.Errorf("remove line: %w", err)
				}
				if _, err := tx.Exec(ctx, `DELETE FROM device_lines WHERE line_id = $1`, l.ID); err != nil {
					return fmt.Errorf("unbind removed line: %w", err)
				}
				removed = append(removed, LineRef{ID: l.ID, Extension: l.Extension, Package: l.Package})
			}
		}
		p := &plan{acct: Account{ID: accountID}}
		for _, e := range release {
			p.numbers = append(p.numbers, NumberLine{Action: "release", Number: e, Quantity: 1, Addon: pkg})
		}
		_, freed, err := s.applyNumbers(ctx, tx, p, id, removed, now)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE subscriptions SET quantity = $2, version = version + 1 WHERE id = $1`, subID, to); err != nil {
			return fmt.Errorf("lower quantity: %w", err)
		}
		result, _ := json.Marshal(map[string]any{"lines_removed": lineRefsOf(removed), "numbers_released": freed})
		if _, err := tx.Exec(ctx, `UPDATE scheduled_changes SET state = 'applied', done_at = $2, result = $3 WHERE id = $1`, id, now, result); err != nil {
			return err
		}
		if err := audit(ctx, tx, now, "system", accountID, "change.schedule.apply", id, map[string]any{
			"package": pkg, "to": to, "lines_removed": lineRefsOf(removed), "numbers_released": freed}); err != nil {
			return err
		}
		applied = true
		return notifyLines(ctx, tx)
	})
	return applied, err
}

func lineRefsOf(ls []LineRef) []LineRef {
	if ls == nil {
		return []LineRef{}
	}
	return ls
}
