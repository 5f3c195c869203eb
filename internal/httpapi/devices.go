package httpapi

import (
	"net/http"

	"github.com/pbxd/pbxd/provisioning"
)

type deviceBody struct {
	MAC         string                    `json:"mac"`
	Vendor      string                    `json:"vendor"`
	Model       string                    `json:"model"`
	DisplayName string                    `json:"display_name"`
	Timezone    string                    `json:"timezone"`
	Language    string                    `json:"language"`
	Lines       []provisioning.DeviceLine `json:"lines"`
}

func (a *API) deviceRoutes(svc *provisioning.Service) {
	h := deviceHandlers{svc}
	a.handleRoutes([]route{
		{"POST /v1/accounts/{id}/devices", authedIdem, h.createDevice},
		{"GET /v1/accounts/{id}/devices", authed, h.listDevices},
		{"GET /v1/accounts/{id}/devices/{device}", authed, h.getDevice},
		{"PATCH /v1/accounts/{id}/devices/{device}", authedIdem, h.updateDevice},
		{"DELETE /v1/accounts/{id}/devices/{device}", authed, h.deleteDevice},
	})
}

// deviceHandlers serves the device routes, one method a route.
type deviceHandlers struct {
	svc *provisioning.Service
}

// createDevice serves POST /v1/accounts/{id}/devices.
func (h deviceHandlers) createDevice(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	var b deviceBody
	if err := decode(r, &b); err != nil {
		return err
	}
	d, secret, err := h.svc.CreateDevice(r.Context(), PrincipalFrom(r.Context()).Actor(), id, provisioning.NewDevice{
		MAC: b.MAC, Vendor: b.Vendor, Model: b.Model, DisplayName: b.DisplayName, Timezone: b.Timezone, Language: b.Language, Lines: b.Lines,
	})
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, map[string]any{"device": d, "provisioning_secret": secret,
		"provisioning_user": d.MAC, "note": "the secret is shown once; what the phone is given depends on its vendor (README, Phones): e.g. https://{mac}:{secret}@{host}/provision/ for Yealink, Polycom and Grandstream, .../provision/{mac}.xml as Snom's setting_server, .../provision/spa$MA.xml as Cisco's Profile_Rule"})
	return nil
}

// listDevices serves GET /v1/accounts/{id}/devices.
func (h deviceHandlers) listDevices(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	list, err := h.svc.Devices(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": list})
	return nil
}

// getDevice serves GET /v1/accounts/{id}/devices/{device}.
func (h deviceHandlers) getDevice(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	d, err := h.svc.Device(r.Context(), id, r.PathValue("device"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// updateDevice serves PATCH /v1/accounts/{id}/devices/{device}.
func (h deviceHandlers) updateDevice(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	var b struct {
		Lines  *[]provisioning.DeviceLine `json:"lines"`
		Active *bool                      `json:"active"`
	}
	if err := decode(r, &b); err != nil {
		return err
	}
	d, err := h.svc.UpdateDevice(r.Context(), PrincipalFrom(r.Context()).Actor(), id, r.PathValue("device"), b.Lines, b.Active)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// deleteDevice serves DELETE /v1/accounts/{id}/devices/{device}.
func (h deviceHandlers) deleteDevice(w http.ResponseWriter, r *http.Request) error {
	id, err := accountScope(r)
	if err != nil {
		return err
	}
	if err := h.svc.DeleteDevice(r.Context(), PrincipalFrom(r.Context()).Actor(), id, r.PathValue("device")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
