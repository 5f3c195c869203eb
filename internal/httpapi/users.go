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
	mut := func(h HandlerFunc) http.Handler { return a.authed(wrapIdem(a, h)) }
	a.handle("POST /v1/accounts/{id}/users", mut(func(w http.ResponseWriter, r *http.Request) error {
		id, err := accountScope(r)
		if err != nil {
			return err
		}
		var body users.NewUser
		if err := decode(r, &body); err != nil {
			return err
		}
		p := PrincipalFrom(r.Context())
		u, err := svc.Create(r.Context(), p.Actor(), byRole(p), id, body)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, u)
		return nil
	}))
	a.handle("GET /v1/accounts/{id}/users", a.authed(func(w http.ResponseWriter, r *http.Request) error {
		id, err := accountScope(r)
		if err != nil {
			return err
		}
		list, err := svc.List(r.Context(), id)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"users": list})
		return nil
	}))
	a.handle("GET /v1/accounts/{id}/users/{user}", a.authed(func(w http.ResponseWriter, r *http.Request) error {
		id, err := accountScope(r)
		if err != nil {
			return err
		}
		u, err := svc.Get(r.Context(), id, r.PathValue("user"))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, u)
		return nil
	}))
	a.handle("PATCH /v1/accounts/{id}/users/{user}", mut(func(w http.ResponseWriter, r *http.Request) error {
		id, err := accountScope(r)
		if err != nil {
			return err
		}
		var body users.Change
		if err := decode(r, &body); err != nil {
			return err
		}
		p := PrincipalFrom(r.Context())
		u, err := svc.Update(r.Context(), p.Actor(), byRole(p), id, r.PathValue("user"), body)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, u)
		return nil
	}))
	a.handle("DELETE /v1/accounts/{id}/users/{user}", mut(func(w http.ResponseWriter, r *http.Request) error {
		id, err := accountScope(r)
		if err != nil {
			return err
		}
		p := PrincipalFrom(r.Context())
		if err := svc.Delete(r.Context(), p.Actor(), byRole(p), id, r.PathValue("user")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
}
