package billing

import (
	"context"
	"errors"
	"fmt"

	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/billdb"
)

// PGSandboxLedger keeps a sandbox gateway's ledger in the sandbox_charges
// table, written in statements of its own (never in a billing
// transaction): the sandbox then behaves like a remote gateway whose
// records survive a crash of pbxd.
func PGSandboxLedger(db *store.DB) SandboxLedger {
	return pgLedger{db: db, q: billdb.New(db)}
}

type pgLedger struct {
	db *store.DB // Put's one-round-trip batch
	q  *billdb.Queries
}

func (l pgLedger) Put(ctx context.Context, key string, e SandboxEntry) (SandboxEntry, error) {
	// Insert, or read what the key already holds, in one statement, in a
	// transaction sent in one round trip with an asynchronous commit: the
	// ledger stands for a remote gateway, whose durability is its own.
	var r billdb.PutSandboxChargeRow
	b := &store.Batch{}
	b.Queue("BEGIN")
	b.Queue("SET LOCAL synchronous_commit = off")
	store.QueryOne(b.Queue(billdb.PutSandboxChargeSQL, key, e.Token, e.Amount.Minor, currencyOrXXX(e.Amount.Currency), e.Outcome, e.Reference), &r)
	b.Queue("COMMIT")
	if err := l.db.SendBatch(ctx, b); err != nil {
		return SandboxEntry{}, fmt.Errorf("sandbox ledger put: %w", err)
	}
	return SandboxEntry{Token: r.Token, Amount: Money{Minor: r.AmountMinor, Currency: Currency(r.Currency)},
		Outcome: r.Outcome, Reference: r.Reference, Refunded: r.Refunded}, nil
}

func currencyOrXXX(c Currency) string {
	if c == "" {
		return "XXX" // ISO 4217: no currency (a voided key)
	}
	return string(c)
}

func (l pgLedger) Get(ctx context.Context, key string) (SandboxEntry, bool, error) {
	r, err := l.q.SandboxCharge(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return SandboxEntry{}, false, nil
	}
	if err != nil {
		return SandboxEntry{}, false, fmt.Errorf("sandbox ledger get: %w", err)
	}
	return SandboxEntry{
		Token:     r.Token,
		Amount:    Money{Minor: r.AmountMinor, Currency: Currency(r.Currency)},
		Outcome:   r.Outcome,
		Reference: r.Reference,
		Refunded:  r.Refunded,
	}, true, nil
}

func (l pgLedger) MarkRefunded(ctx context.Context, key string) error {
	if err := l.q.MarkSandboxRefunded(ctx, key); err != nil {
		return fmt.Errorf("sandbox ledger refund: %w", err)
	}
	return nil
}
