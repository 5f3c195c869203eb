// Package sippg stores the built-in registrar's bindings in PostgreSQL
// (table sip_bindings, migrations 00003 and 00029). It implements
// sip.SharedStore: several pbxd instances on one database share the
// bindings, each write notifying the others (LISTEN/NOTIFY on channel
// pbxd_sip_bindings, payload "origin\nline,line,...").
package sippg

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pbxd/pbxd/sip"
)

// Store is a sip.SharedStore on a pgx pool.
type Store struct {
	pool *pgxpool.Pool
	// origin names this Store in its notifications, so that Watch skips
	// its own writes.
	origin string
}

// New returns a Store using pool (which the caller owns and closes).
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool, origin: rand.Text()} }

var _ sip.SharedStore = (*Store)(nil)

// Channel is the notification channel of binding changes.
const Channel = "pbxd_sip_bindings"

const bindingColumns = `line_id::text, contact_uri, params, source, user_agent, call_id, cseq, expires_at, updated_at`

func scanBindings(rows pgx.Rows) ([]sip.Binding, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (sip.Binding, error) {
		var b sip.Binding
		var cseq int64
		err := row.Scan(&b.LineID, &b.ContactURI, &b.Params, &b.Source, &b.UserAgent, &b.CallID, &cseq, &b.ExpiresAt, &b.UpdatedAt)
		b.CSeq = uint32(cseq)
		return b, err
	})
}

// LoadBindings implements sip.BindingStore.
func (s *Store) LoadBindings(ctx context.Context) ([]sip.Binding, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+bindingColumns+` FROM sip_bindings ORDER BY line_id, contact_uri`)
	if err != nil {
		return nil, fmt.Errorf("load sip bindings: %w", err)
	}
	out, err := scanBindings(rows)
	if err != nil {
		return nil, fmt.Errorf("load sip bindings: %w", err)
	}
	return out, nil
}

// LoadLines implements sip.SharedStore.
func (s *Store) LoadLines(ctx context.Context, lineIDs []string) ([]sip.Binding, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+bindingColumns+` FROM sip_bindings WHERE line_id = ANY($1::uuid[]) ORDER BY line_id, contact_uri`, lineIDs)
	if err != nil {
		return nil, fmt.Errorf("load sip bindings of lines: %w", err)
	}
	out, err := scanBindings(rows)
	if err != nil {
		return nil, fmt.Errorf("load sip bindings of lines: %w", err)
	}
	return out, nil
}

// ExpireBindings implements sip.SharedStore. The DELETE is atomic, so of
// several instances sweeping at once each row is returned to one.
func (s *Store) ExpireBindings(ctx context.Context, now time.Time) ([]sip.Binding, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("expire sip bindings: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit: a no-op
	rows, err := tx.Query(ctx, `DELETE FROM sip_bindings WHERE expires_at <= $1 RETURNING `+bindingColumns, now)
	if err != nil {
		return nil, fmt.Errorf("expire sip bindings: %w", err)
	}
	gone, err := scanBindings(rows)
	if err != nil {
		return nil, fmt.Errorf("expire sip bindings: %w", err)
	}
	ids := make([]string, len(gone))
	for i, b := range gone {
		ids[i] = b.LineID
	}
	b := &pgx.Batch{}
	s.queueNotify(b, ids)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("expire sip bindings: notify: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("expire sip bindings: %w", err)
	}
	return gone, nil
}

// maxPayload keeps a notification under PostgreSQL's 8000-byte limit.
const maxPayload = 7900

// queueNotify queues the notifications naming the changed lines (each
// once), in as few payloads as fit.
func (s *Store) queueNotify(b *pgx.Batch, lineIDs []string) {
	seen := make(map[string]bool, len(lineIDs))
	var p strings.Builder
	flush := func() {
		if p.Len() > len(s.origin)+1 {
			b.Queue(`SELECT pg_notify($1, $2)`, Channel, p.String())
		}
		p.Reset()
		p.WriteString(s.origin)
		p.WriteByte('\n')
	}
	flush()
	for _, id := range lineIDs {
		if seen[id] {
			continue
		}
		seen[id] = true
		if p.Len()+len(id)+1 > maxPayload {
			flush()
		}
		if p.Len() > len(s.origin)+1 {
			p.WriteByte(',')
		}
		p.WriteString(id)
	}
	flush()
}

// exec runs the write and its notification in one implicit transaction
// (one round trip).
func (s *Store) exec(ctx context.Context, lineIDs []string, sql string, args ...any) error {
	b := &pgx.Batch{}
	b.Queue(sql, args...)
	s.queueNotify(b, lineIDs)
	return s.pool.SendBatch(ctx, b).Close()
}

// Watch implements sip.SharedStore on a connection of its own, LISTENing.
func (s *Store) Watch(ctx context.Context, changed func(lineIDs []string)) error {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("watch sip bindings: %w", err)
	}
	// LISTENing: this connection never goes back to the pool.
	conn := pc.Hijack()
	defer conn.Close(context.WithoutCancel(ctx)) //nolint:errcheck
	if _, err := conn.Exec(ctx, `LISTEN `+Channel); err != nil {
		return fmt.Errorf("watch sip bindings: %w", err)
	}
	changed(nil)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("watch sip bindings: %w", err)
		}
		origin, ids, ok := strings.Cut(n.Payload, "\n")
		if !ok || origin == s.origin || ids == "" {
			continue
		}
		changed(strings.Split(ids, ","))
	}
}

