package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/pbxd/pbxd/provisioning"
)

// requestBody is POST /v1/accounts/{id}/requests; both fields are required.
type requestBody struct {
	Kind    *string         `json:"kind"`
	Details json.RawMessage `json:"details"`
}

// decisionBody is what the operator sends to approve, reject or complete.
type decisionBody struct {
	Comment   string `json:"comment"`
	Effective string `json:"effective"` // approve only: now or period_end (default)
}

// requestScope is "" for the operator, else the caller's account.
func requestScope(r *http.Request) string {
	if p := PrincipalFrom(r.Context()); !p.Operator {
		return p.AccountID
	}
	return ""
}

func (a *API) requestRoutes(svc *provisioning.Service) {
	a.handle("POST /v1/accounts/{id}/requests", a.authed(wrapIdem(a, func(w http.ResponseWriter, r *http.Request) error {
		id, err := accountScope(r)
		if err != nil {
			return err
		}
		var b requestBody
		if err := decode(r, &b); err != nil {
			return err
		}
		kind, err := required(b.Kind, "kind")
		if err != nil {
			return err
		}
		if len(b.Details) == 0 || string(b.Details) == "null" {
			return Invalid("details", "details is required (an object; {} when there is nothing to add)")
		}
		req, err := svc.CreateRequest(r.Context(), PrincipalFrom(r.Context()).Actor(), id, kind, b.Details)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, req)
		return nil
	})))
	a.handle("GET /v1/accounts/{id}/requests", a.authed(func(w http.ResponseWriter, r *http.Request) error {
		id, err := accountScope(r)
		if err != nil {
			return err
		}
		list, err := svc.Requests(r.Context(), id, r.URL.Query().Get("state"))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"requests": list})
		return nil
	}))
	a.handle("GET /v1/requests", a.operator(func(w http.ResponseWriter, r *http.Request) error {
		list, err := svc.Requests(r.Context(), "", r.URL.Query().Get("state"))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"requests": list})
		return nil
	}))
	a.handle("GET /v1/requests/{req}", a.authed(func(w http.ResponseWriter, r *http.Request) error {
		req, err := svc.Request(r.Context(), r.PathValue("req"), requestScope(r))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, req)
		return nil
	}))
	a.handle("POST /v1/requests/{req}/comments", a.authed(wrapIdem(a, func(w http.ResponseWriter, r *http.Request) error {
		var b struct {
			Text *string `json:"text"`
		}
		if err := decode(r, &b); err != nil {
			return err
		}
		text, err := required(b.Text, "text")
		if err != nil {
			return err
		}
		req, err := svc.CommentRequest(r.Context(), PrincipalFrom(r.Context()).Actor(), r.PathValue("req"), requestScope(r), text)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, req)
		return nil
	})))
	decide := func(act func(r *http.Request, b decisionBody) (provisioning.ServiceRequest, error), effective bool) http.Handler {
		return a.operator(wrapIdem(a, func(w http.ResponseWriter, r *http.Request) error {
			var b decisionBody
			if err := decodeOptional(r, &b); err != nil {
				return err
			}
			if b.Effective != "" && !effective {
				return Invalid("effective", "effective is for approvals only")
			}
			req, err := act(r, b)
			if err != nil {
				return err
			}
			writeJSON(w, http.StatusOK, req)
			return nil
		}))
	}
	actor := func(r *http.Request) string { return PrincipalFrom(r.Context()).Actor() }
	a.handle("POST /v1/requests/{req}/approve", decide(func(r *http.Request, b decisionBody) (provisioning.ServiceRequest, error) {
		return svc.ApproveRequest(r.Context(), actor(r), r.PathValue("req"), b.Comment, b.Effective)
	}, true))
	a.handle("POST /v1/requests/{req}/reject", decide(func(r *http.Request, b decisionBody) (provisioning.ServiceRequest, error) {
		return svc.RejectRequest(r.Context(), actor(r), r.PathValue("req"), b.Comment)
	}, false))
	a.handle("POST /v1/requests/{req}/done", decide(func(r *http.Request, b decisionBody) (provisioning.ServiceRequest, error) {
		return svc.CompleteRequest(r.Context(), actor(r), r.PathValue("req"), b.Comment)
	}, false))
}
