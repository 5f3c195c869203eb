package httpapi

import (
	"bytes"
	"context"
	"net/http"
	"strings"

	"github.com/pbxd/pbxd/billing"
	"github.com/pbxd/pbxd/provisioning"
)

// BillingRoutes serves invoices, payment methods, the billing summary and
// the operator's "run renewals now" (runRenewals, e.g. the scheduler's
// RunNow of the renewal job).
func BillingRoutes(svc *billing.Service, runRenewals func(context.Context) error) func(*API) {
	return func(a *API) { a.billingRoutes(svc, runRenewals) }
}

func (a *API) billingRoutes(svc *billing.Service, runRenewals func(context.Context) error) {
	mut := func(h HandlerFunc) http.Handler { return a.authed(wrapIdem(a, h)) }
	a.handle("GET /v1/accounts/{id}/invoices", a.authed(func(w http.ResponseWriter, r *http.Request) error {
		id, err := accountScope(r)
		if err != nil {
			return err
		}
		list, err := svc.Invoices(r.Context(), id)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"invoices": list})
		return nil
	}))
	// ServeMux cannot match "{id}.pdf", so the suffix is read here.
	a.handle("GET /v1/invoices/{id}", a.authed(func(w http.ResponseWriter, r *http.Request) error {
		id, format := r.PathValue("id"), "json"
		for _, f := range []string{"pdf", "html", "json"} {
			if base, ok := strings.CutSuffix(id, "."+f); ok {
				id, format = base, f
				break
			}
		}
		scope := ""
		if p := PrincipalFrom(r.Context()); !p.Operator {
			scope = p.AccountID
		}
		inv, err := svc.Invoice(r.Context(), id, scope)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		switch format {
		case "json":
			writeJSON(w, http.StatusOK, inv.View())
			return nil
		case "html":
			if err := billing.RenderHTML(&buf, inv.Invoice); err != nil {
				return err
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
		case "pdf":
			if err := billing.RenderPDF(&buf, inv.Invoice); err != nil {
				return err
			}
			w.Header().Set("Content-Type", "application/pdf")
			w.Header().Set("Content-Disposition", `inline; filename="invoice-`+inv.Number+`.pdf"`)
		}
		w.Header().Set("Cache-Control", "private, no-cache")
		_, _ = w.Write(buf.Bytes())
		return nil
	}))
	a.handle("POST /v1/invoices/{id}/mark-paid", a.operator(wrapIdem(a, func(w http.ResponseWriter, r *http.Request) error {
		var body struct {
			Reference string `json:"reference"`
		}
		if r.ContentLength != 0 {
			if err := decode(r, &body); err != nil {
				return err
			}
		}
		inv, err := svc.MarkPaid(r.Context(), PrincipalFrom(r.Context()).Actor(), r.PathValue("id"), body.Reference)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, inv.View())
		return nil
	})))
	a.handle("POST /v1/invoices/{id}/credit-note", a.operator(wrapIdem(a, func(w http.ResponseWriter, r *http.Request) error {
		var body struct {
			Reason string `json:"reason"`
		}
		if r.ContentLength != 0 {
			if err := decode(r, &body); err != nil {
				return err
			}
		}
		cn, err := svc.CreditNote(r.Context(), PrincipalFrom(r.Context()).Actor(), r.PathValue("id"), body.Reason)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, cn.View())
		return nil
	})))
	a.handle("GET /v1/accounts/{id}/payment-methods", a.authed(func(w http.ResponseWriter, r *http.Request) error {
		id, err := accountScope(r)
		if err != nil {
			return err
		}
		list, err := svc.PaymentMethods(r.Context(), id)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"payment_methods": list})
		return nil
	}))
	a.handle("POST /v1/accounts/{id}/payment-methods", mut(func(w http.ResponseWriter, r *http.Request) error {
		id, err := accountScope(r)
		if err != nil {
			return err
		}
		var body struct {
			Gateway string `json:"gateway"`
			Token   string `json:"token"`
			Label   string `json:"label"`
			Default bool   `json:"default"`
		}
		if err := decode(r, &body); err != nil {
			return err
		}
		if body.Gateway == "" {
			return Invalid("gateway", "gateway is required (manual or sandbox)")
		}
		pm, err := svc.AddPaymentMethod(r.Context(), PrincipalFrom(r.Context()).Actor(), id,
			billing.NewPaymentMethod{Gateway: body.Gateway, Token: body.Token, Label: body.Label, Default: body.Default})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, pm)
		return nil
	}))
	a.handle("DELETE /v1/accounts/{id}/payment-methods/{pm}", mut(func(w http.ResponseWriter, r *http.Request) error {
		id, err := accountScope(r)
		if err != nil {
			return err
		}
		if err := svc.DeletePaymentMethod(r.Context(), PrincipalFrom(r.Context()).Actor(), id, r.PathValue("pm")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
	a.handle("POST /v1/accounts/{id}/payment-methods/{pm}/default", mut(func(w http.ResponseWriter, r *http.Request) error {
		id, err := accountScope(r)
		if err != nil {
			return err
		}
		if err := svc.SetDefaultPaymentMethod(r.Context(), PrincipalFrom(r.Context()).Actor(), id, r.PathValue("pm")); err != nil {
			return err
		}
		list, err := svc.PaymentMethods(r.Context(), id)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"payment_methods": list})
		return nil
	}))
	a.handle("GET /v1/accounts/{id}/billing", a.authed(func(w http.ResponseWriter, r *http.Request) error {
		id, err := accountScope(r)
		if err != nil {
			return err
		}
		sum, err := svc.Summary(r.Context(), id)
		if err != nil {
			return err
		}
		if a.opts.Provisioning == nil {
			writeJSON(w, http.StatusOK, sum)
			return nil
		}
		// Decreases waiting for their period end: the next bill follows them.
		sched, err := a.opts.Provisioning.PendingScheduled(r.Context(), id)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, struct {
			billing.Summary
			Scheduled []provisioning.ScheduledChange `json:"scheduled_changes"`
		}{sum, sched})
		return nil
	}))
	a.handle("POST /v1/billing/run", a.operator(func(w http.ResponseWriter, r *http.Request) error {
		if runRenewals == nil {
			return NotFound("renewal job")
		}
		if err := runRenewals(r.Context()); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"job": billing.RenewalJob, "status": "done", "now": a.now()})
		return nil
	}))
}
