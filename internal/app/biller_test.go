package app

import (
	"errors"
	"testing"
	"time"

	"github.com/pbxd/pbxd/billing"
	"github.com/pbxd/pbxd/provisioning"
)

// An unknown cycle is an error, never a monthly one: Quote refuses it
// before pricing anything, and the methods without an error refuse it too.
func TestUnknownCycleIsAnError(t *testing.T) {
	for _, name := range []string{"monthly", "quarterly", "semiannual", "annual"} {
		if c, err := cycleOf(name); err != nil || string(c) != name {
			t.Errorf("cycleOf(%q) = %q, %v", name, c, err)
		}
	}
	if _, err := cycleOf("weekly"); !errors.Is(err, billing.ErrInvalidCycle) {
		t.Errorf("cycleOf(weekly) = %v, want ErrInvalidCycle", err)
	}
	b := billerAdapter{} // no service: the cycle is refused before it is used
	pkg := provisioning.Package{Code: "p", PriceMinor: 1000, Currency: "EUR"}
	_, err := b.Quote(t.Context(), provisioning.Account{Currency: "EUR"}, []provisioning.PriceChange{{Package: pkg, Cycle: "weekly", To: 1}}, time.Now())
	if !errors.Is(err, billing.ErrInvalidCycle) {
		t.Errorf("Quote with cycle weekly = %v, want ErrInvalidCycle", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("PeriodPrice priced an unknown cycle")
			}
		}()
		b.PeriodPrice(pkg, "weekly")
	}()
}
