package httpapi

import (
	"net/http"

	"github.com/pbxd/pbxd/provisioning"
)

// accountStatusRoutes serves the operator's suspend and resume of an
// account (its lines leave and come back to the PBX).
func (a *API) accountStatusRoutes(svc *provisioning.Service) {
	h := accountStatusHandlers{svc}
	a.handleRoutes([]route{
		{"POST /v1/accounts/{id}/suspend", operatorIdem, h.suspendAccount},
		{"POST /v1/accounts/{id}/resume", operatorIdem, h.resumeAccount},
	})
}

// accountStatusHandlers serves the account-status routes, one method a
// route.
type accountStatusHandlers struct {
	svc *provisioning.Service
}

// suspendAccount serves POST /v1/accounts/{id}/suspend.
func (h accountStatusHandlers) suspendAccount(w http.ResponseWriter, r *http.Request) error {
	return h.setStatus(w, r, true)
}

// resumeAccount serves POST /v1/accounts/{id}/resume.
func (h accountStatusHandlers) resumeAccount(w http.ResponseWriter, r *http.Request) error {
	return h.setStatus(w, r, false)
}

// setStatus suspends (or resumes) account {id} and writes the account.
func (h accountStatusHandlers) setStatus(w http.ResponseWriter, r *http.Request, suspend bool) error {
	acct, err := h.svc.SetAccountStatus(r.Context(), PrincipalFrom(r.Context()).Actor(), r.PathValue("id"), suspend)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, accountJSON(acct))
	return nil
}
