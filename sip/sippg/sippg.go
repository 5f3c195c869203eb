// Package sippg stores the built-in registrar's bindings in PostgreSQL
// (table sip_bindings, migration 00003). It implements sip.BindingStore.
package sippg

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

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

// upsert ends the INSERTs of saveBinding and saveBindings.
const upsert = `
ON CONFLICT (line_id, contact_uri) DO UPDATE SET
    source = EXCLUDED.source,
    user_agent = EXCLUDED.user_agent,
    call_id = EXCLUDED.call_id,
    cseq = EXCLUDED.cseq,
    expires_at = EXCLUDED.expires_at,
    updated_at = EXCLUDED.updated_at`

const saveBinding = `
INSERT INTO sip_bindings (line_id, contact_uri, source, user_agent, call_id, cseq, expires_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)` + upsert

// SaveBinding implements sip.BindingStore (an upsert).
func (s *Store) SaveBinding(ctx context.Context, b sip.Binding) error {
	_, err := s.pool.Exec(ctx, saveBinding, b.LineID, b.ContactURI, b.Source, b.UserAgent, b.CallID,
		int64(b.CSeq), b.ExpiresAt, b.UpdatedAt)
	if err != nil {
		return saveError("save sip binding", err)
	}
	return nil
}

const saveBindings = `
INSERT INTO sip_bindings (line_id, contact_uri, source, user_agent, call_id, cseq, expires_at, updated_at)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::timestamptz[], $8::timestamptz[])` + upsert

// SaveBindings upserts many bindings in one statement (one round trip,
// one commit: a burst of registrations is persisted at thousands of rows
// per commit instead of one). bs must not name a (line, contact) twice.
// A row PostgreSQL refuses fails the whole statement with
// sip.ErrBindingRejected; the caller then saves one by one.
func (s *Store) SaveBindings(ctx context.Context, bs []sip.Binding) error {
	if len(bs) == 0 {
		return nil
	}
	lines, uris, srcs, uas, callIDs := make([]string, len(bs)), make([]string, len(bs)), make([]string, len(bs)), make([]string, len(bs)), make([]string, len(bs))
	cseqs := make([]int64, len(bs))
	exp, upd := make([]time.Time, len(bs)), make([]time.Time, len(bs))
	for i, b := range bs {
		lines[i], uris[i], srcs[i], uas[i], callIDs[i] = b.LineID, b.ContactURI, b.Source, b.UserAgent, b.CallID
		cseqs[i], exp[i], upd[i] = int64(b.CSeq), b.ExpiresAt, b.UpdatedAt
	}
	if _, err := s.pool.Exec(ctx, saveBindings, lines, uris, srcs, uas, callIDs, cseqs, exp, upd); err != nil {
		return saveError("save sip bindings", err)
	}
	return nil
}

// saveError wraps err, marking data exceptions (class 22: invalid UTF-8,
// NUL, too long) as rejected for good: retrying cannot help.
func saveError(what string, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && strings.HasPrefix(pe.Code, "22") {
		return fmt.Errorf("%s: %w: %w", what, sip.ErrBindingRejected, err)
	}
	return fmt.Errorf("%s: %w", what, err)
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
