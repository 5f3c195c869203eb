package aritest

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Global variables (GET and POST /ari/asterisk/variable), as Asterisk 22's
// res/ari/resource_asterisk.c serves them:
//   - the variable comes from the query string or a JSON body; missing or
//     empty: 400 {"message": "Variable name is required"};
//   - GET answers 200 {"value": ...}, with "" for a variable that does not
//     exist (ast_str_retrieve_variable gives NULL, rendered S_OR(value, ""));
//   - POST sets it and answers 204; without a value it deletes the
//     variable (pbx_builtin_setvar_helper removes the old entry and adds a
//     new one only for a non-NULL value), with value="" it sets "".
//   - A name ending in ")" is a dial plan function write, which this server
//     does not model: it is accepted and changes nothing.

// ariParams reads ARI's parameters from the query string, then from a JSON
// object body (ARI accepts both).
func ariParams(r *http.Request) map[string]*string {
	out := map[string]*string{}
	for k, v := range r.URL.Query() {
		if len(v) > 0 {
			out[k] = &v[0]
		}
	}
	var body map[string]any
	if r.Body != nil && json.NewDecoder(r.Body).Decode(&body) == nil {
		for k, v := range body {
			if str, ok := v.(string); ok {
				out[k] = &str
			}
		}
	}
	return out
}

// variableParams returns the request's parameters and its variable name,
// or answers 400 as Asterisk does when the name is missing or empty.
func variableParams(w http.ResponseWriter, r *http.Request) (map[string]*string, string, bool) {
	p := ariParams(r)
	if name := p["variable"]; name != nil && *name != "" {
		return p, *name, true
	}
	writeError(w, http.StatusBadRequest, "Variable name is required")
	return nil, "", false
}

func (s *Server) getGlobal(w http.ResponseWriter, r *http.Request) {
	_, name, ok := variableParams(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	v := s.globals[name]
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"value": v})
}

func (s *Server) setGlobal(w http.ResponseWriter, r *http.Request) {
	p, name, ok := variableParams(w, r)
	if !ok {
		return
	}
	if !strings.HasSuffix(name, ")") {
		s.mu.Lock()
		if v := p["value"]; v != nil {
			s.globals[name] = *v
		} else {
			delete(s.globals, name)
		}
		s.mu.Unlock()
	}
	w.WriteHeader(http.StatusNoContent)
}

// Global returns a global variable's value and whether it exists.
func (s *Server) Global(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.globals[name]
	return v, ok
}

// GlobalNames lists the global variables whose name starts with prefix.
func (s *Server) GlobalNames(prefix string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.globals {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out
}

// Inbound call outcomes of RouteInbound, as the trunk sees them.
const (
	// Ringing: the call reached the endpoint's registered contacts.
	Ringing = 180
	// Unallocated: no route for the number (Hangup(1): SIP 404).
	Unallocated = 404
	// Unavailable: routed, but the endpoint is absent or has no contact
	// (Dial ends CHANUNAVAIL: SIP 480).
	Unavailable = 480
)

// RouteInbound runs the shipped dial plan's [from-trunk] and [pbxd-did]
// contexts (configs/asterisk/extensions.conf) for a call from a trunk to
// exten, against this server's state: a leading "+" is dropped, anything
// but digits matches no extension (404), ${PBXD_DID_<digits>} names the
// endpoint, empty is 404, and Dial(PJSIP/<endpoint>) rings only an
// existing endpoint with a registered contact. It returns the endpoint
// reached ("" if none) and the outcome.
func (s *Server) RouteInbound(exten string) (endpoint string, outcome int) {
	digits := strings.TrimPrefix(exten, "+")
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return "", Unallocated
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	target := s.globals["PBXD_DID_"+digits]
	if target == "" {
		return "", Unallocated
	}
	if _, ok := s.objects["endpoint"][target]; !ok {
		return target, Unavailable
	}
	for _, c := range s.contacts[target] {
		if c.expires.IsZero() || c.expires.After(time.Now()) {
			return target, Ringing
		}
	}
	return target, Unavailable
}
