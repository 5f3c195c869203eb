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
	a.handle("POST /v1/numbers/import", a.operator(wrapIdem(a, func(w http.ResponseWriter, r *http.Request) error {
		var b numberImportBody
		if err := decode(r, &b); err != nil {
			return err
		}
		var in provisioning.NumberImport
		var err error
		if in.Country, err = required(b.Country, "country"); err != nil {
			return err
		}
		if in.Kind, err = required(b.Kind, "kind"); err != nil {
			return err
		}
		if in.Addon, err = required(b.Addon, "addon"); err != nil {
			return err
		}
		if b.Numbers == nil {
			return Invalid("numbers", "numbers is required")
		}
		in.Area, in.SetupFeeMinor, in.Numbers = b.Area, b.SetupFeeMinor, b.Numbers
		res, err := svc.ImportNumbers(r.Context(), PrincipalFrom(r.Context()).Actor(), in)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, res)
		return nil
	})))
	a.handle("GET /v1/numbers", a.operator(func(w http.ResponseWriter, r *http.Request) error {
		f, err := numberFilter(r)
		if err != nil {
			return err
		}
		list, err := svc.Numbers(r.Context(), "", f)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"numbers": list})
		return nil
	}))
	// Free local numbers, for a customer choosing one: only what is for sale.
	a.handle("GET /v1/numbers/available", a.authed(func(w http.ResponseWriter, r *http.Request) error {
		f, err := numberFilter(r)
		if err != nil {
			return err
		}
		f.State, f.Kind = "available", provisioning.NumberLocal
		list, err := svc.Numbers(r.Context(), "", f)
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
	}))
	a.handle("GET /v1/accounts/{id}/numbers", a.authed(func(w http.ResponseWriter, r *http.Request) error {
		id, err := accountScope(r)
		if err != nil {
			return err
		}
		f, err := numberFilter(r)
		if err != nil {
			return err
		}
		list, err := svc.Numbers(r.Context(), id, f)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"numbers": list})
		return nil
	}))
	a.handle("POST /v1/accounts/{id}/numbers/{number}/assignment", a.authed(wrapIdem(a, func(w http.ResponseWriter, r *http.Request) error {
		id, err := accountScope(r)
		if err != nil {
			return err
		}
		var b assignmentBody
		if err := decode(r, &b); err != nil {
			return err
		}
		n, err := svc.AssignNumber(r.Context(), PrincipalFrom(r.Context()).Actor(), id, r.PathValue("number"), b.Line, b.CallerID)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, n)
		return nil
	})))
	a.handle("DELETE /v1/accounts/{id}/numbers/{number}/assignment", a.authed(func(w http.ResponseWriter, r *http.Request) error {
		id, err := accountScope(r)
		if err != nil {
			return err
		}
		n, err := svc.UnassignNumber(r.Context(), PrincipalFrom(r.Context()).Actor(), id, r.PathValue("number"))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, n)
		return nil
	}))
}

func (a *API) scheduledRoutes(svc *provisioning.Service) {
	a.handle("GET /v1/accounts/{id}/scheduled-changes", a.authed(func(w http.ResponseWriter, r *http.Request) error {
		id, err := accountScope(r)
		if err != nil {
			return err
		}
		list, err := svc.ScheduledChanges(r.Context(), id)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"scheduled_changes": list})
		return nil
	}))
	a.handle("DELETE /v1/accounts/{id}/scheduled-changes/{sc}", a.authed(func(w http.ResponseWriter, r *http.Request) error {
		id, err := accountScope(r)
		if err != nil {
			return err
		}
		sc, err := svc.CancelScheduled(r.Context(), PrincipalFrom(r.Context()).Actor(), id, r.PathValue("sc"))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, sc)
		return nil
	}))
}
