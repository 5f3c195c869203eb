package billing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
)

// Gateway errors. ErrInvalidToken and ErrUnknownGateway are the caller's
// fault (HTTP 422); ErrGateway is the gateway's (retry later, dunning).
var (
	// ErrInvalidToken means a payment-method token is not valid for its gateway.
	ErrInvalidToken = errors.New("billing: invalid payment token")
	// ErrUnknownGateway means no gateway has the requested name.
	ErrUnknownGateway = errors.New("billing: unknown payment gateway")
	// ErrInvalidCharge means a charge request is malformed (amount, key).
	ErrInvalidCharge = errors.New("billing: invalid charge")
	// ErrGateway means the gateway failed to give an answer; the charge may be
	// retried with the same idempotency key.
	ErrGateway = errors.New("billing: payment gateway error")
)

// Outcome is the answer of a charge attempt that reached the gateway.
type Outcome string

// Charge outcomes. A gateway failure is not an outcome but an ErrGateway error.
const (
	// OutcomeApproved means the money was taken; TransactionRef identifies it.
	OutcomeApproved Outcome = "approved"
	// OutcomeDeclined means the payment method refused; dunning starts.
	OutcomeDeclined Outcome = "declined"
	// OutcomePending means nothing was charged and the invoice stays open until
	// settled out of band (bank transfer marked paid by an operator).
	OutcomePending Outcome = "pending"
)

// ChargeResult is what a gateway answered.
type ChargeResult struct {
	Outcome        Outcome
	TransactionRef string
	// Message is the gateway's human reason, e.g. for a decline.
	Message string
}

// Gateway takes payments. Billing declares the interface; concrete gateways
// are chosen by the wiring. Charge must be idempotent per idempotencyKey, so
// a retry after a crash cannot charge twice.
type Gateway interface {
	Name() string
	Charge(ctx context.Context, token string, amount Money, idempotencyKey string) (ChargeResult, error)
	// Lookup answers what became of the charge made under idempotencyKey:
	// found is false when the gateway never received it. The recovery job
	// asks it for payments whose answer a crash lost.
	Lookup(ctx context.Context, idempotencyKey string) (res ChargeResult, found bool, err error)
	// Refund gives back the money of an approved charge, or voids the key
	// of a charge that never arrived so that a late one is refused; it is
	// idempotent per key and returns the refund's reference ("" when there
	// was nothing to give back).
	Refund(ctx context.Context, idempotencyKey string) (ref string, err error)
}

// tokenValidator is implemented by gateways that can check a token before a
// payment method is saved.
type tokenValidator interface {
	ValidateToken(token string) error
}

// ValidateToken checks a payment-method token for g before the API stores it,
// so a typo fails at once rather than at the next renewal. Gateways without
// a check accept any token.
func ValidateToken(g Gateway, token string) error {
	if v, ok := g.(tokenValidator); ok {
		return v.ValidateToken(token)
	}
	return nil
}

// BuiltinGateway returns the gateway the API names "manual" or "sandbox".
func BuiltinGateway(name string) (Gateway, error) {
	switch name {
	case Manual{}.Name():
		return Manual{}, nil
	case Sandbox{}.Name():
		return Sandbox{Ledger: NewMemoryLedger()}, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownGateway, name)
}

func checkCharge(amount Money, idempotencyKey string) error {
	if !amount.Currency.Valid() || amount.Minor <= 0 {
		return fmt.Errorf("%w: amount %s", ErrInvalidCharge, amount)
	}
	if idempotencyKey == "" {
		return fmt.Errorf("%w: empty idempotency key", ErrInvalidCharge)
	}
	return nil
}

// Manual is payment by bank transfer: it never takes money itself. Every
// charge is pending, so the invoice stays open until an operator marks it
// paid (POST /v1/invoices/{id}/mark-paid).
type Manual struct{}

// Name is "manual".
func (Manual) Name() string { return "manual" }