// upsert ends the INSERTs of saveBinding and saveBindings.
const upsert = `
ON CONFLICT (line_id, contact_uri) DO UPDATE SET
    params = EXCLUDED.params,
    source = EXCLUDED.source,
    user_agent = EXCLUDED.user_agent,
    call_id = EXCLUDED.call_id,
    cseq = EXCLUDED.cseq,
    expires_at = EXCLUDED.expires_at,
    updated_at = EXCLUDED.updated_at`

const saveBinding = `
INSERT INTO sip_bindings (line_id, contact_uri, source, user_agent, call_id, cseq, expires_at, updated_at, params)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)` + upsert

// SaveBinding implements sip.BindingStore (an upsert).
func (s *Store) SaveBinding(ctx context.Context, b sip.Binding) error {
	err := s.exec(ctx, []string{b.LineID}, saveBinding, b.LineID, b.ContactURI, b.Source, b.UserAgent, b.CallID,
		int64(b.CSeq), b.ExpiresAt, b.UpdatedAt, b.Params)
	if err != nil {
		return saveError("save sip binding", err)
	}
	return nil
}

const saveBindings = `
INSERT INTO sip_bindings (line_id, contact_uri, source, user_agent, call_id, cseq, expires_at, updated_at, params)
SELECT u.line::uuid, u.contact, u.source, u.ua, u.call_id, u.cseq, u.expires, u.updated, u.params
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::timestamptz[], $8::timestamptz[], $9::text[])
	AS u(line, contact, source, ua, call_id, cseq, expires, updated, params)` + upsert

// The line ids go as text[] and are cast in the statement: pgx has no
// binary plan from []string to uuid[], and its failed try plus the text
// fallback (an error and a quoted array per batch) were a fifth of the
// registrar's CPU at 10,000 registrations/s.

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
	params := make([]string, len(bs))
	for i, b := range bs {
		lines[i], uris[i], srcs[i], uas[i], callIDs[i] = b.LineID, b.ContactURI, b.Source, b.UserAgent, b.CallID
		cseqs[i], exp[i], upd[i], params[i] = int64(b.CSeq), b.ExpiresAt, b.UpdatedAt, b.Params
	}
	if err := s.exec(ctx, lines, saveBindings, lines, uris, srcs, uas, callIDs, cseqs, exp, upd, params); err != nil {
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
	if err := s.exec(ctx, []string{lineID}, deleteBinding, lineID, contactURI); err != nil {
		return fmt.Errorf("delete sip binding: %w", err)
	}
	return nil
}

const deleteLine = `DELETE FROM sip_bindings WHERE line_id = $1`

// DeleteLine implements sip.BindingStore.
func (s *Store) DeleteLine(ctx context.Context, lineID string) error {
	if err := s.exec(ctx, []string{lineID}, deleteLine, lineID); err != nil {
		return fmt.Errorf("delete sip bindings of line: %w", err)
	}
	return nil
}
