// Package fault is the error type domain packages use for errors a caller
// can act on: which kind (bad input, unknown object, conflict, payment
// refused) and which request field is at fault. The HTTP layer maps kinds
// onto status codes; anything else is an internal error.
package fault

import (
	"errors"
	"fmt"
)

// Kind classifies an error for the caller.
type Kind int

// The kinds of caller-visible errors.
const (
	Invalid         Kind = iota + 1 // the request is wrong (422)
	NotFound                        // no such object, or not the caller's (404)
	Conflict                        // the state forbids it now (409)
	PaymentRequired                 // the payment was refused (402)
)

// Error is a caller-visible error.
type Error struct {
	Kind  Kind
	Field string // request field at fault, in JSON path form ("items[1].quantity")
	Msg   string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Msg
	}
	return e.Msg
}

// New returns an error of kind k about field.
func New(k Kind, field, format string, args ...any) *Error {
	return &Error{Kind: k, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// As returns the *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
