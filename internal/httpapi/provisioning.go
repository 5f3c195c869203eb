package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/pbxd/pbxd/internal/percent"
	"github.com/pbxd/pbxd/provisioning"
)

// accountScope returns the account id of the path, 404 when the caller is
// an account token of another account: existence must not leak.
func accountScope(r *http.Request) (string, error) {
	id := r.PathValue("id")
	p := PrincipalFrom(r.Context())
	if !p.Operator && p.AccountID != id {
		return "", NotFound("account")
	}
	return id, nil
}

func (a *API) provisioningRoutes(svc *provisioning.Service) {
	h := provisioningHandlers{a, svc}
	a.handleRoutes([]route{
		{"GET /v1/packages", authed, h.listPackages},
		{"POST /v1/accounts", operatorIdem, h.createAccount},
		{"GET /v1/accounts", operator, h.listAccounts},
		{"GET /v1/accounts/{id}", authed, h.getAccount},
		{"POST /v1/accounts/{id}/tokens", operator, h.createAccountToken},
		{"GET /v1/accounts/{id}/packages", authed, h.accountPackages},
		{"GET /v1/accounts/{id}/subscriptions", authed, h.listSubscriptions},
		{"GET /v1/accounts/{id}/lines", authed, h.listLines},
		{"GET /v1/accounts/{id}/lines/{line}", authed, h.getLine},
		{"PATCH /v1/accounts/{id}/lines/{line}", authedIdem, h.updateLine},
		{"GET /v1/accounts/{id}/lines/{line}/password", authed, h.revealPassword},
		{"POST /v1/accounts/{id}/lines/{line}/password", authedIdem, h.resetPassword},
		{"POST /v1/accounts/{id}/changes", authedIdem, h.previewChange},
		{"GET /v1/changes/{id}", authed, h.getChange},
		{"POST /v1/changes/{id}/confirm", authedIdem, h.confirmChange},
	})
}

// provisioningHandlers serves the provisioning routes, one method a route.
type provisioningHandlers struct {
	a   *API
	svc *provisioning.Service
}

// listPackages serves GET /v1/packages.
func (h provisioningHandlers) listPackages(w http.ResponseWriter, r *http.Request) error {
	pkgs, err := h.svc.Packages(r.Context(), false)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"packages": pkgs})
	return nil
}

// createAccount serves POST /v1/accounts.
func (h provisioningHandlers) createAccount(w http.ResponseWriter, r *http.Request) error {
	var body accountBody
	if err := decode(r, &body); err != nil {
		return err
	}
	n, err := body.toNew()
	if err != nil {
		return err
	}
	acct, err := h.svc.CreateAccount(r.Context(), PrincipalFrom(r.Context()).Actor(), n)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, accountJSON(acct))
	return nil
}

// listAccounts serves GET /v1/accounts.
func (h provisioningHandlers) listAccounts(w http.ResponseWriter, r *http.Request) error {
	list, err := h.svc.Accounts(r.Context())
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(list))
	for _, acct := range list {
		out = append(out, accountJSON(acct))
	}
	writeJSON(w, http.StatusOK, map[string]any{"accounts": out})
	return nil
}

// getAccount serves GET /v1/accounts/{id}.
func (h provisioningHandlers) getAccount(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	acct, err := h.svc.Account(r.Context(), id)
	if err != nil {
		return err
	}
	out := accountJSON(acct)
	// The account's move in progress, or its last one (null: never moved).
	if out["move"], err = h.svc.CurrentMove(r.Context(), id); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// createAccountToken serves POST /v1/accounts/{id}/tokens.
func (h provisioningHandlers) createAccountToken(w http.ResponseWriter, r *http.Request) error {
	tok, err := h.svc.CreateAccountToken(r.Context(), PrincipalFrom(r.Context()).Actor(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]string{"token": tok, "account_id": r.PathValue("id")})
	return nil
}

// accountPackages serves GET /v1/accounts/{id}/packages.
func (h provisioningHandlers) accountPackages(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	v, err := h.svc.MyPackages(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"packages": v})
	return nil
}

// listSubscriptions serves GET /v1/accounts/{id}/subscriptions.
func (h provisioningHandlers) listSubscriptions(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	v, err := h.svc.Subscriptions(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"subscriptions": v})
	return nil
}

