package provisioning

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/provdb"
	"github.com/pbxd/pbxd/provisioning/phones"
)

// Device is an IP phone registered on an account by MAC.
type Device struct {
	ID          string       `json:"id"`
	AccountID   string       `json:"account_id"`
	MAC         string       `json:"mac"`
	Vendor      string       `json:"vendor"`
	Model       string       `json:"model"`
	DisplayName string       `json:"display_name"`
	Timezone    string       `json:"timezone"` // IANA name; empty: the account's
	Language    string       `json:"language"`
	Active      bool         `json:"active"`
	Lines       []DeviceLine `json:"lines"`
	CreatedAt   time.Time    `json:"created_at"`
}

// DeviceLine binds a line to a phone key.
type DeviceLine struct {
	Line      string `json:"line"`
	Key       int    `json:"key"`
	Extension int    `json:"extension,omitempty"`
}

// NewDevice is what registering a phone takes.
type NewDevice struct {
	MAC         string
	Vendor      string
	Model       string
	DisplayName string
	Timezone    string
	Language    string
	Lines       []DeviceLine

	hardwareUnit string // a phone sold by pbxd, shipped with this device
}

// CreateDevice registers a phone and binds its lines. It returns the
// provisioning secret, shown once; only its hash is kept.
func (s *Service) CreateDevice(ctx context.Context, actor, accountID string, n NewDevice) (Device, string, error) {
	mac, err := phones.ParseMAC(n.MAC)
	if err != nil {
		return Device{}, "", fault.New(fault.Invalid, "mac", "%q is not a MAC address", n.MAC)
	}
	if !phones.Vendor(n.Vendor).Valid() {
		return Device{}, "", fault.New(fault.Invalid, "vendor", "vendor must be one of %v", phones.Vendors)
	}
	if n.Timezone != "" { // empty: the account's time zone
		if _, err := time.LoadLocation(n.Timezone); err != nil || strings.EqualFold(n.Timezone, "local") {
			return Device{}, "", fault.New(fault.Invalid, "timezone", "%q is not an IANA time zone", n.Timezone)
		}
	}
	if len(n.Lines) > phones.MaxLines {
		return Device{}, "", fault.New(fault.Invalid, "lines", "a phone carries at most %d lines", phones.MaxLines)
	}
	secret := phones.NewSecret()
	id := uuid.NewString()
	now := s.clock.Now()
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := s.lockAccount(ctx, tx, accountID); err != nil {
			return err
		}
		err := provdb.New(tx).InsertDevice(ctx, provdb.InsertDeviceParams{ID: id, AccountID: accountID, Mac: mac.String(),
			Vendor: n.Vendor, Model: n.Model, DisplayName: n.DisplayName, Timezone: n.Timezone, Language: n.Language,
			SecretHash: phones.HashSecret(secret), CreatedAt: now})
		if store.IsUniqueViolation(err, "devices_mac_key") {
			return fault.New(fault.Conflict, "mac", "MAC %s is already registered", mac)
		}
		if err != nil {
			return fmt.Errorf("insert device: %w", err)
		}
		if err := bindLines(ctx, tx, accountID, id, n.Lines); err != nil {
			return err
		}
		if n.hardwareUnit != "" {
			if err := shipUnit(ctx, tx, now, accountID, n.hardwareUnit, id, mac.String()); err != nil {
				return err
			}
		}
		return audit(ctx, tx, now, actor, accountID, "device.create", id, map[string]any{"mac": mac.String(), "vendor": n.Vendor, "hardware_unit": n.hardwareUnit})
	})
	if err != nil {
		return Device{}, "", err
	}
	d, err := s.Device(ctx, accountID, id)
	return d, secret, err
}

func bindLines(ctx context.Context, tx *store.Tx, accountID, deviceID string, lines []DeviceLine) error {
	q := provdb.New(tx)
	keys := map[int]bool{}
	for i, dl := range lines {
		field := fmt.Sprintf("lines[%d]", i)
		key := dl.Key
		if key == 0 {
			key = i + 1
		}
		if key < 1 || key > phones.MaxLines || keys[key] {
			return fault.New(fault.Invalid, field+".key", "key must be 1–%d and distinct", phones.MaxLines)
		}
		keys[key] = true
		if uuid.Validate(dl.Line) != nil {
			return fault.New(fault.Invalid, field+".line", "unknown line %q", dl.Line)
		}
		ok, err := q.LiveLineOfAccount(ctx, provdb.LiveLineOfAccountParams{LineID: dl.Line, AccountID: accountID})
		if err != nil {
			return err
		}
		if !ok {
			return fault.New(fault.Invalid, field+".line", "unknown line %q", dl.Line)
		}
		err = q.InsertDeviceLine(ctx, provdb.InsertDeviceLineParams{DeviceID: deviceID, LineID: dl.Line, Key: int32(key)})
		if store.IsUniqueViolation(err, "device_lines_line_key") {
			return fault.New(fault.Conflict, field+".line", "line %s is already on another phone", dl.Line)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// UpdateDevice replaces a phone's line bindings and/or its active flag.
func (s *Service) UpdateDevice(ctx context.Context, actor, accountID, deviceID string, lines *[]DeviceLine, active *bool) (Device, error) {
	if uuid.Validate(deviceID) != nil {
		return Device{}, fault.New(fault.NotFound, "", "device not found")
	}
	now := s.clock.Now()
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := s.lockAccount(ctx, tx, accountID); err != nil {
			return err
		}
		q := provdb.New(tx)
		exists, err := q.DeviceOfAccountExists(ctx, provdb.DeviceOfAccountExistsParams{ID: deviceID, AccountID: accountID})
		if err != nil {
			return err
		}
		if !exists {
			return fault.New(fault.NotFound, "", "device not found")
		}
		if active != nil {
			if err := q.SetDeviceActive(ctx, provdb.SetDeviceActiveParams{ID: deviceID, Active: *active}); err != nil {
				return err
			}
		}
		if lines != nil {
			if len(*lines) > phones.MaxLines {
				return fault.New(fault.Invalid, "lines", "a phone carries at most %d lines", phones.MaxLines)
			}
			if err := q.DeleteDeviceLines(ctx, deviceID); err != nil {
				return err
			}
			if err := bindLines(ctx, tx, accountID, deviceID, *lines); err != nil {
				return err
			}
		}
		return audit(ctx, tx, now, actor, accountID, "device.update", deviceID, nil)
	})
	if err != nil {
		return Device{}, err
	}
	return s.Device(ctx, accountID, deviceID)
}

// DeleteDevice unregisters a phone; it is refused its config at once.
func (s *Service) DeleteDevice(ctx context.Context, actor, accountID, deviceID string) error {
	if uuid.Validate(deviceID) != nil {
		return fault.New(fault.NotFound, "", "device not found")
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		n, err := provdb.New(tx).DeleteDevice(ctx, provdb.DeleteDeviceParams{ID: deviceID, AccountID: accountID})
		if err != nil {
			return err
		}
		if n == 0 {
			return fault.New(fault.NotFound, "", "device not found")
		}
		return audit(ctx, tx, s.clock.Now(), actor, accountID, "device.delete", deviceID, nil)
	})
}

