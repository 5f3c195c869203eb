package provisioning

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/provdb"
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

func lineRefs(ls []lineRow) []LineRef {
	out := make([]LineRef, 0, len(ls))
	for _, l := range ls {
		out = append(out, LineRef{ID: l.ID, Extension: l.Extension, Package: l.Package})
	}
	return out
}

// applySchedule records the plan's period-end decreases, in the change's
// transaction; it returns their ids.
func (s *Service) applySchedule(ctx context.Context, tx *store.Tx, p *plan, changeID string, now time.Time) ([]string, error) {
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
		namedJS, _ := json.Marshal(named)     // a []string always marshals
		releaseJS, _ := json.Marshal(release) // a []string always marshals
		err := provdb.New(tx).InsertScheduled(ctx, provdb.InsertScheduledParams{ID: id, AccountID: p.acct.ID, SubscriptionID: it.sub.ID,
			PackageCode: it.pkg.Code, FromQuantity: int32(it.from), ToQuantity: int32(it.to), RemoveLines: namedJS,
			ReleaseNumbers: releaseJS, EffectiveAt: it.effectiveAt, ChangeID: changeID, CreatedAt: now})
		if store.IsUniqueViolation(err, "") {
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

// pendingScheduledSQL lists an account's pending scheduled changes, for
// the pipelined state read.
const pendingScheduledSQL = provdb.PendingScheduledSQL

// scheduledFromRow is a stored scheduled change as the domain sees it.
func scheduledFromRow(r provdb.ScheduledChange) (ScheduledChange, error) {
	sc := ScheduledChange{ID: r.ID, Package: r.PackageCode, From: int(r.FromQuantity), To: int(r.ToQuantity),
		EffectiveAt: r.EffectiveAt, State: r.State, ChangeID: r.ChangeID, CreatedAt: r.CreatedAt, DoneAt: r.DoneAt}
	if err := json.Unmarshal(r.RemoveLines, &sc.RemoveLines); err != nil {
		return ScheduledChange{}, fmt.Errorf("scheduled change %s remove_lines: %w", r.ID, err)
	}
	if err := json.Unmarshal(r.ReleaseNumbers, &sc.ReleaseNumbers); err != nil {
		return ScheduledChange{}, fmt.Errorf("scheduled change %s release_numbers: %w", r.ID, err)
	}
	return sc, nil
}

// scheduledFromRows converts a list of stored scheduled changes.
func scheduledFromRows(rows []provdb.ScheduledChange) ([]ScheduledChange, error) {
	out := make([]ScheduledChange, 0, len(rows))
	for _, r := range rows {
		sc, err := scheduledFromRow(r)
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, nil
}

// ScheduledChanges lists an account's scheduled changes, pending first,
// then the last 100 applied or cancelled.
func (s *Service) ScheduledChanges(ctx context.Context, accountID string) ([]ScheduledChange, error) {
	if _, err := s.Account(ctx, accountID); err != nil {
		return nil, err
	}
	rows, err := s.q.RecentScheduled(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("read scheduled changes: %w", err)
	}
	return scheduledFromRows(rows)
}

// PendingScheduled lists an account's pending scheduled changes (the
// billing summary shows them).
func (s *Service) PendingScheduled(ctx context.Context, accountID string) ([]ScheduledChange, error) {
	rows, err := s.q.PendingScheduled(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("read scheduled changes: %w", err)
	}
	return scheduledFromRows(rows)
}

// CancelScheduled cancels a pending scheduled change: nothing will change
// at the period end, and numbers it would have released stay the account's.
func (s *Service) CancelScheduled(ctx context.Context, actor, accountID, id string) (ScheduledChange, error) {
	now := s.clock.Now()
	var sc ScheduledChange
	if uuid.Validate(id) != nil {
		return sc, fault.New(fault.NotFound, "", "scheduled change not found")
	}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := s.lockAccount(ctx, tx, accountID); err != nil {
			return err
		}
		q := provdb.New(tx)
		row, err := q.CancelScheduled(ctx, provdb.CancelScheduledParams{ID: id, AccountID: accountID, DoneAt: &now})
		if errors.Is(err, store.ErrNotFound) {
			if state, err := q.ScheduledState(ctx, provdb.ScheduledStateParams{ID: id, AccountID: accountID}); err == nil {
				return fault.New(fault.Conflict, "", "the scheduled change is %s already", state)
			}
			return fault.New(fault.NotFound, "", "scheduled change not found")
		}
		if err != nil {
			return fmt.Errorf("cancel scheduled change: %w", err)
		}
		if sc, err = scheduledFromRow(row); err != nil {
			return err
		}
		if err := q.UnmarkNumbersForRemoval(ctx, provdb.UnmarkNumbersForRemovalParams{Numbers: sc.ReleaseNumbers, AccountID: &accountID, UpdatedAt: now}); err != nil {
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
	ids, err := s.q.DueScheduled(ctx, provdb.DueScheduledParams{Now: now, AccountID: accountID})
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
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		q := provdb.New(tx)
		c, err := q.ClaimScheduled(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil // applied or cancelled meanwhile, or being applied
		}
		if err != nil {
			return err
		}
		accountID, subID, pkg, from, to := c.AccountID, c.SubscriptionID, c.PackageCode, int(c.FromQuantity), int(c.ToQuantity)
		var named, release []string
		if err := json.Unmarshal(c.RemoveLines, &named); err != nil {
			return fmt.Errorf("scheduled change remove_lines: %w", err)
		}
		if err := json.Unmarshal(c.ReleaseNumbers, &release); err != nil {
			return fmt.Errorf("scheduled change release_numbers: %w", err)
		}
		if _, err := s.lockAccount(ctx, tx, accountID); err != nil {
			return err
		}
		// The decrease removes as many seats as it said: seats bought since
		// it was scheduled stay.
		qty, err := q.LockSubscriptionQuantity(ctx, subID)
		if err != nil {
			return fmt.Errorf("read subscription: %w", err)
		}
		to = max(int(qty)-(from-to), 0)
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
				if err := q.DeleteLine(ctx, provdb.DeleteLineParams{ID: l.ID, Now: &now}); err != nil {
					return fmt.Errorf("remove line: %w", err)
				}
				if err := q.UnbindLine(ctx, l.ID); err != nil {
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
		if s.subs == nil {
			return errors.New("provisioning: no subscription writer configured")
		}
		if err := s.subs.SaveSubscription(ctx, tx, SubscriptionWrite{ID: subID, AccountID: accountID, Package: pkg, Quantity: to}); err != nil {
			return fmt.Errorf("lower quantity: %w", err)
		}
		result, _ := json.Marshal(map[string]any{"lines_removed": lineRefsOf(removed), "numbers_released": freed})
		if err := q.MarkScheduledApplied(ctx, provdb.MarkScheduledAppliedParams{ID: id, DoneAt: &now, Result: result}); err != nil {
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
