package httpapi

import (
	"fmt"
	"net/http"
)

// access is who may call a route and whether it honours Idempotency-Key.
type access int

const (
	authed       access = iota // the operator or the path's account
	authedIdem                 // the same, behind the idempotency-key store
	operator                   // the operator only
	operatorIdem               // the operator only, behind the idempotency-key store
)

// route is one entry of a route table: a ServeMux pattern, who may call
// it, and the named handler that serves it.
type route struct {
	pattern string
	access  access
	serve   HandlerFunc
}

// handleRoutes registers a route table.
func (a *API) handleRoutes(routes []route) {
	for _, rt := range routes {
		a.handle(rt.pattern, a.guard(rt.access, rt.serve))
	}
}

// guard wraps h in the authentication (and idempotency) acc asks for.
func (a *API) guard(acc access, h HandlerFunc) http.Handler {
	switch acc {
	case authed:
		return a.authed(h)
	case authedIdem:
		return a.authed(wrapIdem(a, h))
	case operator:
		return a.operator(h)
	case operatorIdem:
		return a.operator(wrapIdem(a, h))
	}
	panic(fmt.Sprintf("httpapi: unknown access %d", acc))
}
