package billing

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/billdb"
)

// PGSandboxLedger keeps a sandbox gateway's ledger in the sandbox_charges
// table, written in statements of its own (never in a billing
// transaction): the sandbox then behaves like a remote gateway whose
// records survive a crash of pbxd.
func PGSandboxLedger(pool *pgxpool.Pool) SandboxLedger {
	return pgLedger{pool: pool, q: billdb.New(store.NewDB(pool))}
}

type pgLedger struct {
	pool *pgxpool.Pool // Put's one-round-trip batch
	q    *billdb.Queries
}

func (l pgLedger) Put(ctx context.Context, key string, e SandboxEntry) (SandboxEntry, error) {
	// Insert, or read what the key already holds, in one statement, in a
	// transaction sent in one round trip with an asynchronous commit: the
	// ledger stands for a remote gateway, whose durability is its own.
	var out SandboxEntry
	var cur string
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SET LOCAL synchronous_commit = off")
	b.Queue(`WITH ins AS (
			INSERT INTO sandbox_charges (idempotency_key, token, amount_minor, currency, outcome, reference)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (idempotency_key) DO NOTHING
			RETURNING token, amount_minor, currency, outcome, reference, refunded)
		SELECT * FROM ins UNION ALL
		SELECT token, amount_minor, currency, outcome, reference, refunded FROM sandbox_charges WHERE idempotency_key = $1 AND NOT EXISTS (SELECT 1 FROM ins)`,
		key, e.Token, e.Amount.Minor, currencyOrXXX(e.Amount.Currency), e.Outcome, e.Reference).
		QueryRow(func(row pgx.Row) error {
			return row.Scan(&out.Token, &out.Amount.Minor, &cur, &out.Outcome, &out.Reference, &out.Refunded)
		})
	b.Queue("COMMIT")
	if err := l.pool.SendBatch(ctx, b).Close(); err != nil {
		return SandboxEntry{}, fmt.Errorf("sandbox ledger put: %w", err)
	}
	out.Amount.Currency = Currency(cur)
	return out, nil
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
