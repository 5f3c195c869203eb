// Package sippg stores the built-in registrar's bindings in PostgreSQL
// (table sip_bindings, migration 00003). It implements sip.BindingStore.
package sippg

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pbxd/pbxd/sip"
)

// Store is a sip.BindingStore on a pgx pool.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a Store using pool (which the caller owns and closes).
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

var _ sip.BindingStore = (*Store)(nil)

const loadBindings = `
SELECT line_id::text, contact_uri, source, user_agent, call_id, cseq, expires_at, updated_at
FROM sip_bindings
ORDER BY line_id, contact_uri`

// LoadBindings implements sip.BindingStore.
func (s *Store) LoadBindings(ctx context.Context) ([]sip.Binding, error) {
	rows, err := s.pool.Query(ctx, loadBindings)
	if err != nil {
		return nil, fmt.Errorf("load sip bindings: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (sip.Binding, error) {
		var b sip.Binding
		var cseq int64
		err := row.Scan(&b.LineID, &b.ContactURI, &b.Source, &b.UserAgent, &b.CallID, &cseq, &b.ExpiresAt, &b.UpdatedAt)
		b.CSeq = uint32(cseq)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("load sip bindings: %w", err)
	}
	return out, nil
}

const saveBinding = `
INSERT INTO sip_bindings (line_id, contact_uri, source, user_agent, call_id, cseq, expires_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (line_id, contact_uri) DO UPDATE SET
    source = EXCLUDED.source,
    user_agent = EXCLUDED.user_agent,
    call_id = EXCLUDED.call_id,
    cseq = EXCLUDED.cseq,
    expires_at = EXCLUDED.expires_at,
    updated_at = EXCLUDED.updated_at`

// SaveBinding implements sip.BindingStore (an upsert).
func (s *Store) SaveBinding(ctx context.Context, b sip.Binding) error {
	_, err := s.pool.Exec(ctx, saveBinding, b.LineID, b.ContactURI, b.Source, b.UserAgent, b.CallID,
		int64(b.CSeq), b.ExpiresAt, b.UpdatedAt)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && strings.HasPrefix(pe.Code, "22") {
			// Data exception (invalid UTF-8, NUL, too long): retrying
			// cannot help.
			return fmt.Errorf("save sip binding: %w: %w", sip.ErrBindingRejected, err)
		}
		return fmt.Errorf("save sip binding: %w", err)
	}
	return nil
}

const deleteBinding = `DELETE FROM sip_bindings WHERE line_id = $1 AND contact_uri = $2`

// DeleteBinding implements sip.BindingStore.
func (s *Store) DeleteBinding(ctx context.Context, lineID, contactURI string) error {
	if _, err := s.pool.Exec(ctx, deleteBinding, lineID, contactURI); err != nil {
		return fmt.Errorf("delete sip binding: %w", err)
	}
	return nil
}

const deleteLine = `DELETE FROM sip_bindings WHERE line_id = $1`

// DeleteLine implements sip.BindingStore.
func (s *Store) DeleteLine(ctx context.Context, lineID string) error {
	if _, err := s.pool.Exec(ctx, deleteLine, lineID); err != nil {
		return fmt.Errorf("delete sip bindings of line: %w", err)
	}
	return nil
}
