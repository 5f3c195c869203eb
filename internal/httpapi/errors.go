package httpapi

import (
	"net/http"

	"github.com/pbxd/pbxd/internal/fault"
)

// fromFault maps domain errors onto problems.
func fromFault(err error) *Problem {
	fe, ok := fault.As(err)
	if !ok {
		return nil
	}
	p := &Problem{Detail: fe.Msg, Field: fe.Field}
	switch fe.Kind {
	case fault.Invalid:
		p.Type, p.Title, p.Status = "https://pbxd.dev/problems/invalid-input", "Invalid input", http.StatusUnprocessableEntity
	case fault.NotFound:
		p.Type, p.Title, p.Status = "https://pbxd.dev/problems/not-found", "Not found", http.StatusNotFound
	case fault.Conflict:
		p.Type, p.Title, p.Status = "https://pbxd.dev/problems/conflict", "Conflict", http.StatusConflict
	case fault.PaymentRequired:
		p.Type, p.Title, p.Status = "https://pbxd.dev/problems/payment-refused", "Payment refused", http.StatusPaymentRequired
	default:
		return nil
	}
	return p
}
