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
	var g Gateway = Sandbox{Ledger: NewMemoryLedger()}
	for _, tc := range []struct {
		token   string
		amount  Money
		key     string
		outcome Outcome
		err     error
	}{
		{SandboxApprove, amount, "inv-1", OutcomeApproved, nil},
		{SandboxDecline, amount, "inv-d", OutcomeDeclined, nil},
		{SandboxError, amount, "inv-e", "", ErrGateway},
		{SandboxDecline, amount, "inv-1", OutcomeApproved, nil}, // a replay answers as the first time
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

// The sandbox answers look-ups and refunds by idempotency key, as a real
// gateway does, and a voided key refuses a late charge.
func TestSandboxLookupRefund(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	amount := Money{6091, "EUR"}
	g := Sandbox{Ledger: NewMemoryLedger()}
	if _, found, err := g.Lookup(ctx, "k1"); found || err != nil {
		t.Fatalf("lookup before charge: found %v, %v", found, err)
	}
	charged, err := g.Charge(ctx, SandboxApprove, amount, "k1")
	if err != nil {
		t.Fatal(err)
	}
	got, found, err := g.Lookup(ctx, "k1")
	if !found || err != nil || got != charged {
		t.Fatalf("lookup = %+v %v %v, want %+v", got, found, err, charged)
	}
	if _, err := g.Charge(ctx, SandboxError, amount, "k-err"); !errors.Is(err, ErrGateway) {
		t.Fatalf("error token: %v", err)
	}
	if _, found, _ := g.Lookup(ctx, "k-err"); found {
		t.Fatal("a failed charge is found")
	}
	ref, err := g.Refund(ctx, "k1")
	if err != nil || !strings.HasPrefix(ref, "sbx_re_") {
		t.Fatalf("refund = %q, %v", ref, err)
	}
	if e, _, _ := g.Ledger.Get(ctx, "k1"); !e.Refunded {
		t.Fatalf("ledger after refund: %+v", e)
	}
	// Voiding a key never charged: a late charge under it is refused.
	if ref, err := g.Refund(ctx, "k2"); ref != "" || err != nil {
		t.Fatalf("void = %q, %v", ref, err)
	}
	if res, err := g.Charge(ctx, SandboxApprove, amount, "k2"); err != nil || res.Outcome != OutcomeDeclined {
		t.Fatalf("charge after void = %+v, %v", res, err)
	}
	if _, found, _ := g.Lookup(ctx, "k2"); found {
		t.Fatal("a voided key is found")
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
func (fakeGateway) Lookup(context.Context, string) (ChargeResult, bool, error) {
	return ChargeResult{}, false, nil
}
func (fakeGateway) Refund(context.Context, string) (string, error) { return "", nil }

func sha256hex16(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}
