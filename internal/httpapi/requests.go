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
	h := requestHandlers{svc}
	a.handleRoutes([]route{
		{"POST /v1/accounts/{id}/requests", authedIdem, h.createRequest},
		{"GET /v1/accounts/{id}/requests", authed, h.accountRequests},
		{"GET /v1/requests", operator, h.listRequests},
		{"GET /v1/requests/{req}", authed, h.getRequest},
		{"POST /v1/requests/{req}/comments", authedIdem, h.commentRequest},
		{"POST /v1/requests/{req}/approve", operatorIdem, h.approveRequest},
		{"POST /v1/requests/{req}/reject", operatorIdem, h.rejectRequest},
		{"POST /v1/requests/{req}/done", operatorIdem, h.completeRequest},
	})
}

// requestHandlers serves the service-request routes, one method a route.
type requestHandlers struct {
	svc *provisioning.Service
}

// createRequest serves POST /v1/accounts/{id}/requests.
func (h requestHandlers) createRequest(w http.ResponseWriter, r *http.Request) error {
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
	req, err := h.svc.CreateRequest(r.Context(), PrincipalFrom(r.Context()).Actor(), id, kind, b.Details)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, req)
	return nil
}

// accountRequests serves GET /v1/accounts/{id}/requests.
func (h requestHandlers) accountRequests(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	return h.writeRequests(w, r, id)
}

// listRequests serves GET /v1/requests: every account's requests.
func (h requestHandlers) listRequests(w http.ResponseWriter, r *http.Request) error {
	return h.writeRequests(w, r, "")
}

// writeRequests writes the requests of account id ("" = all accounts) in
// the state the query asks for.
func (h requestHandlers) writeRequests(w http.ResponseWriter, r *http.Request, id string) error {
	list, err := h.svc.Requests(r.Context(), id, r.URL.Query().Get("state"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"requests": list})
	return nil
}

// getRequest serves GET /v1/requests/{req}.
func (h requestHandlers) getRequest(w http.ResponseWriter, r *http.Request) error {
	req, err := h.svc.Request(r.Context(), r.PathValue("req"), requestScope(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, req)
	return nil
}

// commentRequest serves POST /v1/requests/{req}/comments.
func (h requestHandlers) commentRequest(w http.ResponseWriter, r *http.Request) error {
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
	req, err := h.svc.CommentRequest(r.Context(), PrincipalFrom(r.Context()).Actor(), r.PathValue("req"), requestScope(r), text)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, req)
	return nil
}

// approveRequest serves POST /v1/requests/{req}/approve.
func (h requestHandlers) approveRequest(w http.ResponseWriter, r *http.Request) error {
	return decide(w, r, true, func(actor, req string, b decisionBody) (provisioning.ServiceRequest, error) {
		return h.svc.ApproveRequest(r.Context(), actor, req, b.Comment, b.Effective)
	})
}

// rejectRequest serves POST /v1/requests/{req}/reject.
func (h requestHandlers) rejectRequest(w http.ResponseWriter, r *http.Request) error {
	return decide(w, r, false, func(actor, req string, b decisionBody) (provisioning.ServiceRequest, error) {
		return h.svc.RejectRequest(r.Context(), actor, req, b.Comment)
	})
}

// completeRequest serves POST /v1/requests/{req}/done.
func (h requestHandlers) completeRequest(w http.ResponseWriter, r *http.Request) error {
	return decide(w, r, false, func(actor, req string, b decisionBody) (provisioning.ServiceRequest, error) {
		return h.svc.CompleteRequest(r.Context(), actor, req, b.Comment)
	})
}

// decide reads the operator's decision (an optional body; effective only
// where the decision takes one), has act apply it to request {req} and
// writes the request that results.
func decide(w http.ResponseWriter, r *http.Request, effective bool,
	act func(actor, req string, b decisionBody) (provisioning.ServiceRequest, error),
) error {
	var b decisionBody
	if err := decodeOptional(r, &b); err != nil {
		return err
	}
	if b.Effective != "" && !effective {
		return Invalid("effective", "effective is for approvals only")
	}
	req, err := act(PrincipalFrom(r.Context()).Actor(), r.PathValue("req"), b)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, req)
	return nil
}
