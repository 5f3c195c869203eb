package provisioning

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/provdb"
)

// Account is a tenant.
type Account struct {
	ID             string            `json:"id"`
	Name           string            `json:"name"`
	SIPDomain      string            `json:"sip_domain"`
	Currency       string            `json:"currency"`
	Timezone       string            `json:"timezone"`
	VATBP          int64             `json:"-"`
	PaymentMode    string            `json:"payment_mode"`
	SeatPreference string            `json:"seat_preference"`
	ExtFirst       int               `json:"-"`
	ExtLast        int               `json:"-"`
	BillingAddress map[string]string `json:"billing_address"`
	Status         string            `json:"status"`
	PBXNode        string            `json:"pbx_node"`
	CreatedAt      time.Time         `json:"created_at"`

	loc *time.Location // Timezone, loaded when the account is read
}

// Location is the account's time zone (validated at creation): as read
// with the account, or loaded now for an Account built by hand.
func (a Account) Location() *time.Location {
	if a.loc != nil {
		return a.loc
	}
	if loc, err := time.LoadLocation(a.Timezone); err == nil {
		return loc
	}
	return time.UTC
}

// NewAccount is what creating an account takes.
type NewAccount struct {
	Name           string
	SIPDomain      string
	Currency       string
	Timezone       string
	VATBP          int64
	PaymentMode    string
	SeatPreference string
	ExtFirst       int
	ExtLast        int
	BillingAddress map[string]string
	PBXNode        string
}

var (
	domainRE   = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)
	currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)
)

// MaxRangeSize bounds an account's extension range.
const MaxRangeSize = 100_000

// Validate checks every field and names the one at fault.
func (n *NewAccount) Validate() error {
	n.Name = strings.TrimSpace(n.Name)
	n.SIPDomain = strings.ToLower(strings.TrimSpace(n.SIPDomain))
	switch {
	case n.Name == "" || len(n.Name) > 200:
		return fault.New(fault.Invalid, "name", "name is required (at most 200 characters)")
	case len(n.SIPDomain) > 253 || !domainRE.MatchString(n.SIPDomain):
		return fault.New(fault.Invalid, "sip_domain", "%q is not a valid DNS name like acme.voip.example.net", n.SIPDomain)
	case !currencyRE.MatchString(n.Currency):
		return fault.New(fault.Invalid, "currency", "currency must be an ISO 4217 code like EUR")
	case n.PaymentMode != "card" && n.PaymentMode != "invoice":
		return fault.New(fault.Invalid, "payment_mode", "payment_mode must be card or invoice")
	case n.SeatPreference != "auto_purchase" && n.SeatPreference != "block":
		return fault.New(fault.Invalid, "seat_preference", "seat_preference must be auto_purchase or block")
	case n.ExtFirst < 1 || n.ExtFirst > 99_999_999:
		return fault.New(fault.Invalid, "extension_range.first", "first extension must be between 1 and 99999999")
	case n.ExtLast < n.ExtFirst || n.ExtLast > 99_999_999:
		return fault.New(fault.Invalid, "extension_range.last", "last extension must be at least first and at most 99999999")
	case n.ExtLast-n.ExtFirst+1 > MaxRangeSize:
		return fault.New(fault.Invalid, "extension_range.last", "an extension range holds at most %d numbers", MaxRangeSize)
	case n.VATBP < 0 || n.VATBP > 10000:
		return fault.New(fault.Invalid, "vat_percent", "vat_percent must be between 0 and 100")
	}
	if n.Timezone == "" {
		return fault.New(fault.Invalid, "timezone", "timezone is required (an IANA name like Europe/Paris)")
	}
	if _, err := time.LoadLocation(n.Timezone); err != nil || strings.EqualFold(n.Timezone, "local") {
		return fault.New(fault.Invalid, "timezone", "%q is not an IANA time zone like Europe/Paris", n.Timezone)
	}
	for k, v := range n.BillingAddress {
		if len(k) > 64 || len(v) > 500 {
			return fault.New(fault.Invalid, "billing_address."+k, "billing address fields are at most 500 characters")
		}
	}
	return nil
}

