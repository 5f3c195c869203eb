package billing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
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
		return Sandbox{}, nil
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

// Sandbox tokens: each one forces an outcome, for tests and demos.
const (
	SandboxApprove = "sandbox_approve"
	SandboxDecline = "sandbox_decline"
	SandboxError   = "sandbox_error"
)

// Sandbox is a deterministic fake card gateway whose token decides the
// outcome. Its transaction refs derive from the idempotency key, so a
// replayed charge returns the same ref, as a real gateway would.
type Sandbox struct{}

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

// Charge approves, declines or fails according to token.
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
	switch token {
	case SandboxApprove:
		sum := sha256.Sum256([]byte(idempotencyKey))
		return ChargeResult{Outcome: OutcomeApproved, TransactionRef: "sbx_" + hex.EncodeToString(sum[:])[:16]}, nil
	case SandboxDecline:
		return ChargeResult{Outcome: OutcomeDeclined, Message: "card declined (sandbox)"}, nil
	}
	return ChargeResult{}, fmt.Errorf("%w: sandbox simulated failure", ErrGateway)
}
