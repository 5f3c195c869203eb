// Package users owns an account's users: the people who sign in to the
// customer portal, their role (owner, admin, member), locale and password.
// Passwords are hashed with argon2id (memory-hard) and never logged.
package users

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"golang.org/x/crypto/argon2"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/userdb"
)

// Roles. Owners and admins buy, change plans and cards; members see their
// own lines only.
const (
	Owner  = "owner"
	Admin  = "admin"
	Member = "member"
)

// MinPassword is the shortest password accepted.
const MinPassword = 10

// User is an account user as the API shows it (never its hash).
type User struct {
	ID        string `json:"id"`
	AccountID string `json:"account_id"`
	Email     string `json:"email"`
	Name      string `json:"name"`
	Role      string `json:"role"`
	Locale    string `json:"locale"`
	// Lines are the line ids a member sees in the portal.
	Lines     []string  `json:"lines"`
	CreatedAt time.Time `json:"created_at"`
}

// CanManage reports whether the user may buy, change plans, cards and users.
func (u User) CanManage() bool { return u.Role == Owner || u.Role == Admin }

// NewUser is what creating a user takes.
type NewUser struct {
	Email    string   `json:"email"`
	Name     string   `json:"name"`
	Role     string   `json:"role"`
	Password string   `json:"password"`
	Locale   string   `json:"locale"`
	Lines    []string `json:"lines"`
}

// Change is a partial update; nil fields stay.
type Change struct {
	Role     *string   `json:"role"`
	Name     *string   `json:"name"`
	Locale   *string   `json:"locale"`
	Password *string   `json:"password"`
	Lines    *[]string `json:"lines"`
}

// Clock gives the time (the daemon's test clock in tests).
type Clock interface{ Now() time.Time }

// Service stores users.
type Service struct {
	db    *store.DB
	q     *userdb.Queries
	clock Clock
	// dummy is verified against when an email is unknown, so a login takes
	// the same time whether the email exists or not.
	dummy string
}

// New returns the service.
func New(db *store.DB, clock Clock) *Service {
	return &Service{db: db, q: userdb.New(db), clock: clock, dummy: Hash("not a password of anyone")}
}

// ByRole is who acts: "operator" (or an account API token), or a user's role.
// An admin may not create, change or remove owners, nor make anyone owner.
type ByRole string

func fromRow(r userdb.GetUserRow) User {
	return User{ID: r.ID, AccountID: r.AccountID, Email: r.Email, Name: r.Name, Role: r.Role, Locale: r.Locale, CreatedAt: r.CreatedAt}
}

// getUser reads a live user of the account; none is fault.NotFound.
func getUser(ctx context.Context, q *userdb.Queries, accountID, id string) (User, error) {
	r, err := q.GetUser(ctx, userdb.GetUserParams{ID: id, AccountID: accountID})
	if errors.Is(err, store.ErrNotFound) {
		return User{}, fault.New(fault.NotFound, "", "user not found")
	}
	if err != nil {
		return User{}, fmt.Errorf("read user: %w", err)
	}
	return fromRow(r), nil
}

func validRole(r string) bool { return r == Owner || r == Admin || r == Member }

func validLocale(l string) bool { return l == "en" || l == "fr" }

func (n *NewUser) validate() error {
	n.Email = strings.TrimSpace(n.Email)
	a, err := mail.ParseAddress(n.Email)
	if err != nil || a.Address != n.Email || len(n.Email) > 254 {
		return fault.New(fault.Invalid, "email", "email must be a plain address like ana@example.com")
	}
	if utf8.RuneCountInString(n.Name) > 200 {
		return fault.New(fault.Invalid, "name", "name is at most 200 characters")
	}
	if !validRole(n.Role) {
		return fault.New(fault.Invalid, "role", "role must be owner, admin or member")
	}
	if n.Locale == "" {
		n.Locale = "en"
	}
	if !validLocale(n.Locale) {
		return fault.New(fault.Invalid, "locale", "locale must be en or fr")
	}
	return checkPassword(n.Password)
}

