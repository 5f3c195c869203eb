package httpapi

import (
	"net/http"

	"github.com/pbxd/pbxd/provisioning"
)

func (a *API) hardwareRoutes(svc *provisioning.Service) {
	h := hardwareHandlers{svc}
	a.handleRoutes([]route{
		{"POST /v1/accounts/{id}/hardware", authedIdem, h.buyHardware},
		{"GET /v1/accounts/{id}/hardware", authed, h.listHardwareOrders},
		{"POST /v1/accounts/{id}/hardware/{unit}/ship", operatorIdem, h.shipHardware},
	})
}

// hardwareHandlers serves the hardware routes, one method a route.
type hardwareHandlers struct {
	svc *provisioning.Service
}

// buyHardware serves POST /v1/accounts/{id}/hardware.
func (h hardwareHandlers) buyHardware(w http.ResponseWriter, r *http.Request) error {
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
	o, err := h.svc.BuyHardware(r.Context(), PrincipalFrom(r.Context()).Actor(), id, item, qty)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, o)
	return nil
}

// listHardwareOrders serves GET /v1/accounts/{id}/hardware.
func (h hardwareHandlers) listHardwareOrders(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	list, err := h.svc.HardwareOrders(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"orders": list})
	return nil
}

// shipHardware serves POST /v1/accounts/{id}/hardware/{unit}/ship.
func (h hardwareHandlers) shipHardware(w http.ResponseWriter, r *http.Request) error {
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
	d, secret, err := h.svc.ShipHardware(r.Context(), PrincipalFrom(r.Context()).Actor(), r.PathValue("id"), r.PathValue("unit"), mac, b.Lines)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, map[string]any{"device": d, "provisioning_secret": secret, "provisioning_user": d.MAC,
		"note": "the secret is shown once: put https://{mac}:{secret}@{host}/provision/ in the phone before shipping it"})
	return nil
}
