package httpapi

import (
	"net/http"

	"github.com/pbxd/pbxd/internal/users"
)

// UserRoutes serves an account's portal users. The operator manages any
// account's users; an account token acts as an admin of its own account
// (it may not create, change or remove owners). Owners and admins also
// manage users from the portal.
func UserRoutes(svc *users.Service) func(*API) {
	return func(a *API) { a.userRoutes(svc) }
}

func byRole(p Principal) users.ByRole {
	if p.Operator {
		return "operator"
	}
	return users.Admin
}

func (a *API) userRoutes(svc *users.Service) {
	h := userHandlers{svc}
	a.handleRoutes([]route{
		{"POST /v1/accounts/{id}/users", authedIdem, h.createUser},
		{"GET /v1/accounts/{id}/users", authed, h.listUsers},
		{"GET /v1/accounts/{id}/users/{user}", authed, h.getUser},
		{"PATCH /v1/accounts/{id}/users/{user}", authedIdem, h.updateUser},
		{"DELETE /v1/accounts/{id}/users/{user}", authedIdem, h.deleteUser},
	})
}

// userHandlers serves the portal-user routes, one method a route.
type userHandlers struct {
	svc *users.Service
}

// createUser serves POST /v1/accounts/{id}/users.
func (h userHandlers) createUser(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	var body users.NewUser
	if err := decode(r, &body); err != nil {
		return err
	}
	p := PrincipalFrom(r.Context())
	u, err := h.svc.Create(r.Context(), p.Actor(), byRole(p), id, body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, u)
	return nil
}

// listUsers serves GET /v1/accounts/{id}/users.
func (h userHandlers) listUsers(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	list, err := h.svc.List(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": list})
	return nil
}

// getUser serves GET /v1/accounts/{id}/users/{user}.
func (h userHandlers) getUser(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	u, err := h.svc.Get(r.Context(), id, r.PathValue("user"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

// updateUser serves PATCH /v1/accounts/{id}/users/{user}.
func (h userHandlers) updateUser(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	var body users.Change
	if err := decode(r, &body); err != nil {
		return err
	}
	p := PrincipalFrom(r.Context())
	u, err := h.svc.Update(r.Context(), p.Actor(), byRole(p), id, r.PathValue("user"), body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

// deleteUser serves DELETE /v1/accounts/{id}/users/{user}.
func (h userHandlers) deleteUser(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	p := PrincipalFrom(r.Context())
	if err := h.svc.Delete(r.Context(), p.Actor(), byRole(p), id, r.PathValue("user")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