func checkPassword(p string) error {
	if utf8.RuneCountInString(p) < MinPassword || len(p) > 1024 {
		return fault.New(fault.Invalid, "password", "password must be %d to 1024 characters", MinPassword)
	}
	return nil
}

// Create adds a user to the account. The first owner is the account's
// initial administrative user.
func (s *Service) Create(ctx context.Context, actor string, by ByRole, accountID string, n NewUser) (User, error) {
	if err := n.validate(); err != nil {
		return User{}, err
	}
	if by == Admin && n.Role == Owner {
		return User{}, fault.New(fault.Invalid, "role", "only an owner or the operator may add an owner")
	}
	now := s.clock.Now()
	u := User{ID: uuid.NewString(), AccountID: accountID, Email: n.Email, Name: n.Name, Role: n.Role, Locale: n.Locale, CreatedAt: now}
	hash := Hash(n.Password) // outside the transaction: it takes tens of milliseconds
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		q := userdb.New(tx)
		if err := lockAccount(ctx, q, accountID); err != nil {
			return err
		}
		err := q.InsertUser(ctx, userdb.InsertUserParams{ID: u.ID, AccountID: accountID, Email: u.Email, Name: u.Name, Role: u.Role,
			Locale: u.Locale, PasswordHash: hash, CreatedAt: now})
		if store.IsUniqueViolation(err, "account_users_email") {
			return fault.New(fault.Conflict, "email", "a user with this email already exists")
		}
		if err != nil {
			return fmt.Errorf("insert user: %w", err)
		}
		if err := setLines(ctx, q, accountID, u.ID, n.Lines); err != nil {
			return err
		}
		u.Lines = nonNil(n.Lines)
		return store.Audit(ctx, tx, now, actor, accountID, "user.created", u.ID, map[string]any{"email": u.Email, "role": u.Role})
	})
	return u, err
}

func lockAccount(ctx context.Context, q *userdb.Queries, accountID string) error {
	if uuid.Validate(accountID) != nil {
		return fault.New(fault.NotFound, "", "account not found")
	}
	_, err := q.LockAccount(ctx, accountID)
	if errors.Is(err, store.ErrNotFound) {
		return fault.New(fault.NotFound, "", "account not found")
	}
	if err != nil {
		return fmt.Errorf("lock account: %w", err)
	}
	return nil
}