// Devices lists an account's phones.
func (s *Service) Devices(ctx context.Context, accountID string) ([]Device, error) {
	if _, err := s.Account(ctx, accountID); err != nil {
		return nil, err
	}
	rows, err := s.q.ListDevices(ctx, accountID)
	if err != nil {
		return nil, err
	}
	list := make([]Device, 0, len(rows))
	for _, r := range rows {
		d := deviceFromRow(provdb.GetDeviceRow(r))
		if d.Lines, err = s.deviceLines(ctx, d.ID); err != nil {
			return nil, err
		}
		list = append(list, d)
	}
	return list, nil
}

// Device returns one phone of the account.
func (s *Service) Device(ctx context.Context, accountID, id string) (Device, error) {
	if uuid.Validate(id) != nil || uuid.Validate(accountID) != nil {
		return Device{}, fault.New(fault.NotFound, "", "device not found")
	}
	r, err := s.q.GetDevice(ctx, provdb.GetDeviceParams{ID: id, AccountID: accountID})
	if errors.Is(err, store.ErrNotFound) {
		return Device{}, fault.New(fault.NotFound, "", "device not found")
	}
	if err != nil {
		return Device{}, err
	}
	d := deviceFromRow(r)
	d.Lines, err = s.deviceLines(ctx, id)
	return d, err
}

func deviceFromRow(r provdb.GetDeviceRow) Device {
	return Device{ID: r.ID, AccountID: r.AccountID, MAC: r.Mac, Vendor: r.Vendor, Model: r.Model, DisplayName: r.DisplayName,
		Timezone: r.Timezone, Language: r.Language, Active: r.Active, CreatedAt: r.CreatedAt}
}

func (s *Service) deviceLines(ctx context.Context, deviceID string) ([]DeviceLine, error) {
	rows, err := s.q.DeviceKeys(ctx, deviceID)
	out := make([]DeviceLine, 0, len(rows))
	for _, r := range rows {
		out = append(out, DeviceLine{Line: r.LineID, Key: int(r.Key), Extension: int(r.Extension)})
	}
	return out, err
}

// DeviceByMAC implements phones.Directory: the device as it is now,
// without its lines (DeviceLines reads them once the phone has
// authenticated). It is read on every request, so a removed or deactivated
// device stops being served at once.
func (s *Service) DeviceByMAC(ctx context.Context, mac phones.MAC) (phones.Device, error) {
	r, err := s.q.DeviceByMAC(ctx, mac.String())
	if errors.Is(err, store.ErrNotFound) {
		return phones.Device{}, phones.ErrNotFound
	}
	if err != nil {
		return phones.Device{}, err
	}
	d := phones.Device{ID: r.ID, AccountID: r.AccountID, MAC: mac, Vendor: phones.Vendor(r.Vendor), Model: r.Model,
		DisplayName: r.DisplayName, TimeZone: r.Timezone, Language: r.Language, SecretHash: r.SecretHash, Active: r.Served}
	// Phones register to their account's node, and follow its moves.
	d.Registrar, err = s.PhoneRegistrar(ctx, d.AccountID)
	return d, err
}

// DeviceLines implements phones.Directory: the active lines bound to dev
// now, with their passwords, so an unbound line stops being served at once.
func (s *Service) DeviceLines(ctx context.Context, dev phones.Device) ([]phones.Line, error) {
	rows, err := s.q.DeviceServedLines(ctx, provdb.DeviceServedLinesParams{DeviceID: dev.ID, AccountID: dev.AccountID})
	if err != nil {
		return nil, err
	}
	var lines []phones.Line
	for _, r := range rows {
		l := phones.Line{Key: int(r.Key), Extension: strconv.Itoa(int(r.Extension)), Username: r.SipUsername,
			Domain: r.SipDomain}
		l.Label = l.Extension
		if l.Password, err = s.cipher.Open(r.ID, r.PasswordEnc); err != nil {
			return nil, err
		}
		lines = append(lines, l)
	}
	return lines, nil
}