// CreateAccount creates a tenant, on the PBX node it names or, when it
// names none, on the node placement picks (see place).
func (s *Service) CreateAccount(ctx context.Context, actor string, n NewAccount) (Account, error) {
	if err := n.Validate(); err != nil {
		return Account{}, err
	}
	if n.BillingAddress == nil {
		n.BillingAddress = map[string]string{}
	}
	// An account naming no node is placed by capacity (placement.go).
	node, err := s.placeAccount(ctx, n.PBXNode)
	if err != nil {
		return Account{}, err
	}
	n.PBXNode = node
	id := uuid.NewString()
	now := s.clock.Now()
	addr, err := json.Marshal(n.BillingAddress)
	if err != nil {
		return Account{}, fmt.Errorf("billing address: %w", err)
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		err := provdb.New(tx).InsertAccount(ctx, provdb.InsertAccountParams{ID: id, Name: n.Name, SipDomain: n.SIPDomain,
			Currency: n.Currency, Timezone: n.Timezone, VatBp: int32(n.VATBP), PaymentMode: n.PaymentMode, SeatPreference: n.SeatPreference,
			ExtFirst: int32(n.ExtFirst), ExtLast: int32(n.ExtLast), BillingAddress: addr, PbxNode: n.PBXNode, CreatedAt: now})
		if store.IsUniqueViolation(err, "accounts_sip_domain_key") {
			return fault.New(fault.Conflict, "sip_domain", "the SIP domain %s is already taken", n.SIPDomain)
		}
		if err != nil {
			return fmt.Errorf("insert account: %w", err)
		}
		return audit(ctx, tx, now, actor, id, "account.create", id, map[string]any{"name": n.Name, "sip_domain": n.SIPDomain})
	})
	if err != nil {
		return Account{}, err
	}
	return s.Account(ctx, id)
}

// The account reads provisioning's pipelined state read sends
// (state.go): the generated queries' own text.
const (
	accountByIDSQL = provdb.GetAccountSQL
	lockAccountSQL = provdb.LockAccountSQL
)

// scanAccount scans a row of GetAccount or LockAccount sent in a batch, by
// position into the generated row type.
func (s *Service) scanAccount(row store.Row) (Account, error) {
	var r provdb.Account
	err := row.Scan(&r.ID, &r.Name, &r.SipDomain, &r.Currency, &r.Timezone, &r.VatBp, &r.PaymentMode,
		&r.SeatPreference, &r.ExtFirst, &r.ExtLast, &r.BillingAddress, &r.Status, &r.PbxNode, &r.CreatedAt)
	if err != nil {
		return Account{}, err
	}
	return s.accountFrom(r)
}

// accountFrom is the domain's view of an account row.
func (s *Service) accountFrom(r provdb.Account) (Account, error) {
	a := Account{ID: r.ID, Name: r.Name, SIPDomain: r.SipDomain, Currency: r.Currency, Timezone: r.Timezone,
		VATBP: int64(r.VatBp), PaymentMode: r.PaymentMode, SeatPreference: r.SeatPreference,
		ExtFirst: int(r.ExtFirst), ExtLast: int(r.ExtLast), Status: r.Status, PBXNode: r.PbxNode, CreatedAt: r.CreatedAt,
		loc: s.zones.Named(r.Timezone)}
	err := json.Unmarshal(r.BillingAddress, &a.BillingAddress)
	return a, err
}

// Account returns one account; an unknown id is fault.NotFound.
func (s *Service) Account(ctx context.Context, id string) (Account, error) {
	if uuid.Validate(id) != nil {
		return Account{}, fault.New(fault.NotFound, "", "account not found")
	}
	r, err := s.q.GetAccount(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Account{}, fault.New(fault.NotFound, "", "account not found")
	}
	if err != nil {
		return Account{}, err
	}
	return s.accountFrom(r)
}

// lockAccount reads and locks the account row: every change of an account's
// seats and lines happens under it, so extension allocation never races.
func (s *Service) lockAccount(ctx context.Context, tx *store.Tx, id string) (Account, error) {
	if uuid.Validate(id) != nil {
		return Account{}, fault.New(fault.NotFound, "", "account not found")
	}
	r, err := provdb.New(tx).LockAccount(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Account{}, fault.New(fault.NotFound, "", "account not found")
	}
	if err != nil {
		return Account{}, err
	}
	return s.accountFrom(r)
}

// Accounts lists accounts by creation.
func (s *Service) Accounts(ctx context.Context) ([]Account, error) {
	rows, err := s.q.ListAccounts(ctx)
	if err != nil {
		return nil, err
	}
	var out []Account
	for _, r := range rows {
		a, err := s.accountFrom(r)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// CreateAccountToken issues a bearer token that sees only this account. Only
// its SHA-256 is stored; the token is shown once.
func (s *Service) CreateAccountToken(ctx context.Context, actor, accountID string) (string, error) {
	if _, err := s.Account(ctx, accountID); err != nil {
		return "", err
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	token := "acct_" + base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(token))
	now := s.clock.Now()
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := provdb.New(tx).InsertAccountToken(ctx, provdb.InsertAccountTokenParams{TokenSha256: sum[:], AccountID: accountID, CreatedAt: now}); err != nil {
			return err
		}
		return audit(ctx, tx, now, actor, accountID, "account.token.create", accountID, nil)
	})
	return token, err
}

// AccountForToken finds the account an account token belongs to.
func (s *Service) AccountForToken(ctx context.Context, token string) (string, bool, error) {
	if !strings.HasPrefix(token, "acct_") {
		return "", false, nil
	}
	sum := sha256.Sum256([]byte(token))
	id, err := s.q.AccountForToken(ctx, sum[:])
	if errors.Is(err, store.ErrNotFound) {
		return "", false, nil
	}
	return id, err == nil, err
}