// List returns the account's users, owners first.
func (s *Service) List(ctx context.Context, accountID string) ([]User, error) {
	if uuid.Validate(accountID) != nil {
		return nil, fault.New(fault.NotFound, "", "account not found")
	}
	exists, err := s.q.AccountExists(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("read account: %w", err)
	}
	if !exists {
		return nil, fault.New(fault.NotFound, "", "account not found")
	}
	rows, err := s.q.ListUsers(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	out := make([]User, 0, len(rows))
	for _, r := range rows {
		out = append(out, fromRow(userdb.GetUserRow(r)))
	}
	for i := range out {
		if out[i].Lines, err = s.LinesOf(ctx, out[i].ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Get returns one user of the account.
func (s *Service) Get(ctx context.Context, accountID, id string) (User, error) {
	if uuid.Validate(accountID) != nil || uuid.Validate(id) != nil {
		return User{}, fault.New(fault.NotFound, "", "user not found")
	}
	u, err := getUser(ctx, s.q, accountID, id)
	if err != nil {
		return User{}, err
	}
	u.Lines, err = s.LinesOf(ctx, id)
	return u, err
}

// Update changes a user's role, name, locale or password. The account keeps
// at least one owner.
func (s *Service) Update(ctx context.Context, actor string, by ByRole, accountID, id string, c Change) (User, error) {
	if err := c.validate(); err != nil {
		return User{}, err
	}
	var hash string
	if c.Password != nil {
		if err := checkPassword(*c.Password); err != nil {
			return User{}, err
		}
		hash = Hash(*c.Password)
	}
	now := s.clock.Now()
	var u User
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		q := userdb.New(tx)
		if err := lockAccount(ctx, q, accountID); err != nil {
			return err
		}
		var err error
		if uuid.Validate(id) != nil {
			return fault.New(fault.NotFound, "", "user not found")
		}
		if u, err = getUser(ctx, q, accountID, id); err != nil {
			return err
		}
		details := map[string]any{}
		if c.Role != nil && *c.Role != u.Role {
			if err := changeRole(ctx, q, by, accountID, u.Role, *c.Role); err != nil {
				return err
			}
			details["role"] = map[string]string{"from": u.Role, "to": *c.Role}
			u.Role = *c.Role
		}
		if c.Name != nil {
			u.Name, details["name"] = *c.Name, true
		}
		if c.Locale != nil {
			u.Locale, details["locale"] = *c.Locale, *c.Locale
		}
		if hash != "" {
			details["password"] = "changed"
			if err := setPassword(ctx, q, id, hash); err != nil {
				return err
			}
		}
		if c.Lines != nil {
			if err := setLines(ctx, q, accountID, id, *c.Lines); err != nil {
				return err
			}
			details["lines"] = len(*c.Lines)
		}
		if u.Lines, err = linesOf(ctx, q, id); err != nil {
			return err
		}
		if err := q.UpdateUser(ctx, userdb.UpdateUserParams{ID: id, Role: u.Role, Name: u.Name, Locale: u.Locale}); err != nil {
			return fmt.Errorf("update user: %w", err)
		}
		return store.Audit(ctx, tx, now, actor, accountID, "user.updated", id, details)
	})
	return u, err
}

// keepOwner refuses when the account has one owner left (the caller holds
// the account lock).
// validate checks the fields c sets, before anything is read.
func (c Change) validate() error {
	if c.Role != nil && !validRole(*c.Role) {
		return fault.New(fault.Invalid, "role", "role must be owner, admin or member")
	}
	if c.Locale != nil && !validLocale(*c.Locale) {
		return fault.New(fault.Invalid, "locale", "locale must be en or fr")
	}
	if c.Name != nil && utf8.RuneCountInString(*c.Name) > 200 {
		return fault.New(fault.Invalid, "name", "name is at most 200 characters")
	}
	return nil
}

// changeRole checks that by may change a user's role from one to another:
// an admin neither changes an owner nor makes one, and an account keeps an
// owner.
func changeRole(ctx context.Context, q *userdb.Queries, by ByRole, accountID, from, to string) error {
	if by == Admin && (from == Owner || to == Owner) {
		return fault.New(fault.Invalid, "role", "only an owner or the operator may change an owner or make one")
	}
	if from == Owner {
		return keepOwner(ctx, q, accountID)
	}
	return nil
}

// setPassword stores user id's new password hash and ends the user's
// other sessions, as a new password does.
func setPassword(ctx context.Context, q *userdb.Queries, id, hash string) error {
	if err := q.SetPasswordHash(ctx, userdb.SetPasswordHashParams{ID: id, PasswordHash: hash}); err != nil {
		return fmt.Errorf("update password: %w", err)
	}
	if err := q.EndUserSessions(ctx, id); err != nil {
		return fmt.Errorf("end sessions: %w", err)
	}
	return nil
}

func keepOwner(ctx context.Context, q *userdb.Queries, accountID string) error {
	owners, err := q.CountOwners(ctx, accountID)
	if err != nil {
		return fmt.Errorf("count owners: %w", err)
	}
	if owners <= 1 {
		return fault.New(fault.Conflict, "role", "the account's last owner cannot be removed or demoted; make another user owner first")
	}
	return nil
}

// Delete removes a user and ends their sessions (the row is kept for the
// audit trail).
func (s *Service) Delete(ctx context.Context, actor string, by ByRole, accountID, id string) error {
	now := s.clock.Now()
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		q := userdb.New(tx)
		if err := lockAccount(ctx, q, accountID); err != nil {
			return err
		}
		if uuid.Validate(id) != nil {
			return fault.New(fault.NotFound, "", "user not found")
		}
		u, err := getUser(ctx, q, accountID, id)
		if err != nil {
			return err
		}
		if u.Role == Owner {
			if by == Admin {
				return fault.New(fault.Invalid, "role", "only an owner or the operator may remove an owner")
			}
			if err := keepOwner(ctx, q, accountID); err != nil {
				return err
			}
		}
		if err := q.DeleteUser(ctx, userdb.DeleteUserParams{ID: id, DeletedAt: &now}); err != nil {
			return fmt.Errorf("delete user: %w", err)
		}
		if err := q.EndUserSessions(ctx, id); err != nil {
			return fmt.Errorf("end sessions: %w", err)
		}
		return store.Audit(ctx, tx, now, actor, accountID, "user.deleted", id, map[string]any{"email": u.Email})
	})
}