// listLines serves GET /v1/accounts/{id}/lines.
func (h provisioningHandlers) listLines(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	v, err := h.svc.Lines(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"lines": v})
	return nil
}

// getLine serves GET /v1/accounts/{id}/lines/{line}.
func (h provisioningHandlers) getLine(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	l, err := h.svc.Line(r.Context(), id, r.PathValue("line"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, l)
	return nil
}

// updateLine serves PATCH /v1/accounts/{id}/lines/{line}.
func (h provisioningHandlers) updateLine(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	var body struct {
		Extension *int `json:"extension"`
	}
	if err := decode(r, &body); err != nil {
		return err
	}
	if body.Extension == nil {
		return Invalid("extension", "extension is required")
	}
	l, err := h.svc.ChangeExtension(r.Context(), PrincipalFrom(r.Context()).Actor(), id, r.PathValue("line"), *body.Extension)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, l)
	return nil
}

// revealPassword serves GET /v1/accounts/{id}/lines/{line}/password.
func (h provisioningHandlers) revealPassword(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	pw, err := h.svc.RevealPassword(r.Context(), PrincipalFrom(r.Context()).Actor(), id, r.PathValue("line"))
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]string{"password": pw})
	return nil
}

// resetPassword serves POST /v1/accounts/{id}/lines/{line}/password.
func (h provisioningHandlers) resetPassword(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	pw, err := h.svc.ResetPassword(r.Context(), PrincipalFrom(r.Context()).Actor(), id, r.PathValue("line"))
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]string{"password": pw})
	return nil
}

// previewChange serves POST /v1/accounts/{id}/changes.
func (h provisioningHandlers) previewChange(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	req, err := decodeChange(r)
	if err != nil {
		return err
	}
	// Set here, never by the body: the operator may pick either effective time.
	req.ByOperator = PrincipalFrom(r.Context()).Operator
	if len(req.ReleaseNumbers) > 0 && !req.ByOperator {
		// Customers give numbers back by request (remove_number, port_out).
		return Invalid("release_numbers", "numbers are removed by the operator: file a remove_number request")
	}
	pv, err := h.svc.PreviewChange(r.Context(), id, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, pv)
	return nil
}

// getChange serves GET /v1/changes/{id}.
func (h provisioningHandlers) getChange(w http.ResponseWriter, r *http.Request) error {
	pv, status, err := h.svc.ChangeOrder(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if p := PrincipalFrom(r.Context()); !p.Operator && p.AccountID != pv.AccountID {
		return NotFound("change order")
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": status, "preview": pv})
	return nil
}

// confirmChange serves POST /v1/changes/{id}/confirm.
func (h provisioningHandlers) confirmChange(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	scope := ""
	if !p.Operator {
		scope = p.AccountID
	}
	res, err := h.svc.ConfirmChange(r.Context(), p.Actor(), r.PathValue("id"), scope)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// wrapIdem runs h behind the idempotency-key store.
func wrapIdem(a *API, h HandlerFunc) HandlerFunc {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			a.writeError(w, r, err)
		}
	})
	wrapped := a.idempotent(a.opts.DB, inner)
	return func(w http.ResponseWriter, r *http.Request) error {
		wrapped.ServeHTTP(w, r)
		return nil
	}
}

type accountBody struct {
	Name           string            `json:"name"`
	SIPDomain      string            `json:"sip_domain"`
	Currency       string            `json:"currency"`
	Timezone       string            `json:"timezone"`
	VATPercent     json.RawMessage   `json:"vat_percent"`
	PaymentMode    string            `json:"payment_mode"`
	SeatPreference string            `json:"seat_preference"`
	ExtensionRange *extRange         `json:"extension_range"`
	BillingAddress map[string]string `json:"billing_address"`
	PBXNode        string            `json:"pbx_node"`
}

type extRange struct {
	First int `json:"first"`
	Last  int `json:"last"`
}

