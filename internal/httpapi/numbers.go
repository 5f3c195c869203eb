package httpapi

import (
	"net/http"
	"strconv"

	"github.com/pbxd/pbxd/provisioning"
)

// numberImportBody is POST /v1/numbers/import. Every field but area and
// setup_fee_minor is required.
type numberImportBody struct {
	Country       *string  `json:"country"`
	Area          string   `json:"area"`
	Kind          *string  `json:"kind"`
	Addon         *string  `json:"addon"`
	SetupFeeMinor int64    `json:"setup_fee_minor"`
	Numbers       []string `json:"numbers"`
}

// assignmentBody is POST /v1/accounts/{id}/numbers/{number}/assignment.
type assignmentBody struct {
	Line     string `json:"line"` // "" = the account's main line
	CallerID bool   `json:"caller_id"`
}

func required[T any](v *T, field string) (T, error) {
	if v == nil {
		var zero T
		return zero, Invalid(field, "%s is required", field)
	}
	return *v, nil
}

func numberFilter(r *http.Request) (provisioning.NumberFilter, error) {
	q := r.URL.Query()
	f := provisioning.NumberFilter{State: q.Get("state"), Prefix: q.Get("prefix"), Kind: q.Get("kind")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return f, Invalid("limit", "limit must be a positive integer")
		}
		f.Limit = n
	}
	return f, nil
}

func (a *API) numberRoutes(svc *provisioning.Service) {
	h := numberHandlers{svc}
	a.handleRoutes([]route{
		{"POST /v1/numbers/import", operatorIdem, h.importNumbers},
		{"GET /v1/numbers", operator, h.listNumbers},
		// Free local numbers, for a customer choosing one: only what is for sale.
		{"GET /v1/numbers/available", authed, h.availableNumbers},
		{"GET /v1/accounts/{id}/numbers", authed, h.accountNumbers},
		{"POST /v1/accounts/{id}/numbers/{number}/assignment", authedIdem, h.assignNumber},
		{"DELETE /v1/accounts/{id}/numbers/{number}/assignment", authed, h.unassignNumber},
	})
}

// numberHandlers serves the number routes, one method a route.
type numberHandlers struct {
	svc *provisioning.Service
}

// importNumbers serves POST /v1/numbers/import.
func (h numberHandlers) importNumbers(w http.ResponseWriter, r *http.Request) error {
	var b numberImportBody
	if err := decode(r, &b); err != nil {
		return err
	}
	in, err := b.toImport()
	if err != nil {
		return err
	}
	res, err := h.svc.ImportNumbers(r.Context(), PrincipalFrom(r.Context()).Actor(), in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// toImport checks the required fields of b and returns the import it asks for.
func (b numberImportBody) toImport() (provisioning.NumberImport, error) {
	var in provisioning.NumberImport
	var err error
	if in.Country, err = required(b.Country, "country"); err != nil {
		return in, err
	}
	if in.Kind, err = required(b.Kind, "kind"); err != nil {
		return in, err
	}
	if in.Addon, err = required(b.Addon, "addon"); err != nil {
		return in, err
	}
	if b.Numbers == nil {
		return in, Invalid("numbers", "numbers is required")
	}
	in.Area, in.SetupFeeMinor, in.Numbers = b.Area, b.SetupFeeMinor, b.Numbers
	return in, nil
}

// listNumbers serves GET /v1/numbers.
func (h numberHandlers) listNumbers(w http.ResponseWriter, r *http.Request) error {
	f, err := numberFilter(r)
	if err != nil {
		return err
	}
	list, err := h.svc.Numbers(r.Context(), "", f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"numbers": list})
	return nil
}

// availableNumbers serves GET /v1/numbers/available.
func (h numberHandlers) availableNumbers(w http.ResponseWriter, r *http.Request) error {
	f, err := numberFilter(r)
	if err != nil {
		return err
	}
	f.State, f.Kind = "available", provisioning.NumberLocal
	list, err := h.svc.Numbers(r.Context(), "", f)
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(list))
	for _, n := range list {
		out = append(out, map[string]any{"number": n.Number, "country": n.Country, "area": n.Area, "kind": n.Kind,
			"addon": n.Addon, "setup_fee_minor": n.SetupFeeMinor})
	}
	writeJSON(w, http.StatusOK, map[string]any{"numbers": out})
	return nil
}

// accountNumbers serves GET /v1/accounts/{id}/numbers.
func (h numberHandlers) accountNumbers(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	f, err := numberFilter(r)
	if err != nil {
		return err
	}
	list, err := h.svc.Numbers(r.Context(), id, f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"numbers": list})
	return nil
}

// assignNumber serves POST /v1/accounts/{id}/numbers/{number}/assignment.
func (h numberHandlers) assignNumber(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	var b assignmentBody
	if err := decode(r, &b); err != nil {
		return err
	}
	n, err := h.svc.AssignNumber(r.Context(), PrincipalFrom(r.Context()).Actor(), id, r.PathValue("number"), b.Line, b.CallerID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, n)
	return nil
}

// unassignNumber serves DELETE /v1/accounts/{id}/numbers/{number}/assignment.
func (h numberHandlers) unassignNumber(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	n, err := h.svc.UnassignNumber(r.Context(), PrincipalFrom(r.Context()).Actor(), id, r.PathValue("number"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, n)
	return nil
}

func (a *API) scheduledRoutes(svc *provisioning.Service) {
	h := scheduledHandlers{svc}
	a.handleRoutes([]route{
		{"GET /v1/accounts/{id}/scheduled-changes", authed, h.listScheduled},
		{"DELETE /v1/accounts/{id}/scheduled-changes/{sc}", authed, h.cancelScheduled},
	})
}

// scheduledHandlers serves the scheduled-change routes, one method a route.
type scheduledHandlers struct {
	svc *provisioning.Service
}

// listScheduled serves GET /v1/accounts/{id}/scheduled-changes.
func (h scheduledHandlers) listScheduled(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	list, err := h.svc.ScheduledChanges(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"scheduled_changes": list})
	return nil
}

// cancelScheduled serves DELETE /v1/accounts/{id}/scheduled-changes/{sc}.
func (h scheduledHandlers) cancelScheduled(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	sc, err := h.svc.CancelScheduled(r.Context(), PrincipalFrom(r.Context()).Actor(), id, r.PathValue("sc"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sc)
	return nil
}