// ValidateToken accepts only an empty token: a bank transfer has no card.
func (Manual) ValidateToken(token string) error {
	if token != "" {
		return fmt.Errorf("%w: manual gateway takes no token", ErrInvalidToken)
	}
	return nil
}

// Charge returns OutcomePending without contacting anyone.
func (Manual) Charge(ctx context.Context, _ string, amount Money, idempotencyKey string) (ChargeResult, error) {
	if err := ctx.Err(); err != nil {
		return ChargeResult{}, err
	}
	if err := checkCharge(amount, idempotencyKey); err != nil {
		return ChargeResult{}, err
	}
	return ChargeResult{Outcome: OutcomePending, Message: "awaiting bank transfer"}, nil
}

// Lookup answers pending: a bank transfer is never taken by pbxd.
func (Manual) Lookup(ctx context.Context, _ string) (ChargeResult, bool, error) {
	return ChargeResult{Outcome: OutcomePending, Message: "awaiting bank transfer"}, true, ctx.Err()
}

// Refund has nothing to give back.
func (Manual) Refund(ctx context.Context, _ string) (string, error) { return "", ctx.Err() }

// Sandbox tokens: each one forces an outcome, for tests and demos.
const (
	SandboxApprove = "sandbox_approve"
	SandboxDecline = "sandbox_decline"
	SandboxError   = "sandbox_error"
)

// Sandbox is a deterministic fake card gateway whose token decides the
// outcome. Like a real gateway it keeps a ledger of the charges it took, by
// idempotency key: a replayed charge returns the first answer, and Lookup
// and Refund work after pbxd crashed. Its transaction refs derive from the
// idempotency key.
type Sandbox struct {
	// Ledger keeps the charges; nil means one in memory for the process.
	Ledger SandboxLedger
}

// SandboxEntry is one charge (or voided key) in a sandbox ledger.
type SandboxEntry struct {
	Token     string
	Amount    Money
	Outcome   string // approved, declined or voided
	Reference string
	Refunded  bool
}

// SandboxLedger stores a sandbox gateway's charges. Put stores e under key
// unless the key is taken, and returns what the key holds.
type SandboxLedger interface {
	Put(ctx context.Context, key string, e SandboxEntry) (SandboxEntry, error)
	Get(ctx context.Context, key string) (SandboxEntry, bool, error)
	// MarkRefunded flags an approved entry refunded.
	MarkRefunded(ctx context.Context, key string) error
}

// memLedger keeps a ledger in memory: enough for unit tests.
type memLedger struct {
	mu sync.Mutex
	m  map[string]SandboxEntry
}

// NewMemoryLedger returns an empty ledger kept in memory.
func NewMemoryLedger() SandboxLedger { return &memLedger{m: map[string]SandboxEntry{}} }

func (l *memLedger) Put(_ context.Context, key string, e SandboxEntry) (SandboxEntry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.m[key]; ok {
		return old, nil
	}
	l.m[key] = e
	return e, nil
}

func (l *memLedger) Get(_ context.Context, key string) (SandboxEntry, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.m[key]
	return e, ok, nil
}

func (l *memLedger) MarkRefunded(_ context.Context, key string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.m[key]; ok && e.Outcome == "approved" {
		e.Refunded = true
		l.m[key] = e
	}
	return nil
}

// ledger is s.Ledger; a Sandbox without one refuses every charge rather
// than share a ledger with the other sandboxes of the process.
func (s Sandbox) ledger() SandboxLedger {
	if s.Ledger == nil {
		return noLedger{}
	}
	return s.Ledger
}

// errNoLedger is what a Sandbox without a ledger answers.
var errNoLedger = errors.New("sandbox gateway: no ledger")

type noLedger struct{}

func (noLedger) Put(context.Context, string, SandboxEntry) (SandboxEntry, error) {
	return SandboxEntry{}, errNoLedger
}