func (b accountBody) toNew() (provisioning.NewAccount, error) {
	n := provisioning.NewAccount{Name: b.Name, SIPDomain: b.SIPDomain, Currency: b.Currency, Timezone: b.Timezone,
		PaymentMode: b.PaymentMode, SeatPreference: b.SeatPreference, BillingAddress: b.BillingAddress, PBXNode: b.PBXNode}
	if n.SeatPreference == "" {
		n.SeatPreference = "auto_purchase"
	}
	if b.VATPercent != nil {
		// A number, not a string that looks like one ("20").
		var num json.Number
		if b.VATPercent[0] == '"' || json.Unmarshal(b.VATPercent, &num) != nil {
			return n, Invalid("vat_percent", "vat_percent must be a number like 20 or 5.5")
		}
		bp, err := percent.Parse(num.String())
		if err != nil {
			return n, Invalid("vat_percent", "vat_percent %v", err)
		}
		n.VATBP = bp
	}
	if b.ExtensionRange == nil {
		return n, Invalid("extension_range", "extension_range {first, last} is required")
	}
	n.ExtFirst, n.ExtLast = b.ExtensionRange.First, b.ExtensionRange.Last
	return n, nil
}

func accountJSON(a provisioning.Account) map[string]any {
	return map[string]any{
		"id": a.ID, "name": a.Name, "sip_domain": a.SIPDomain, "currency": a.Currency, "timezone": a.Timezone,
		"vat_percent": json.Number(percent.Format(a.VATBP)), "payment_mode": a.PaymentMode, "seat_preference": a.SeatPreference,
		"extension_range": extRange{First: a.ExtFirst, Last: a.ExtLast}, "billing_address": a.BillingAddress,
		"status": a.Status, "pbx_node": a.PBXNode, "created_at": a.CreatedAt,
	}
}

// changeBody is a change order as the API reads it: required fields are
// pointers, so that a missing quantity is an error rather than 0 (which
// would remove every line of the package).
type changeBody struct {
	Items            []changeItemBody           `json:"items"`
	Swaps            []swapBody                 `json:"swaps"`
	Numbers          []provisioning.NumberOrder `json:"numbers"`
	ReleaseNumbers   []string                   `json:"release_numbers"`
	ReleaseEffective string                     `json:"release_effective"`
}

type changeItemBody struct {
	Package     *string  `json:"package"`
	Quantity    *int     `json:"quantity"`
	Cycle       string   `json:"cycle"`
	RemoveLines []string `json:"remove_lines"`
	Effective   string   `json:"effective"`
}

type swapBody struct {
	Line    *string `json:"line"`
	Package *string `json:"package"`
}

// decodeChange reads a change order strictly (see decode) and checks its
// required fields.
func decodeChange(r *http.Request) (provisioning.ChangeRequest, error) {
	body, err := readBody(r)
	if err != nil {
		return provisioning.ChangeRequest{}, err
	}
	return parseChange(body)
}

// parseChange is decodeChange on a body already read.
func parseChange(body []byte) (provisioning.ChangeRequest, error) {
	var b changeBody
	if err := decodeBytes(body, &b); err != nil {
		return provisioning.ChangeRequest{}, err
	}
	var req provisioning.ChangeRequest
	for i, it := range b.Items {
		field := fmt.Sprintf("items[%d]", i)
		if it.Package == nil || *it.Package == "" {
			return provisioning.ChangeRequest{}, Invalid(field+".package", "%s.package is required", field)
		}
		if it.Quantity == nil {
			return provisioning.ChangeRequest{}, Invalid(field+".quantity", "%s.quantity is required (0 removes every line of the package)", field)
		}
		item := provisioning.ChangeItem{Package: *it.Package, Quantity: *it.Quantity, Cycle: it.Cycle, Effective: it.Effective}
		if len(it.RemoveLines) > 0 {
			item.RemoveLines = it.RemoveLines
		}
		req.Items = append(req.Items, item)
	}
	for i, sw := range b.Swaps {
		field := fmt.Sprintf("swaps[%d]", i)
		if sw.Line == nil || *sw.Line == "" {
			return provisioning.ChangeRequest{}, Invalid(field+".line", "%s.line is required", field)
		}
		if sw.Package == nil || *sw.Package == "" {
			return provisioning.ChangeRequest{}, Invalid(field+".package", "%s.package is required", field)
		}
		req.Swaps = append(req.Swaps, provisioning.Swap{Line: *sw.Line, Package: *sw.Package})
	}
	req.Numbers, req.ReleaseNumbers, req.ReleaseEffective = b.Numbers, b.ReleaseNumbers, b.ReleaseEffective
	if len(req.ReleaseNumbers) == 0 {
		req.ReleaseNumbers = nil
	}
	if len(req.Numbers) == 0 {
		req.Numbers = nil
	}
	return req, nil
}
