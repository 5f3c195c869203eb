package provisioning

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
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
	err = store.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := lockAccount(ctx, tx, accountID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO devices (id, account_id, mac, vendor, model, display_name, timezone, language, secret_hash, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, id, accountID, mac.String(), n.Vendor, n.Model, n.DisplayName,
			n.Timezone, n.Language, phones.HashSecret(secret), now)
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

func bindLines(ctx context.Context, tx pgx.Tx, accountID, deviceID string, lines []DeviceLine) error {
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
		var ok bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM lines WHERE id = $1 AND account_id = $2 AND state <> 'deleted')`, dl.Line, accountID).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			return fault.New(fault.Invalid, field+".line", "unknown line %q", dl.Line)
		}
		_, err := tx.Exec(ctx, `INSERT INTO device_lines (device_id, line_id, key) VALUES ($1, $2, $3)`, deviceID, dl.Line, key)
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
	err := store.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := lockAccount(ctx, tx, accountID); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM devices WHERE id = $1 AND account_id = $2)`, deviceID, accountID).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return fault.New(fault.NotFound, "", "device not found")
		}
		if active != nil {
			if _, err := tx.Exec(ctx, `UPDATE devices SET active = $2 WHERE id = $1`, deviceID, *active); err != nil {
				return err
			}
		}
		if lines != nil {
			if len(*lines) > phones.MaxLines {
				return fault.New(fault.Invalid, "lines", "a phone carries at most %d lines", phones.MaxLines)
			}
			if _, err := tx.Exec(ctx, `DELETE FROM device_lines WHERE device_id = $1`, deviceID); err != nil {
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
	return store.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM devices WHERE id = $1 AND account_id = $2`, deviceID, accountID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fault.New(fault.NotFound, "", "device not found")
		}
		return audit(ctx, tx, s.clock.Now(), actor, accountID, "device.delete", deviceID, nil)
	})
}

const deviceCols = `id, account_id, mac, vendor, model, display_name, timezone, language, active, created_at`

// Devices lists an account's phones.
func (s *Service) Devices(ctx context.Context, accountID string) ([]Device, error) {
	if _, err := s.Account(ctx, accountID); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+deviceCols+` FROM devices WHERE account_id = $1 ORDER BY created_at, mac`, accountID)
	if err != nil {
		return nil, err
	}
	list, err := pgx.CollectRows(rows, scanDevice)
	if err != nil {
		return nil, err
	}
	for i := range list {
		if list[i].Lines, err = s.deviceLines(ctx, list[i].ID); err != nil {
			return nil, err
		}
	}
	if list == nil {
		list = []Device{}
	}
	return list, nil
}

// Device returns one phone of the account.
func (s *Service) Device(ctx context.Context, accountID, id string) (Device, error) {
	if uuid.Validate(id) != nil || uuid.Validate(accountID) != nil {
		return Device{}, fault.New(fault.NotFound, "", "device not found")
	}
	rows, err := s.pool.Query(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = $1 AND account_id = $2`, id, accountID)
	if err != nil {
		return Device{}, err
	}
	d, err := pgx.CollectExactlyOneRow(rows, scanDevice)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, fault.New(fault.NotFound, "", "device not found")
	}
	if err != nil {
		return d, err
	}
	d.Lines, err = s.deviceLines(ctx, id)
	return d, err
}

func scanDevice(row pgx.CollectableRow) (Device, error) {
	var d Device
	err := row.Scan(&d.ID, &d.AccountID, &d.MAC, &d.Vendor, &d.Model, &d.DisplayName, &d.Timezone, &d.Language, &d.Active, &d.CreatedAt)
	return d, err
}

func (s *Service) deviceLines(ctx context.Context, deviceID string) ([]DeviceLine, error) {
	rows, err := s.pool.Query(ctx, `SELECT dl.line_id, dl.key, l.extension FROM device_lines dl JOIN lines l ON l.id = dl.line_id
		WHERE dl.device_id = $1 ORDER BY dl.key`, deviceID)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DeviceLine, error) {
		var dl DeviceLine
		return dl, r.Scan(&dl.Line, &dl.Key, &dl.Extension)
	})
	if out == nil {
		out = []DeviceLine{}
	}
	return out, err
}

// DeviceByMAC implements phones.Directory: the device as it is now,
// without its lines (DeviceLines reads them once the phone has
// authenticated). It is read on every request, so a removed or deactivated
// device stops being served at once.
func (s *Service) DeviceByMAC(ctx context.Context, mac phones.MAC) (phones.Device, error) {
	var d phones.Device
	var vendor string
	// A device without a time zone of its own keeps its account's, read
	// here so that changing the account's zone reaches its phones too.
	err := s.pool.QueryRow(ctx, `SELECT d.id, d.account_id, d.vendor, d.model, d.display_name,
		COALESCE(NULLIF(d.timezone, ''), a.timezone), d.language, d.secret_hash,
		d.active AND a.status = 'active' FROM devices d JOIN accounts a ON a.id = d.account_id WHERE d.mac = $1`, mac.String()).
		Scan(&d.ID, &d.AccountID, &vendor, &d.Model, &d.DisplayName, &d.TimeZone, &d.Language, &d.SecretHash, &d.Active)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, phones.ErrNotFound
	}
	if err != nil {
		return d, err
	}
	d.MAC, d.Vendor = mac, phones.Vendor(vendor)
	// Phones register to their account's node, and follow its moves.
	d.Registrar, err = s.PhoneRegistrar(ctx, d.AccountID)
	return d, err
}

// DeviceLines implements phones.Directory: the active lines bound to dev
// now, with their passwords, so an unbound line stops being served at once.
func (s *Service) DeviceLines(ctx context.Context, dev phones.Device) ([]phones.Line, error) {
	rows, err := s.pool.Query(ctx, `SELECT l.id, dl.key, l.extension, l.sip_username, a.sip_domain, l.caller_id, l.password_enc
		FROM device_lines dl JOIN lines l ON l.id = dl.line_id JOIN accounts a ON a.id = l.account_id
		WHERE dl.device_id = $1 AND l.state = 'active' AND l.account_id = $2 ORDER BY dl.key`, dev.ID, dev.AccountID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var lines []phones.Line
	for rows.Next() {
		var lineID string
		var ext int
		var sealed []byte
		var l phones.Line
		var callerID string
		if err := rows.Scan(&lineID, &l.Key, &ext, &l.Username, &l.Domain, &callerID, &sealed); err != nil {
			return nil, err
		}
		l.Extension = strconv.Itoa(ext)
		l.Label = l.Extension
		if l.Password, err = s.cipher.Open(lineID, sealed); err != nil {
			return nil, err
		}
		lines = append(lines, l)
	}
	return lines, rows.Err()
}
