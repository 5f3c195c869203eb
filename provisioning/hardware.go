package provisioning

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/pbxd/pbxd/internal/fault"
	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/provdb"
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
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		acct, err := s.lockAccount(ctx, tx, accountID)
		if err != nil {
			return err
		}
		if AccountStatus(acct.Status) != AccountActive {
			return fault.New(fault.Conflict, "", "account is %s", acct.Status)
		}
		q := provdb.New(tx)
		it, err := q.LockHardwareItem(ctx, item)
		if errors.Is(err, store.ErrNotFound) || (err == nil && (it.Kind != "hardware" || it.Retired)) {
			return fault.New(fault.Invalid, "item", "%q is not hardware on sale; see GET /v1/packages (kind hardware)", item)
		}
		if err != nil {
			return err
		}
		if it.Currency != acct.Currency {
			return fault.New(fault.Invalid, "item", "%s is sold in %s, the account pays in %s", item, it.Currency, acct.Currency)
		}
		if it.Stock != nil {
			sold, err := q.HardwareSold(ctx, item)
			if err != nil {
				return err
			}
			if left := int(*it.Stock) - int(sold); quantity > left {
				return fault.New(fault.Conflict, "quantity", "only %d of %s left in stock", max(left, 0), item)
			}
		}
		if err := q.InsertHardwareOrder(ctx, provdb.InsertHardwareOrderParams{ID: id, AccountID: accountID, ItemCode: item,
			Quantity: int32(quantity), UnitMinor: it.PriceMinor, Currency: it.Currency, CreatedBy: actor, CreatedAt: now}); err != nil {
			return fmt.Errorf("store hardware order: %w", err)
		}
		return audit(ctx, tx, now, actor, accountID, "hardware.order", id, map[string]any{"item": item, "quantity": quantity, "unit_minor": it.PriceMinor})
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
	o, err := s.q.PendingHardwareOrder(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return s.hardwareOrder(ctx, "", id) // settled meanwhile
	}
	if err != nil {
		return HardwareOrder{}, err
	}
	accountID, item, qty := o.AccountID, o.ItemCode, int(o.Quantity)
	acct, err := s.Account(ctx, accountID)
	if err != nil {
		return HardwareOrder{}, err
	}
	now := s.clock.Now()
	inv, cerr := s.charger.ChargeOneOff(ctx, acct, "hardware:"+id, []OneOffItem{{Code: item, Description: o.Name, Quantity: int64(qty), UnitMinor: o.UnitMinor}}, now)
	fe, refused := fault.As(cerr)
	if cerr != nil && !refused {
		return HardwareOrder{}, fmt.Errorf("charge hardware order %s (left pending, retried later): %w", id, cerr)
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		q := provdb.New(tx)
		if refused {
			n, err := q.FailHardwareOrder(ctx, provdb.FailHardwareOrderParams{ID: id, Detail: fe.Msg, SettledAt: &now})
			if err != nil || n == 0 {
				return err
			}
			return audit(ctx, tx, now, "billing", accountID, "hardware.failed", id, map[string]any{"detail": fe.Msg})
		}
		n, err := q.PayHardwareOrder(ctx, provdb.PayHardwareOrderParams{ID: id, InvoiceID: &inv, SettledAt: &now})
		if err != nil || n == 0 {
			return err
		}
		for range qty {
			if err := q.InsertHardwareUnit(ctx, provdb.InsertHardwareUnitParams{ID: uuid.NewString(), OrderID: id,
				AccountID: accountID, ItemCode: item, CreatedAt: now}); err != nil {
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
	ids, err := s.q.StaleHardwareOrders(ctx, now.Add(-time.Minute))
	if err != nil {
		return fmt.Errorf("list pending hardware orders: %w", err)
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

// HardwareOrders lists an account's hardware orders with their units,
// newest first.
func (s *Service) HardwareOrders(ctx context.Context, accountID string) ([]HardwareOrder, error) {
	if _, err := s.Account(ctx, accountID); err != nil {
		return nil, err
	}
	rows, err := s.q.ListHardwareOrders(ctx, accountID)
	if err != nil {
		return nil, err
	}
	units, err := s.q.ListHardwareUnits(ctx, accountID)
	if err != nil {
		return nil, err
	}
	orders := make([]HardwareOrder, 0, len(rows))
	for _, r := range rows {
		o := HardwareOrder{ID: r.ID, Item: r.ItemCode, Quantity: int(r.Quantity), UnitMinor: r.UnitMinor, Currency: r.Currency,
			State: r.State, InvoiceID: r.InvoiceID, Detail: r.Detail, CreatedAt: r.CreatedAt, SettledAt: r.SettledAt, Units: []HardwareUnit{}}
		for _, u := range units {
			if u.OrderID == o.ID {
				o.Units = append(o.Units, HardwareUnit{ID: u.ID, OrderID: u.OrderID, Item: u.ItemCode, State: u.State, MAC: u.Mac,
					DeviceID: u.DeviceID, CreatedAt: u.CreatedAt, ShippedAt: u.ShippedAt})
			}
		}
		orders = append(orders, o)
	}
	return orders, nil
}

func (s *Service) hardwareOrder(ctx context.Context, accountID, id string) (HardwareOrder, error) {
	if accountID == "" {
		var err error
		if accountID, err = s.q.HardwareOrderAccount(ctx, id); err != nil {
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
	u, err := s.q.HardwareUnitToShip(ctx, provdb.HardwareUnitToShipParams{ID: unitID, AccountID: accountID})
	if errors.Is(err, store.ErrNotFound) {
		return Device{}, "", fault.New(fault.NotFound, "", "hardware unit not found")
	}
	if err != nil {
		return Device{}, "", err
	}
	if HardwareUnitState(u.State) != UnitAwaitingMAC {
		return Device{}, "", fault.New(fault.Conflict, "", "the unit is %s already", u.State)
	}
	return s.CreateDevice(ctx, actor, accountID, NewDevice{MAC: mac, Vendor: u.Vendor, Model: u.Model, Lines: lines, hardwareUnit: unitID})
}

// shipUnit links a unit to its new device, in CreateDevice's transaction.
func shipUnit(ctx context.Context, tx *store.Tx, now time.Time, accountID, unitID, deviceID, mac string) error {
	n, err := provdb.New(tx).ShipHardwareUnit(ctx, provdb.ShipHardwareUnitParams{ID: unitID, AccountID: accountID,
		DeviceID: &deviceID, Mac: mac, ShippedAt: &now})
	if err != nil {
		return fmt.Errorf("ship hardware unit: %w", err)
	}
	if n == 0 {
		return fault.New(fault.Conflict, "", "the hardware unit was shipped meanwhile")
	}
	return nil
}