// Authenticate checks an email and password. An unknown email costs the
// same hash verification as a wrong password, so timing tells nothing.
func (s *Service) Authenticate(ctx context.Context, email, password string) (User, bool, error) {
	r, err := s.q.UserByEmail(ctx, strings.TrimSpace(email))
	if errors.Is(err, store.ErrNotFound) {
		Verify(s.dummy, password)
		return User{}, false, nil
	}
	if err != nil {
		return User{}, false, fmt.Errorf("read user: %w", err)
	}
	u := User{ID: r.ID, AccountID: r.AccountID, Email: r.Email, Name: r.Name, Role: r.Role, Locale: r.Locale, CreatedAt: r.CreatedAt}
	return u, Verify(r.PasswordHash, password), nil
}

// argon2id parameters: OWASP's second recommended set (19 MiB, 2 passes),
// a few tens of milliseconds on one core.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// Hash returns the argon2id hash of password in the PHC string format.
func Hash(password string) string {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads, enc.EncodeToString(salt), enc.EncodeToString(key))
}

// Verify reports whether password matches a hash made by Hash (with any
// parameters, so they can be raised later).
func Verify(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var m uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || m > 1<<20 || t == 0 || t > 16 || p == 0 {
		return false
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[4])
	want, err2 := enc.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 || len(want) > 64 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// setLines replaces the lines a user sees; each must be a live line of the
// account.
func setLines(ctx context.Context, q *userdb.Queries, accountID, userID string, lines []string) error {
	for i, id := range lines {
		if uuid.Validate(id) != nil {
			return fault.New(fault.Invalid, fmt.Sprintf("lines[%d]", i), "unknown line %q", id)
		}
	}
	n, err := q.CountLiveLines(ctx, userdb.CountLiveLinesParams{Ids: lines, AccountID: accountID})
	if err != nil {
		return fmt.Errorf("check lines: %w", err)
	}
	if n != int64(len(lines)) {
		return fault.New(fault.Invalid, "lines", "every line must be a line of this account, listed once")
	}
	if err := q.ClearUserLines(ctx, userID); err != nil {
		return fmt.Errorf("set lines: %w", err)
	}
	if err := q.AddUserLines(ctx, userdb.AddUserLinesParams{UserID: userID, LineIds: lines}); err != nil {
		return fmt.Errorf("set lines: %w", err)
	}
	return nil
}

func linesOf(ctx context.Context, q *userdb.Queries, userID string) ([]string, error) {
	out, err := q.UserLines(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("read user lines: %w", err)
	}
	return nonNil(out), nil
}

// LinesOf returns the ids of the live lines a user sees.
func (s *Service) LinesOf(ctx context.Context, userID string) ([]string, error) {
	return linesOf(ctx, s.q, userID)
}
