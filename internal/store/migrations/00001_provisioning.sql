-- +goose Up
-- The catalog as last synced from the config. A package with subscribers is
-- retired instead of deleted.
CREATE TABLE packages (
    code              text PRIMARY KEY,
    name              text NOT NULL,
    kind              text NOT NULL DEFAULT 'package' CHECK (kind IN ('package', 'addon')),
    price_minor       bigint NOT NULL CHECK (price_minor >= 0),
    currency          char(3) NOT NULL,
    cycles            jsonb NOT NULL,
    trial_days        int NOT NULL DEFAULT 0 CHECK (trial_days >= 0),
    dial_context      text NOT NULL,
    fixed_month_days  boolean NOT NULL DEFAULT false,
    exclude_order_day boolean NOT NULL DEFAULT false,
    retired           boolean NOT NULL DEFAULT false,
    position          int NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL
);

CREATE TABLE accounts (
    id              uuid PRIMARY KEY,
    name            text NOT NULL,
    sip_domain      text NOT NULL,
    currency        char(3) NOT NULL,
    timezone        text NOT NULL,
    vat_bp          int NOT NULL CHECK (vat_bp >= 0 AND vat_bp <= 10000),
    payment_mode    text NOT NULL CHECK (payment_mode IN ('card', 'invoice')),
    seat_preference text NOT NULL CHECK (seat_preference IN ('auto_purchase', 'block')),
    ext_first       int NOT NULL,
    ext_last        int NOT NULL,
    billing_address jsonb NOT NULL DEFAULT '{}',
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'closed')),
    pbx_node        text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    CONSTRAINT accounts_sip_domain_key UNIQUE (sip_domain),
    CHECK (ext_first > 0 AND ext_last >= ext_first)
);

-- Account tokens: only a SHA-256 of the token is kept.
CREATE TABLE account_tokens (
    token_sha256 bytea PRIMARY KEY,
    account_id   uuid NOT NULL REFERENCES accounts(id),
    created_at   timestamptz NOT NULL
);

CREATE TABLE subscriptions (
    id               uuid PRIMARY KEY,
    account_id       uuid NOT NULL REFERENCES accounts(id),
    package_code     text NOT NULL REFERENCES packages(code),
    cycle            text NOT NULL CHECK (cycle IN ('monthly', 'annual')),
    quantity         int NOT NULL CHECK (quantity >= 0),
    status           text NOT NULL CHECK (status IN ('trial', 'active', 'inactive')),
    -- The unit price per period (after the cycle's discount) in force for the
    -- current period; catalog price changes apply from the next period.
    period_price_minor bigint NOT NULL,
    period_start     timestamptz NOT NULL,
    period_end       timestamptz NOT NULL,
    next_payment_at  timestamptz NOT NULL,
    registered_from  timestamptz NOT NULL,
    trial_end        timestamptz,
    version          bigint NOT NULL DEFAULT 1,
    CONSTRAINT subscriptions_account_package_key UNIQUE (account_id, package_code)
);

CREATE TABLE lines (
    id               uuid PRIMARY KEY,
    account_id       uuid NOT NULL REFERENCES accounts(id),
    package_code     text NOT NULL REFERENCES packages(code),
    extension        int NOT NULL,
    sip_username     text NOT NULL,
    password_enc     bytea NOT NULL,
    ha1_md5          text NOT NULL,
    ha1_sha256       text NOT NULL,
    caller_id        text NOT NULL DEFAULT '',
    state            text NOT NULL CHECK (state IN ('active', 'suspended', 'deleted')),
    -- Outbox: every change the PBX must follow bumps revision in the same
    -- transaction; the reconciler records what it applied.
    revision         bigint NOT NULL DEFAULT 1,
    applied_revision bigint NOT NULL DEFAULT 0,
    changed_at       timestamptz NOT NULL,
    apply_error      text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL,
    deleted_at       timestamptz,
    reg_contacts     jsonb NOT NULL DEFAULT '[]',
    reg_updated_at   timestamptz
);
CREATE UNIQUE INDEX lines_account_extension_key ON lines (account_id, extension) WHERE state <> 'deleted';
CREATE UNIQUE INDEX lines_account_username_key ON lines (account_id, sip_username) WHERE state <> 'deleted';
CREATE INDEX lines_pending ON lines (changed_at) WHERE revision > applied_revision;
CREATE INDEX lines_account ON lines (account_id, created_at);

-- Change orders: a preview stored with the fingerprint of everything it was
-- computed from, so confirm can apply exactly it or refuse.
CREATE TABLE change_orders (
    id           uuid PRIMARY KEY,
    account_id   uuid NOT NULL REFERENCES accounts(id),
    status       text NOT NULL CHECK (status IN ('previewed', 'confirmed')),
    request      jsonb NOT NULL,
    preview      jsonb NOT NULL,
    basis        text NOT NULL,
    result       jsonb,
    created_at   timestamptz NOT NULL,
    confirmed_at timestamptz
);

-- Idempotency keys of mutating calls: a retry gets the first answer.
CREATE TABLE idempotency_keys (
    scope        text NOT NULL,
    key          text NOT NULL,
    request_hash text NOT NULL,
    status       int NOT NULL,
    body         bytea NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);

-- IP phones by MAC, bound to lines; provisioning files are served from this.
CREATE TABLE devices (
    id              uuid PRIMARY KEY,
    account_id      uuid NOT NULL REFERENCES accounts(id),
    mac             text NOT NULL,
    vendor          text NOT NULL,
    model           text NOT NULL DEFAULT '',
    display_name    text NOT NULL DEFAULT '',
    timezone        text NOT NULL DEFAULT '',
    language        text NOT NULL DEFAULT '',
    active          boolean NOT NULL DEFAULT true,
    -- Hash of the per-device provisioning secret (HTTP basic password).
    secret_hash     text NOT NULL,
    created_at      timestamptz NOT NULL,
    CONSTRAINT devices_mac_key UNIQUE (mac)
);

CREATE TABLE device_lines (
    device_id uuid NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    line_id   uuid NOT NULL REFERENCES lines(id),
    key       int NOT NULL CHECK (key >= 1),
    PRIMARY KEY (device_id, key),
    CONSTRAINT device_lines_line_key UNIQUE (line_id)
);

CREATE TABLE audit_log (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL,
    actor      text NOT NULL,
    account_id uuid,
    action     text NOT NULL,
    object     text NOT NULL DEFAULT '',
    details    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_account ON audit_log (account_id, at);

-- +goose Down
DROP TABLE audit_log, device_lines, devices, idempotency_keys, change_orders, lines, subscriptions, account_tokens, accounts, packages;
