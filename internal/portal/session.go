package portal

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pbxd/pbxd/internal/users"
)

// session is a signed-in browser: an account user, or the operator.
type session struct {
	tokenHash []byte
	User      users.User // zero for the operator
	Operator  bool
	CSRF      string
	Expires   time.Time
}

// sessions are kept in PostgreSQL (only a SHA-256 of the cookie value), so
// several pbxd instances behind one address share them and a restart signs
// nobody out.
type sessions struct {
	pool *pgxpool.Pool
	ttl  time.Duration
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// create stores a new session and returns the cookie value. userID empty is
// the operator.
func (s *sessions) create(ctx context.Context, userID string, now time.Time) (string, error) {
	tok := randomToken()
	var uid any
	if userID != "" {
		uid = userID
	}
	// Expired sessions are swept as new ones start: no job needed.
	if _, err := s.pool.Exec(ctx, `DELETE FROM portal_sessions WHERE expires_at < $1`, now); err != nil {
		return "", fmt.Errorf("sweep sessions: %w", err)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO portal_sessions (token_sha256, user_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		hashToken(tok), uid, randomToken(), now, now.Add(s.ttl))
	if err != nil {
		return "", fmt.Errorf("create session: %w", err)
	}
	return tok, nil
}

// lookup returns the live session of a cookie value.
func (s *sessions) lookup(ctx context.Context, tok string, now time.Time) (*session, bool, error) {
	if tok == "" {
		return nil, false, nil
	}
	ss := &session{tokenHash: hashToken(tok)}
	var sessionUser, uid, acct, email, name, role, locale *string
	err := s.pool.QueryRow(ctx, `SELECT s.csrf, s.expires_at, s.user_id, u.id, u.account_id, u.email, u.name, u.role, u.locale
		FROM portal_sessions s LEFT JOIN account_users u ON u.id = s.user_id AND u.deleted_at IS NULL
		WHERE s.token_sha256 = $1`, ss.tokenHash).Scan(&ss.CSRF, &ss.Expires, &sessionUser, &uid, &acct, &email, &name, &role, &locale)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read session: %w", err)
	}
	if !now.Before(ss.Expires) {
		return nil, false, nil
	}
	switch {
	case sessionUser == nil:
		ss.Operator = true
	case uid == nil:
		return nil, false, nil // the user was removed: the session is void
	default:
		ss.User = users.User{ID: *uid, AccountID: *acct, Email: *email, Name: *name, Role: *role, Locale: *locale}
	}
	return ss, true, nil
}

func (s *sessions) end(ctx context.Context, ss *session) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM portal_sessions WHERE token_sha256 = $1`, ss.tokenHash)
	return err
}

// throttle limits failed sign-ins per source address and per email. Both
// keys answer the same way whether the email exists or not, so throttling
// tells nothing about which accounts exist. It is per instance (in memory):
// with N instances an attacker gets at most N times the budget.
type throttle struct {
	max    int
	window time.Duration
	mu     sync.Mutex
	fails  map[string][]time.Time
}

func newThrottle(max int, window time.Duration) *throttle {
	return &throttle{max: max, window: window, fails: map[string][]time.Time{}}
}

// blocked reports whether key had max failures within the window.
func (t *throttle) blocked(key string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.recent(key, now)) >= t.max
}

func (t *throttle) fail(key string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.fails) > 100_000 { // bounded memory under a spray of keys
		clear(t.fails)
	}
	t.fails[key] = append(t.recent(key, now), now)
}

func (t *throttle) reset(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.fails, key)
}

// recent drops failures older than the window (t.mu held).
func (t *throttle) recent(key string, now time.Time) []time.Time {
	list := t.fails[key]
	i := 0
	for i < len(list) && now.Sub(list[i]) >= t.window {
		i++
	}
	list = list[i:]
	if len(list) == 0 {
		delete(t.fails, key)
		return nil
	}
	t.fails[key] = list
	return list
}
