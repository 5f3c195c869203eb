package httpapi

import (
	"net/http"

	"github.com/pbxd/pbxd/provisioning"
)

// accountStatusRoutes serves the operator's suspend and resume of an
// account (its lines leave and come back to the PBX).
func (a *API) accountStatusRoutes(svc *provisioning.Service) {
	for _, op := range []struct {
		path    string
		suspend bool
	}{{"suspend", true}, {"resume", false}} {
		a.handle("POST /v1/accounts/{id}/"+op.path, a.operator(wrapIdem(a, func(w http.ResponseWriter, r *http.Request) error {
			acct, err := svc.SetAccountStatus(r.Context(), PrincipalFrom(r.Context()).Actor(), r.PathValue("id"), op.suspend)
			if err != nil {
				return err
			}
			writeJSON(w, http.StatusOK, accountJSON(acct))
			return nil
		})))
	}
}
