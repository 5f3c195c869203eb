package provisioning

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
)

// Charger takes one-time card payments and issues their invoices.
// Provisioning declares it; the daemon satisfies it with package billing.
type Charger interface {
	// ChargeOneOff charges the account's card for items now and returns the
	// paid invoice's id. ref makes it idempotent: the same ref never
	// charges twice. A refused payment is a fault.PaymentRequired, no card
	// a fault.Conflict.
	ChargeOneOff(ctx context.Context, acct Account, ref string, items []OneOffItem, at time.Time) (invoiceID string, err error)
}

// OneOffItem is one line of a one-time purchase.
type OneOffItem struct {
	Code        string
	Description string
	Quantity    int64
	UnitMinor   int64
}

// MaxHardwareQuantity bounds one purchase.
const MaxHardwareQuantity = 100

// HardwareOrder is a hardware purchase.
type HardwareOrder struct {
	ID        string         `json:"id"`
	Item      string         `json:"item"`
	Quantity  int            `json:"quantity"`
	UnitMinor int64          `json:"unit_minor"`
	Currency  string         `json:"currency"`
	State     string         `json:"state"` // pending, paid, failed
	InvoiceID *string        `json:"invoice_id"`
	Detail    string         `json:"detail,omitempty"`
	CreatedAt time.Time      `json:"created_at"`
	SettledAt *time.Time     `json:"settled_at,omitempty"`
	Units     []HardwareUnit `json:"units"`
}

// HardwareUnit is one phone bought, awaiting its MAC until shipped.
type HardwareUnit struct {
	ID        string     `json:"id"`
	OrderID   string     `json:"order_id"`
	Item      string     `json:"item"`
	State     string     `json:"state"` // awaiting_mac, shipped
	MAC       string     `json:"mac,omitempty"`
	DeviceID  *string    `json:"device_id"`
	CreatedAt time.Time  `json:"created_at"`
	ShippedAt *time.Time `json:"shipped_at,omitempty"`
}

