package provisioning

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// accountState is what a change order is planned from: the account, the
// catalog, the account's subscriptions, live lines and pending scheduled
// changes, and which add-ons bill numbers. readState reads it in one round
// trip (preview and both confirm steps plan from it).
type accountState struct {
	acct         Account
	found        bool
	pkgs         map[string]Package
	subs         map[string]*subscription
	lines        map[string]lineRow
	scheduled    []ScheduledChange
	numberAddons map[string]bool
}

// numberAddonsSQL lists the add-ons that numbers are sold under (their
// quantity follows the numbers held).
const numberAddonsSQL = `SELECT p.code FROM packages p WHERE EXISTS (SELECT 1 FROM numbers n WHERE n.addon_code = p.code)`

// readState reads accountID's state in tx as one pipelined batch; lock
// takes the account row lock first, as lockAccount does. more queues the
// caller's own statements right after the account row (under the lock).
func readState(ctx context.Context, tx pgx.Tx, accountID string, lock bool, more func(*pgx.Batch)) (*accountState, error) {
	st := &accountState{}
	b := &pgx.Batch{}
	acctSQL := accountByIDSQL
	if lock {
		acctSQL = lockAccountSQL
	}
	b.Queue(acctSQL, accountID).QueryRow(func(row pgx.Row) error {
		var err error
		st.acct, err = scanAccount(row)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		st.found = err == nil
		return err
	})
	if more != nil {
		more(b)
	}
	b.Queue(packagesSQL).Query(func(rows pgx.Rows) error {
		list, err := pgx.CollectRows(rows, scanPackage)
		st.pkgs = make(map[string]Package, len(list))
		for _, p := range list {
			st.pkgs[p.Code] = p
		}
		return err
	})
	b.Queue(subscriptionsSQL, accountID).Query(func(rows pgx.Rows) error {
		var err error
		st.subs, err = collectSubscriptions(rows)
		return err
	})
	b.Queue(liveLinesSQL, accountID).Query(func(rows pgx.Rows) error {
		var err error
		st.lines, err = collectLines(rows)
		return err
	})
	b.Queue(pendingScheduledSQL, accountID).Query(func(rows pgx.Rows) error {
		var err error
		st.scheduled, err = pgx.CollectRows(rows, scanScheduled)
		return err
	})
	b.Queue(numberAddonsSQL).Query(func(rows pgx.Rows) error {
		codes, err := pgx.CollectRows(rows, pgx.RowTo[string])
		st.numberAddons = make(map[string]bool, len(codes))
		for _, c := range codes {
			st.numberAddons[c] = true
		}
		return err
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("read account state: %w", err)
	}
	return st, nil
}
