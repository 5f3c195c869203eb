// Package httpapi is pbxd's JSON API: routing, bearer-token auth, RFC 9457
// problem+json errors, idempotency keys and per-route metrics. Handlers call
// the domain services; they hold no business rules themselves.
package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/pbxd/pbxd/internal/store"
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
	if store.IsUnavailable(err) {
		// Not a bug: the database is down, restarting or out of
		// connections. The client may retry; nothing was half-written
		// (each unit of work is one transaction).
		a.log.Warn("database unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
		writeProblem(w, &Problem{Type: "https://pbxd.dev/problems/unavailable", Title: "Service unavailable", Status: http.StatusServiceUnavailable,
			Detail: "the database is unreachable; retry later"})
		return
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

// RetryAfterSeconds is the Retry-After of a 503 for an unreachable
// database: long enough for a restart or a fail-over to begin.
const RetryAfterSeconds = 5

// MaxBody is the largest request body the API reads (413 above).
const MaxBody = 1 << 20

// TooLarge reports a request body over MaxBody.
func TooLarge() *Problem {
	return &Problem{Type: "https://pbxd.dev/problems/too-large", Title: "Request body too large", Status: http.StatusRequestEntityTooLarge,
		Detail: fmt.Sprintf("the request body is over %d bytes", MaxBody)}
}

// decode reads a JSON body strictly: one JSON object and nothing after it,
// no unknown field, no null anywhere (a null is not a quantity, a price or
// a name: omit an optional field instead), types exact; each refusal is a
// Problem naming the field. A body over MaxBody is a 413.
func decode(r *http.Request, v any) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	return decodeBytes(body, v)
}

// decodeOptional is decode for endpoints whose every field is optional: an
// empty body is taken as {}.
func decodeOptional(r *http.Request, v any) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	return decodeBytes(body, v)
}

// readBody reads the request body, capped at MaxBody by the router.
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, TooLarge()
		}
		return nil, Invalid("", "unreadable request body: %v", err)
	}
	return body, nil
}

// decodeBytes is decode on a body already read.
func decodeBytes(body []byte, v any) error {
	if len(body) > MaxBody {
		return TooLarge()
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Invalid("", "the request body must be a JSON object")
	}
	// First pass: well-formed, a single value, no null.
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return Invalid("", "malformed JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Invalid("", "unexpected data after the JSON object")
	}
	if path := findNull(generic, ""); path != "" {
		return Invalid(path, "%s must not be null; omit it or give a value", path)
	}
	// encoding/json matches field names case-insensitively; the API does not.
	if path := unknownKey(generic, reflect.TypeOf(v), ""); path != "" {
		return Invalid(path, "unknown field %q", path)
	}
	dec = json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			want := jsonType(te.Type.Kind())
			field := te.Field
			if f := locate(generic, strings.Split(te.Field, "."), want, ""); f != "" {
				field = f // with the array indexes encoding/json leaves out
			}
			return Invalid(field, "%s must be a %s", field, want)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return Invalid(f, "unknown field %q", f)
		default:
			return Invalid("", "malformed JSON: %v", err)
		}
	}
	return nil
}

// locate finds the first value at path (field names; arrays crossed
// element by element) that is not of JSON type want, and returns its full
// path with indexes.
func locate(v any, path []string, want, at string) string {
	if arr, ok := v.([]any); ok {
		for i, e := range arr {
			if f := locate(e, path, want, fmt.Sprintf("%s[%d]", at, i)); f != "" {
				return f
			}
		}
		return ""
	}
	if len(path) == 0 || (len(path) == 1 && path[0] == "") {
		if kindOf(v) != want && (want != "integer" || kindOf(v) != "number") {
			return at
		}
		return ""
	}
	m, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	next := path[0]
	if at != "" {
		next = at + "." + path[0]
	}
	return locate(m[path[0]], path[1:], want, next)
}

// kindOf names the JSON type of a generically decoded value.
func kindOf(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case json.Number:
		return "number"
	}
	return "null"
}

// jsonType names a Go kind as JSON calls it.
func jsonType(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	case reflect.Float32, reflect.Float64:
		return "number"
	}
	return "integer"
}

// unknownKey returns the path of the first object key in v that is not
// exactly a JSON field name of t ("" if none).
func unknownKey(v any, t reflect.Type, path string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch x := v.(type) {
	case map[string]any:
		switch t.Kind() {
		case reflect.Map:
			for k, e := range x {
				if f := unknownKey(e, t.Elem(), join(k)); f != "" {
					return f
				}
			}
		case reflect.Struct:
			fields := jsonFields(t)
			for k, e := range x {
				ft, ok := fields[k]
				if !ok {
					return join(k)
				}
				if f := unknownKey(e, ft, join(k)); f != "" {
					return f
				}
			}
		}
	case []any:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for i, e := range x {
				if f := unknownKey(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); f != "" {
					return f
				}
			}
		}
	}
	return ""
}

// jsonFields maps the JSON names of t's fields to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					out[k] = v
				}
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

// findNull returns the path of the first null in v ("" if none), in the
// form fields are named in problems: items[1].quantity.
func findNull(v any, path string) string {
	switch x := v.(type) {
	case nil:
		if path == "" {
			return "body"
		}
		return path
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			if f := findNull(x[k], p); f != "" {
				return f
			}
		}
	case []any:
		for i, e := range x {
			if f := findNull(e, fmt.Sprintf("%s[%d]", path, i)); f != "" {
				return f
			}
		}
	}
	return ""
}

// discardLogger is used when none is given.
var discardLogger = slog.New(slog.DiscardHandler)
