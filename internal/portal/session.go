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

	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/userdb"
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
	q   *userdb.Queries
	ttl time.Duration
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
	var uid *string
	if userID != "" {
		uid = &userID
	}
	// Expired sessions are swept as new ones start: no job needed.
	if err := s.q.SweepSessions(ctx, now); err != nil {
		return "", fmt.Errorf("sweep sessions: %w", err)
	}
	err := s.q.InsertSession(ctx, userdb.InsertSessionParams{TokenSha256: hashToken(tok), UserID: uid, Csrf: randomToken(),
		CreatedAt: now, ExpiresAt: now.Add(s.ttl)})
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
	r, err := s.q.GetSession(ctx, ss.tokenHash)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read session: %w", err)
	}
	ss.CSRF, ss.Expires = r.Csrf, r.ExpiresAt
	if !now.Before(ss.Expires) {
		return nil, false, nil
	}
	switch {
	case r.UserID == nil:
		ss.Operator = true
	case r.ID == nil:
		return nil, false, nil // the user was removed: the session is void
	default:
		ss.User = users.User{ID: *r.ID, AccountID: *r.AccountID, Email: *r.Email, Name: *r.Name, Role: *r.Role, Locale: *r.Locale}
	}
	return ss, true, nil
}

func (s *sessions) end(ctx context.Context, ss *session) error {
	return s.q.EndSession(ctx, ss.tokenHash)
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
