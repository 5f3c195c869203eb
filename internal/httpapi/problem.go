// Package httpapi is pbxd's JSON API: routing, bearer-token auth, RFC 9457
// problem+json errors, idempotency keys and per-route metrics. Handlers call
// the domain services; they hold no business rules themselves.
package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
)

// Problem is an RFC 9457 problem document. Field names the request field at
// fault, so a script or a form can point at it.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	Field  string `json:"field,omitempty"`
}

// Error makes a Problem usable as an error from domain code.
func (p *Problem) Error() string { return p.Detail }

// Invalid reports bad input in field.
func Invalid(field, format string, args ...any) *Problem {
	return &Problem{Type: "https://pbxd.dev/problems/invalid-input", Title: "Invalid input", Status: http.StatusUnprocessableEntity, Detail: fmt.Sprintf(format, args...), Field: field}
}

// NotFound reports an unknown object; also what another account's objects
// look like, so their existence does not leak.
func NotFound(what string) *Problem {
	return &Problem{Type: "https://pbxd.dev/problems/not-found", Title: "Not found", Status: http.StatusNotFound, Detail: what + " not found"}
}

// Conflict reports a state that forbids the request (409).
func Conflict(field, format string, args ...any) *Problem {
	return &Problem{Type: "https://pbxd.dev/problems/conflict", Title: "Conflict", Status: http.StatusConflict, Detail: fmt.Sprintf(format, args...), Field: field}
}

// writeProblem answers with p as application/problem+json.
func writeProblem(w http.ResponseWriter, p *Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// writeError maps err onto a problem: domain errors carry their own (see
// Mapper); anything else is a 500 whose detail is logged, not sent.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var p *Problem
	if errors.As(err, &p) {
		writeProblem(w, p)
		return
	}
	if p := fromFault(err); p != nil {
		writeProblem(w, p)
		return
	}
	if a.mapError != nil {
		if p := a.mapError(err); p != nil {
			writeProblem(w, p)
			return
		}
	}
	a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeProblem(w, &Problem{Type: "about:blank", Title: "Internal error", Status: http.StatusInternalServerError, Detail: "internal error; see the server log"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// decode reads a JSON body strictly: unknown fields are named in the error.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			return Invalid(te.Field, "%s must be a %s", te.Field, te.Type.String())
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return Invalid(f, "unknown field %q", f)
		case errors.Is(err, io.EOF):
			return Invalid("", "the request body must be a JSON object")
		default:
			return Invalid("", "malformed JSON: %v", err)
		}
	}
	return nil
}

// discardLogger is used when none is given.
var discardLogger = slog.New(slog.DiscardHandler)
