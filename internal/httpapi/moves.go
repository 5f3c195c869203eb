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
	a.handle("POST /v1/accounts/{id}/move", a.operator(wrapIdem(a, func(w http.ResponseWriter, r *http.Request) error {
		var b moveBody
		if err := decode(r, &b); err != nil {
			return err
		}
		m, err := svc.StartMove(r.Context(), PrincipalFrom(r.Context()).Actor(), r.PathValue("id"), b.Node)
		if err != nil {
			return err
		}
		w.Header().Set("Location", "/v1/accounts/"+m.AccountID+"/moves/"+m.ID)
		writeJSON(w, http.StatusAccepted, m)
		return nil
	})))
	a.handle("GET /v1/accounts/{id}/move", a.authed(func(w http.ResponseWriter, r *http.Request) error {
		id, err := accountScope(r)
		if err != nil {
			return err
		}
		m, err := svc.CurrentMove(r.Context(), id)
		if err != nil {
			return err
		}
		if m == nil {
			return NotFound("move")
		}
		writeJSON(w, http.StatusOK, m)
		return nil
	}))
	a.handle("GET /v1/accounts/{id}/moves/{move}", a.authed(func(w http.ResponseWriter, r *http.Request) error {
		id, err := accountScope(r)
		if err != nil {
			return err
		}
		m, err := svc.GetMove(r.Context(), id, r.PathValue("move"))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, m)
		return nil
	}))
	a.handle("GET /v1/nodes", a.operator(func(w http.ResponseWriter, r *http.Request) error {
		loads, err := svc.NodeLoads(r.Context())
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"nodes": loads})
		return nil
	}))
}
