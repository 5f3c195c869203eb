-- +goose Up
-- Hardware (IP phones) sold from the catalog: a one-time price, an optional
-- stock (units received; what is left is stock minus units sold), and the
-- vendor and model the phone provisions as.
ALTER TABLE packages DROP CONSTRAINT packages_kind_check;
ALTER TABLE packages ADD CONSTRAINT packages_kind_check CHECK (kind IN ('package', 'addon', 'hardware'));
ALTER TABLE packages ADD COLUMN stock int CHECK (stock >= 0);
ALTER TABLE packages ADD COLUMN vendor text NOT NULL DEFAULT '';
ALTER TABLE packages ADD COLUMN model text NOT NULL DEFAULT '';

-- A hardware purchase. It is written (reserving stock) before the card is
-- charged, outside any transaction, then settled: paid with its invoice, or
-- failed (the stock is free again). A pending order is the durable intent
-- a settling job retries with the same gateway idempotency key.
CREATE TABLE hardware_orders (
    id           uuid PRIMARY KEY,
    account_id   uuid NOT NULL REFERENCES accounts(id),
    item_code    text NOT NULL REFERENCES packages(code),
    quantity     int NOT NULL CHECK (quantity > 0),
    unit_minor   bigint NOT NULL CHECK (unit_minor >= 0),
    currency     char(3) NOT NULL,
    state        text NOT NULL CHECK (state IN ('pending', 'paid', 'failed')),
    invoice_id   uuid,
    detail       text NOT NULL DEFAULT '',
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL,
    settled_at   timestamptz
);
CREATE INDEX hardware_orders_account ON hardware_orders (account_id, created_at);
CREATE INDEX hardware_orders_item ON hardware_orders (item_code) WHERE state <> 'failed';
CREATE INDEX hardware_orders_pending ON hardware_orders (created_at) WHERE state = 'pending';

-- One row per phone bought: awaiting its MAC until the operator ships it,
-- which registers the device (then it provisions like any other).
CREATE TABLE hardware_units (
    id          uuid PRIMARY KEY,
    order_id    uuid NOT NULL REFERENCES hardware_orders(id),
    account_id  uuid NOT NULL REFERENCES accounts(id),
    item_code   text NOT NULL,
    state       text NOT NULL CHECK (state IN ('awaiting_mac', 'shipped')),
    device_id   uuid REFERENCES devices(id) ON DELETE SET NULL,
    mac         text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL,
    shipped_at  timestamptz
);
CREATE INDEX hardware_units_account ON hardware_units (account_id, created_at);

-- +goose Down
DROP TABLE hardware_units, hardware_orders;
ALTER TABLE packages DROP COLUMN model, DROP COLUMN vendor, DROP COLUMN stock;
ALTER TABLE packages DROP CONSTRAINT packages_kind_check;
ALTER TABLE packages ADD CONSTRAINT packages_kind_check CHECK (kind IN ('package', 'addon'));
