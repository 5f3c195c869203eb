package httpapi

import (
	"net/http"

	"github.com/pbxd/pbxd/provisioning"
)

// moveBody is POST /v1/accounts/{id}/move.
type moveBody struct {
	Node string `json:"node"`
}

// moveRoutes serve account placement and moves between PBX nodes (issue
// 19): the operator starts a move; the account and the operator follow it.
func (a *API) moveRoutes(svc *provisioning.Service) {
	h := moveHandlers{svc}
	a.handleRoutes([]route{
		{"POST /v1/accounts/{id}/move", operatorIdem, h.startMove},
		{"GET /v1/accounts/{id}/move", authed, h.currentMove},
		{"GET /v1/accounts/{id}/moves/{move}", authed, h.getMove},
		{"GET /v1/nodes", operator, h.nodeLoads},
	})
}

// moveHandlers serves the move routes, one method a route.
type moveHandlers struct {
	svc *provisioning.Service
}

// startMove serves POST /v1/accounts/{id}/move.
func (h moveHandlers) startMove(w http.ResponseWriter, r *http.Request) error {
	var b moveBody
	if err := decode(r, &b); err != nil {
		return err
	}
	m, err := h.svc.StartMove(r.Context(), PrincipalFrom(r.Context()).Actor(), r.PathValue("id"), b.Node)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/accounts/"+m.AccountID+"/moves/"+m.ID)
	writeJSON(w, http.StatusAccepted, m)
	return nil
}

// currentMove serves GET /v1/accounts/{id}/move.
func (h moveHandlers) currentMove(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	m, err := h.svc.CurrentMove(r.Context(), id)
	if err != nil {
		return err
	}
	if m == nil {
		return NotFound("move")
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

// getMove serves GET /v1/accounts/{id}/moves/{move}.
func (h moveHandlers) getMove(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	m, err := h.svc.GetMove(r.Context(), id, r.PathValue("move"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

// nodeLoads serves GET /v1/nodes.
func (h moveHandlers) nodeLoads(w http.ResponseWriter, r *http.Request) error {
	loads, err := h.svc.NodeLoads(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"nodes": loads})
	return nil
}
