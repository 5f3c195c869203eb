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
	a.handle("POST /v1/accounts/{id}/devices", a.authed(wrapIdem(a, func(w http.ResponseWriter, r *http.Request) error {
		id, err := accountScope(r)
		if err != nil {
			return err
		}
		var b deviceBody
		if err := decode(r, &b); err != nil {
			return err
		}
		d, secret, err := svc.CreateDevice(r.Context(), PrincipalFrom(r.Context()).Actor(), id, provisioning.NewDevice{
			MAC: b.MAC, Vendor: b.Vendor, Model: b.Model, DisplayName: b.DisplayName, Timezone: b.Timezone, Language: b.Language, Lines: b.Lines,
		})
		if err != nil {
			return err
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusCreated, map[string]any{"device": d, "provisioning_secret": secret,
			"provisioning_user": d.MAC, "note": "the secret is shown once; what the phone is given depends on its vendor (README, Phones): e.g. https://{mac}:{secret}@{host}/provision/ for Yealink, Polycom and Grandstream, .../provision/{mac}.xml as Snom's setting_server, .../provision/spa$MA.xml as Cisco's Profile_Rule"})
		return nil
	})))
	a.handle("GET /v1/accounts/{id}/devices", a.authed(func(w http.ResponseWriter, r *http.Request) error {
		id, err := accountScope(r)
		if err != nil {
			return err
		}
		list, err := svc.Devices(r.Context(), id)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"devices": list})
		return nil
	}))
	a.handle("GET /v1/accounts/{id}/devices/{device}", a.authed(func(w http.ResponseWriter, r *http.Request) error {
		id, err := accountScope(r)
		if err != nil {
			return err
		}
		d, err := svc.Device(r.Context(), id, r.PathValue("device"))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, d)
		return nil
	}))
	a.handle("PATCH /v1/accounts/{id}/devices/{device}", a.authed(wrapIdem(a, func(w http.ResponseWriter, r *http.Request) error {
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
		d, err := svc.UpdateDevice(r.Context(), PrincipalFrom(r.Context()).Actor(), id, r.PathValue("device"), b.Lines, b.Active)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, d)
		return nil
	})))
	a.handle("DELETE /v1/accounts/{id}/devices/{device}", a.authed(func(w http.ResponseWriter, r *http.Request) error {
		id, err := accountScope(r)
		if err != nil {
			return err
		}
		if err := svc.DeleteDevice(r.Context(), PrincipalFrom(r.Context()).Actor(), id, r.PathValue("device")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
}