// BuyHardware sells quantity units of a hardware catalog item, paid in full
// by card at once whatever the account's payment mode. The order is
// committed first (it reserves the stock), the card is charged outside any
// transaction, then the order is settled: paid, with its invoice and one
// unit per phone awaiting its MAC; or failed, freeing the stock.
func (s *Service) BuyHardware(ctx context.Context, actor, accountID, item string, quantity int) (HardwareOrder, error) {
	if s.charger == nil {
		return HardwareOrder{}, fault.New(fault.Conflict, "", "hardware sales need billing")
	}
	if quantity < 1 || quantity > MaxHardwareQuantity {
		return HardwareOrder{}, fault.New(fault.Invalid, "quantity", "quantity must be between 1 and %d", MaxHardwareQuantity)
	}
	now := s.clock.Now()
	id := uuid.NewString()
	err := store.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		acct, err := lockAccount(ctx, tx, accountID)
		if err != nil {
			return err
		}
		if acct.Status != "active" {
			return fault.New(fault.Conflict, "", "account is %s", acct.Status)
		}
		var kind, currency string
		var price int64
		var stock *int
		var retired bool
		err = tx.QueryRow(ctx, `SELECT kind, price_minor, currency, stock, retired FROM packages WHERE code = $1 FOR UPDATE`, item).
			Scan(&kind, &price, &currency, &stock, &retired)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && (kind != "hardware" || retired)) {
			return fault.New(fault.Invalid, "item", "%q is not hardware on sale; see GET /v1/packages (kind hardware)", item)
		}
		if err != nil {
			return err
		}
		if currency != acct.Currency {
			return fault.New(fault.Invalid, "item", "%s is sold in %s, the account pays in %s", item, currency, acct.Currency)
		}
		if stock != nil {
			var sold int
			if err := tx.QueryRow(ctx, `SELECT coalesce(sum(quantity), 0) FROM hardware_orders WHERE item_code = $1 AND state <> 'failed'`, item).Scan(&sold); err != nil {
				return err
			}
			if left := *stock - sold; quantity > left {
				return fault.New(fault.Conflict, "quantity", "only %d of %s left in stock", max(left, 0), item)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO hardware_orders (id, account_id, item_code, quantity, unit_minor, currency, state, created_by, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8)`, id, accountID, item, quantity, price, currency, actor, now); err != nil {
			return fmt.Errorf("store hardware order: %w", err)
		}
		return audit(ctx, tx, now, actor, accountID, "hardware.order", id, map[string]any{"item": item, "quantity": quantity, "unit_minor": price})
	})
	if err != nil {
		return HardwareOrder{}, err
	}
	return s.settleHardware(ctx, id)
}

// settleHardware charges a pending order and records the outcome. A
// refusal fails the order (and is returned); an error that says nothing
// about the payment (gateway or database down) leaves it pending for
// SettleHardwareOrders.
func (s *Service) settleHardware(ctx context.Context, id string) (HardwareOrder, error) {
	var accountID, item, name string
	var qty int
	var unit int64
	err := s.pool.QueryRow(ctx, `SELECT o.account_id, o.item_code, p.name, o.quantity, o.unit_minor
		FROM hardware_orders o JOIN packages p ON p.code = o.item_code WHERE o.id = $1 AND o.state = 'pending'`, id).
		Scan(&accountID, &item, &name, &qty, &unit)
	if errors.Is(err, pgx.ErrNoRows) {
		return s.hardwareOrder(ctx, accountID, id) // settled meanwhile
	}
	if err != nil {
		return HardwareOrder{}, err
	}
	acct, err := s.Account(ctx, accountID)
	if err != nil {
		return HardwareOrder{}, err
	}
	now := s.clock.Now()
	inv, cerr := s.charger.ChargeOneOff(ctx, acct, "hardware:"+id, []OneOffItem{{Code: item, Description: name, Quantity: int64(qty), UnitMinor: unit}}, now)
	fe, refused := fault.As(cerr)
	if cerr != nil && !refused {
		return HardwareOrder{}, fmt.Errorf("charge hardware order %s (left pending, retried later): %w", id, cerr)
	}
	err = store.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if refused {
			tag, err := tx.Exec(ctx, `UPDATE hardware_orders SET state = 'failed', detail = $2, settled_at = $3 WHERE id = $1 AND state = 'pending'`, id, fe.Msg, now)
			if err != nil || tag.RowsAffected() == 0 {
				return err
			}
			return audit(ctx, tx, now, "billing", accountID, "hardware.failed", id, map[string]any{"detail": fe.Msg})
		}
		tag, err := tx.Exec(ctx, `UPDATE hardware_orders SET state = 'paid', invoice_id = $2, settled_at = $3 WHERE id = $1 AND state = 'pending'`, id, inv, now)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		for range qty {
			if _, err := tx.Exec(ctx, `INSERT INTO hardware_units (id, order_id, account_id, item_code, state, created_at)
				VALUES ($1, $2, $3, $4, 'awaiting_mac', $5)`, uuid.NewString(), id, accountID, item, now); err != nil {
				return fmt.Errorf("store hardware unit: %w", err)
			}
		}
		return audit(ctx, tx, now, "billing", accountID, "hardware.paid", id, map[string]any{"invoice_id": inv})
	})
	if err != nil {
		return HardwareOrder{}, err
	}
	if refused {
		return HardwareOrder{}, cerr
	}
	return s.hardwareOrder(ctx, accountID, id)
}

// SettleHardwareOrders retries the orders left pending (a gateway timeout,
// a crash between the charge and its record) for more than a minute; the
// charge's idempotency key makes a retry safe.
func (s *Service) SettleHardwareOrders(ctx context.Context, now time.Time) error {
	rows, err := s.pool.Query(ctx, `SELECT id FROM hardware_orders WHERE state = 'pending' AND created_at < $1 ORDER BY created_at`, now.Add(-time.Minute))
	if err != nil {
		return fmt.Errorf("list pending hardware orders: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		if _, err := s.settleHardware(ctx, id); err != nil {
			if _, refused := fault.As(err); !refused {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

const hardwareOrderCols = `id, item_code, quantity, unit_minor, currency, state, invoice_id, detail, created_at, settled_at`

func scanHardwareOrder(row pgx.CollectableRow) (HardwareOrder, error) {
	var o HardwareOrder
	err := row.Scan(&o.ID, &o.Item, &o.Quantity, &o.UnitMinor, &o.Currency, &o.State, &o.InvoiceID, &o.Detail, &o.CreatedAt, &o.SettledAt)
	o.Units = []HardwareUnit{}
	return o, err
}

func scanHardwareUnit(row pgx.CollectableRow) (HardwareUnit, error) {
	var u HardwareUnit
	err := row.Scan(&u.ID, &u.OrderID, &u.Item, &u.State, &u.MAC, &u.DeviceID, &u.CreatedAt, &u.ShippedAt)
	return u, err
}

// HardwareOrders lists an account's hardware orders with their units,
// newest first.
func (s *Service) HardwareOrders(ctx context.Context, accountID string) ([]HardwareOrder, error) {
	if _, err := s.Account(ctx, accountID); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+hardwareOrderCols+` FROM hardware_orders WHERE account_id = $1 ORDER BY created_at DESC, id`, accountID)
	if err != nil {
		return nil, err
	}
	orders, err := pgx.CollectRows(rows, scanHardwareOrder)
	if err != nil {
		return nil, err
	}
	rows, err = s.pool.Query(ctx, `SELECT id, order_id, item_code, state, mac, device_id, created_at, shipped_at
		FROM hardware_units WHERE account_id = $1 ORDER BY created_at, id`, accountID)
	if err != nil {
		return nil, err
	}
	units, err := pgx.CollectRows(rows, scanHardwareUnit)
	if err != nil {
		return nil, err
	}
	for i := range orders {
		for _, u := range units {
			if u.OrderID == orders[i].ID {
				orders[i].Units = append(orders[i].Units, u)
			}
		}
	}
	return orders, nil
}

func (s *Service) hardwareOrder(ctx context.Context, accountID, id string) (HardwareOrder, error) {
	if accountID == "" {
		if err := s.pool.QueryRow(ctx, `SELECT account_id FROM hardware_orders WHERE id = $1`, id).Scan(&accountID); err != nil {
			return HardwareOrder{}, err
		}
	}
	orders, err := s.HardwareOrders(ctx, accountID)
	if err != nil {
		return HardwareOrder{}, err
	}
	for _, o := range orders {
		if o.ID == id {
			return o, nil
		}
	}
	return HardwareOrder{}, fault.New(fault.NotFound, "", "hardware order not found")
}

// ShipHardware records a unit's MAC at shipment: it registers the device
// (vendor and model from the catalog) with the lines given, so the phone
// provisions as soon as it is plugged in. The secret is shown once.
func (s *Service) ShipHardware(ctx context.Context, actor, accountID, unitID, mac string, lines []DeviceLine) (Device, string, error) {
	if uuid.Validate(unitID) != nil {
		return Device{}, "", fault.New(fault.NotFound, "", "hardware unit not found")
	}
	var vendor, model, state string
	err := s.pool.QueryRow(ctx, `SELECT p.vendor, p.model, u.state FROM hardware_units u JOIN packages p ON p.code = u.item_code
		WHERE u.id = $1 AND u.account_id = $2`, unitID, accountID).Scan(&vendor, &model, &state)
	if errors.Is(err, pgx.ErrNoRows) {
		return Device{}, "", fault.New(fault.NotFound, "", "hardware unit not found")
	}
	if err != nil {
		return Device{}, "", err
	}
	if state != "awaiting_mac" {
		return Device{}, "", fault.New(fault.Conflict, "", "the unit is %s already", state)
	}
	return s.CreateDevice(ctx, actor, accountID, NewDevice{MAC: mac, Vendor: vendor, Model: model, Lines: lines, hardwareUnit: unitID})
}

// shipUnit links a unit to its new device, in CreateDevice's transaction.
func shipUnit(ctx context.Context, tx pgx.Tx, now time.Time, accountID, unitID, deviceID, mac string) error {
	tag, err := tx.Exec(ctx, `UPDATE hardware_units SET state = 'shipped', device_id = $3, mac = $4, shipped_at = $5
		WHERE id = $1 AND account_id = $2 AND state = 'awaiting_mac'`, unitID, accountID, deviceID, mac, now)
	if err != nil {
		return fmt.Errorf("ship hardware unit: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fault.New(fault.Conflict, "", "the hardware unit was shipped meanwhile")
	}
	return nil
}
