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
	h := billingHandlers{a, svc, runRenewals}
	a.handleRoutes([]route{
		{"GET /v1/accounts/{id}/invoices", authed, h.listInvoices},
		// ServeMux cannot match "{id}.pdf", so the suffix is read here.
		{"GET /v1/invoices/{id}", authed, h.getInvoice},
		{"POST /v1/invoices/{id}/mark-paid", operatorIdem, h.markPaid},
		{"POST /v1/invoices/{id}/credit-note", operatorIdem, h.creditNote},
		{"GET /v1/accounts/{id}/payment-methods", authed, h.listPaymentMethods},
		{"POST /v1/accounts/{id}/payment-methods", authedIdem, h.addPaymentMethod},
		{"DELETE /v1/accounts/{id}/payment-methods/{pm}", authedIdem, h.deletePaymentMethod},
		{"POST /v1/accounts/{id}/payment-methods/{pm}/default", authedIdem, h.setDefaultPaymentMethod},
		{"GET /v1/accounts/{id}/billing", authed, h.billingSummary},
		{"POST /v1/billing/run", operator, h.runBilling},
	})
}

// billingHandlers serves the billing routes, one method a route.
type billingHandlers struct {
	a           *API
	svc         *billing.Service
	runRenewals func(context.Context) error
}

// listInvoices serves GET /v1/accounts/{id}/invoices.
func (h billingHandlers) listInvoices(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	list, err := h.svc.Invoices(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"invoices": list})
	return nil
}

// getInvoice serves GET /v1/invoices/{id}.
func (h billingHandlers) getInvoice(w http.ResponseWriter, r *http.Request) error {
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
	inv, err := h.svc.Invoice(r.Context(), id, scope)
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
}

// markPaid serves POST /v1/invoices/{id}/mark-paid.
func (h billingHandlers) markPaid(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Reference string `json:"reference"`
	}
	if r.ContentLength != 0 {
		if err := decode(r, &body); err != nil {
			return err
		}
	}
	inv, err := h.svc.MarkPaid(r.Context(), PrincipalFrom(r.Context()).Actor(), r.PathValue("id"), body.Reference)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, inv.View())
	return nil
}

// creditNote serves POST /v1/invoices/{id}/credit-note.
func (h billingHandlers) creditNote(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Reason string `json:"reason"`
	}
	if r.ContentLength != 0 {
		if err := decode(r, &body); err != nil {
			return err
		}
	}
	cn, err := h.svc.CreditNote(r.Context(), PrincipalFrom(r.Context()).Actor(), r.PathValue("id"), body.Reason)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, cn.View())
	return nil
}

// listPaymentMethods serves GET /v1/accounts/{id}/payment-methods.
func (h billingHandlers) listPaymentMethods(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	list, err := h.svc.PaymentMethods(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"payment_methods": list})
	return nil
}

// addPaymentMethod serves POST /v1/accounts/{id}/payment-methods.
func (h billingHandlers) addPaymentMethod(w http.ResponseWriter, r *http.Request) error {
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
	pm, err := h.svc.AddPaymentMethod(r.Context(), PrincipalFrom(r.Context()).Actor(), id,
		billing.NewPaymentMethod{Gateway: body.Gateway, Token: body.Token, Label: body.Label, Default: body.Default})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, pm)
	return nil
}

// deletePaymentMethod serves DELETE /v1/accounts/{id}/payment-methods/{pm}.
func (h billingHandlers) deletePaymentMethod(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	if err := h.svc.DeletePaymentMethod(r.Context(), PrincipalFrom(r.Context()).Actor(), id, r.PathValue("pm")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// setDefaultPaymentMethod serves POST /v1/accounts/{id}/payment-methods/{pm}/default.
func (h billingHandlers) setDefaultPaymentMethod(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	if err := h.svc.SetDefaultPaymentMethod(r.Context(), PrincipalFrom(r.Context()).Actor(), id, r.PathValue("pm")); err != nil {
		return err
	}
	list, err := h.svc.PaymentMethods(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"payment_methods": list})
	return nil
}

// billingSummary serves GET /v1/accounts/{id}/billing.
func (h billingHandlers) billingSummary(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	sum, err := h.svc.Summary(r.Context(), id)
	if err != nil {
		return err
	}
	if h.a.opts.Provisioning == nil {
		writeJSON(w, http.StatusOK, sum)
		return nil
	}
	// Decreases waiting for their period end: the next bill follows them.
	sched, err := h.a.opts.Provisioning.PendingScheduled(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		billing.Summary
		Scheduled []provisioning.ScheduledChange `json:"scheduled_changes"`
	}{sum, sched})
	return nil
}

// runBilling serves POST /v1/billing/run.
func (h billingHandlers) runBilling(w http.ResponseWriter, r *http.Request) error {
	if h.runRenewals == nil {
		return NotFound("renewal job")
	}
	if err := h.runRenewals(r.Context()); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"job": billing.RenewalJob, "status": "done", "now": h.a.now()})
	return nil
}