func (noLedger) Get(context.Context, string) (SandboxEntry, bool, error) {
	return SandboxEntry{}, false, errNoLedger
}

func (noLedger) MarkRefunded(context.Context, string) error { return errNoLedger }

// Name is "sandbox".
func (Sandbox) Name() string { return "sandbox" }

// ValidateToken accepts the three sandbox tokens.
func (Sandbox) ValidateToken(token string) error {
	switch token {
	case SandboxApprove, SandboxDecline, SandboxError:
		return nil
	}
	return fmt.Errorf("%w: sandbox token %q", ErrInvalidToken, token)
}

func sandboxRef(prefix, key string) string {
	sum := sha256.Sum256([]byte(key))
	return prefix + hex.EncodeToString(sum[:])[:16]
}

// Charge approves, declines or fails according to token; a key seen
// before returns its first answer (a voided key is declined).
func (s Sandbox) Charge(ctx context.Context, token string, amount Money, idempotencyKey string) (ChargeResult, error) {
	if err := ctx.Err(); err != nil {
		return ChargeResult{}, err
	}
	if err := s.ValidateToken(token); err != nil {
		return ChargeResult{}, err
	}
	if err := checkCharge(amount, idempotencyKey); err != nil {
		return ChargeResult{}, err
	}
	var e SandboxEntry
	switch token {
	case SandboxApprove:
		e = SandboxEntry{Token: token, Amount: amount, Outcome: "approved", Reference: sandboxRef("sbx_", idempotencyKey)}
	case SandboxDecline:
		e = SandboxEntry{Token: token, Amount: amount, Outcome: "declined"}
	default:
		if old, ok, err := s.ledger().Get(ctx, idempotencyKey); err == nil && ok {
			return old.result(), nil
		}
		return ChargeResult{}, fmt.Errorf("%w: sandbox simulated failure", ErrGateway)
	}
	got, err := s.ledger().Put(ctx, idempotencyKey, e)
	if err != nil {
		return ChargeResult{}, fmt.Errorf("%w: sandbox ledger: %v", ErrGateway, err)
	}
	return got.result(), nil
}

func (e SandboxEntry) result() ChargeResult {
	switch e.Outcome {
	case "approved":
		return ChargeResult{Outcome: OutcomeApproved, TransactionRef: e.Reference}
	case "voided":
		return ChargeResult{Outcome: OutcomeDeclined, Message: "payment voided (sandbox)"}
	}
	return ChargeResult{Outcome: OutcomeDeclined, Message: "card declined (sandbox)"}
}

// Lookup returns the answer given to the charge under idempotencyKey.
func (s Sandbox) Lookup(ctx context.Context, idempotencyKey string) (ChargeResult, bool, error) {
	e, ok, err := s.ledger().Get(ctx, idempotencyKey)
	if err != nil {
		return ChargeResult{}, false, fmt.Errorf("%w: sandbox ledger: %v", ErrGateway, err)
	}
	if !ok || e.Outcome == "voided" {
		return ChargeResult{}, false, nil
	}
	if e.Refunded {
		return ChargeResult{Outcome: OutcomeDeclined, Message: "charge refunded (sandbox)"}, true, nil
	}
	return e.result(), true, nil
}

// Refund refunds an approved charge, or voids a key never charged.
func (s Sandbox) Refund(ctx context.Context, idempotencyKey string) (string, error) {
	l := s.ledger()
	e, err := l.Put(ctx, idempotencyKey, SandboxEntry{Outcome: "voided"})
	if err != nil {
		return "", fmt.Errorf("%w: sandbox ledger: %v", ErrGateway, err)
	}
	if e.Outcome != "approved" {
		return "", nil
	}
	if err := l.MarkRefunded(ctx, idempotencyKey); err != nil {
		return "", fmt.Errorf("%w: sandbox ledger: %v", ErrGateway, err)
	}
	return sandboxRef("sbx_re_", idempotencyKey), nil
}
