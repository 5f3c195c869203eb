package billing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func TestSandboxCharge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	amount := Money{6091, "EUR"}
	var g Gateway = Sandbox{}
	for _, tc := range []struct {
		token   string
		amount  Money
		key     string
		outcome Outcome
		err     error
	}{
		{SandboxApprove, amount, "inv-1", OutcomeApproved, nil},
		{SandboxDecline, amount, "inv-1", OutcomeDeclined, nil},
		{SandboxError, amount, "inv-1", "", ErrGateway},
		{"tok_visa", amount, "inv-1", "", ErrInvalidToken},
		{"", amount, "inv-1", "", ErrInvalidToken},
		{SandboxApprove, amount, "", "", ErrInvalidCharge},
		{SandboxApprove, Money{0, "EUR"}, "k", "", ErrInvalidCharge},
		{SandboxApprove, Money{-1, "EUR"}, "k", "", ErrInvalidCharge},
		{SandboxApprove, Money{1, "eur"}, "k", "", ErrInvalidCharge},
	} {
		res, err := g.Charge(ctx, tc.token, tc.amount, tc.key)
		if !errors.Is(err, tc.err) || res.Outcome != tc.outcome {
			t.Errorf("Charge(%q, %v, %q) = %+v, %v; want %q, %v", tc.token, tc.amount, tc.key, res, err, tc.outcome, tc.err)
		}
	}

	a, _ := g.Charge(ctx, SandboxApprove, amount, "inv-1")
	b, _ := g.Charge(ctx, SandboxApprove, amount, "inv-1")
	c, _ := g.Charge(ctx, SandboxApprove, amount, "inv-2")
	if a.TransactionRef != b.TransactionRef || a.TransactionRef == c.TransactionRef ||
		!strings.HasPrefix(a.TransactionRef, "sbx_") || len(a.TransactionRef) != 20 {
		t.Errorf("refs: %q %q %q", a.TransactionRef, b.TransactionRef, c.TransactionRef)
	}
	if got, want := a.TransactionRef, "sbx_"+sha256hex16("inv-1"); got != want {
		t.Errorf("ref = %q, want %q", got, want)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := g.Charge(cancelled, SandboxApprove, amount, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled charge: %v", err)
	}
}

func TestManualCharge(t *testing.T) {
	t.Parallel()
	var g Gateway = Manual{}
	res, err := g.Charge(context.Background(), "", Money{6091, "EUR"}, "inv-1")
	if err != nil || res.Outcome != OutcomePending || res.TransactionRef != "" {
		t.Errorf("Manual.Charge = %+v, %v", res, err)
	}
}

func TestValidateToken(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		gateway, token string
		err            error
	}{
		{"sandbox", SandboxApprove, nil},
		{"sandbox", SandboxDecline, nil},
		{"sandbox", SandboxError, nil},
		{"sandbox", "sandbox_maybe", ErrInvalidToken},
		{"sandbox", "", ErrInvalidToken},
		{"manual", "", nil},
		{"manual", "IBAN FR76…", ErrInvalidToken},
		{"stripe", "tok", ErrUnknownGateway},
	} {
		g, err := BuiltinGateway(tc.gateway)
		if err == nil {
			if g.Name() != tc.gateway {
				t.Errorf("BuiltinGateway(%q).Name() = %q", tc.gateway, g.Name())
			}
			err = ValidateToken(g, tc.token)
		}
		if !errors.Is(err, tc.err) {
			t.Errorf("%s/%q: err = %v, want %v", tc.gateway, tc.token, err, tc.err)
		}
	}
	// A gateway without its own check accepts any token.
	if err := ValidateToken(fakeGateway{}, "anything"); err != nil {
		t.Errorf("fake gateway: %v", err)
	}
}

type fakeGateway struct{}

func (fakeGateway) Name() string { return "fake" }
func (fakeGateway) Charge(context.Context, string, Money, string) (ChargeResult, error) {
	return ChargeResult{Outcome: OutcomeApproved}, nil
}

func sha256hex16(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}
