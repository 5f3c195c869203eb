package httpapi

import (
	"net/http"

	"github.com/pbxd/pbxd/provisioning"
)

func (a *API) hardwareRoutes(svc *provisioning.Service) {
	a.handle("POST /v1/accounts/{id}/hardware", a.authed(wrapIdem(a, func(w http.ResponseWriter, r *http.Request) error {
		id, err := accountScope(r)
		if err != nil {
			return err
		}
		var b struct {
			Item     *string `json:"item"`
			Quantity *int    `json:"quantity"`
		}
		if err := decode(r, &b); err != nil {
			return err
		}
		item, err := required(b.Item, "item")
		if err != nil {
			return err
		}
		qty := 1
		if b.Quantity != nil {
			qty = *b.Quantity
		}
		o, err := svc.BuyHardware(r.Context(), PrincipalFrom(r.Context()).Actor(), id, item, qty)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, o)
		return nil
	})))
	a.handle("GET /v1/accounts/{id}/hardware", a.authed(func(w http.ResponseWriter, r *http.Request) error {
		id, err := accountScope(r)
		if err != nil {
			return err
		}
		list, err := svc.HardwareOrders(r.Context(), id)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"orders": list})
		return nil
	}))
	a.handle("POST /v1/accounts/{id}/hardware/{unit}/ship", a.operator(wrapIdem(a, func(w http.ResponseWriter, r *http.Request) error {
		var b struct {
			MAC   *string                   `json:"mac"`
			Lines []provisioning.DeviceLine `json:"lines"`
		}
		if err := decode(r, &b); err != nil {
			return err
		}
		mac, err := required(b.MAC, "mac")
		if err != nil {
			return err
		}
		d, secret, err := svc.ShipHardware(r.Context(), PrincipalFrom(r.Context()).Actor(), r.PathValue("id"), r.PathValue("unit"), mac, b.Lines)
		if err != nil {
			return err
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusCreated, map[string]any{"device": d, "provisioning_secret": secret, "provisioning_user": d.MAC,
			"note": "the secret is shown once: put https://{mac}:{secret}@{host}/provision/ in the phone before shipping it"})
		return nil
	})))
}
