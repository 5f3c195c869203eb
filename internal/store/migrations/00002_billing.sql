-- +goose Up
-- Last successful run of each scheduled job, in daemon-clock time: a daemon
-- that was down catches up on start.
CREATE TABLE job_runs (
    name        text PRIMARY KEY,
    last_run_at timestamptz NOT NULL
);

-- Gapless invoice numbers per issuer and year: the counter row is locked by
-- the invoice's own transaction, so a rolled-back invoice gives its number back.
CREATE TABLE invoice_counters (
    issuer text NOT NULL,
    year   int NOT NULL,
    last   bigint NOT NULL,
    PRIMARY KEY (issuer, year)
);

CREATE TABLE invoices (
    id          uuid PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts(id),
    number      text NOT NULL,
    issuer      text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('invoice', 'credit_note')),
    status      text NOT NULL CHECK (status IN ('open', 'paid', 'void')),
    currency    char(3) NOT NULL,
    issued_at   timestamptz NOT NULL,
    due_at      timestamptz NOT NULL,
    net_minor   bigint NOT NULL,
    tax_minor   bigint NOT NULL,
    gross_minor bigint NOT NULL,
    -- The whole rendered document (issuer, customer, lines, taxes) frozen at
    -- issue: issued invoices never change.
    document    jsonb NOT NULL,
    payment_ref text NOT NULL DEFAULT '',
    paid_at     timestamptz,
    corrects    uuid REFERENCES invoices(id),
    CONSTRAINT invoices_number_key UNIQUE (issuer, number)
);
CREATE INDEX invoices_account ON invoices (account_id, issued_at);

-- One renewal per subscription and period: a repeated or restarted run can
-- never bill a period twice.
CREATE TABLE renewals (
    subscription_id uuid NOT NULL REFERENCES subscriptions(id),
    period_start    timestamptz NOT NULL,
    invoice_id      uuid REFERENCES invoices(id),
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (subscription_id, period_start)
);

-- Charges and credits waiting for the next bill (invoice-mode accounts, and
-- credits for decreases).
CREATE TABLE pending_items (
    id            uuid PRIMARY KEY,
    account_id    uuid NOT NULL REFERENCES accounts(id),
    package_code  text NOT NULL,
    description   text NOT NULL,
    quantity      int NOT NULL,
    amount_minor  bigint NOT NULL,
    currency      char(3) NOT NULL,
    period_start  date NOT NULL,
    period_end    date NOT NULL,
    note          text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL,
    change_id     uuid,
    invoice_id    uuid REFERENCES invoices(id)
);
CREATE INDEX pending_items_open ON pending_items (account_id) WHERE invoice_id IS NULL;

CREATE TABLE payment_methods (
    id         uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts(id),
    gateway    text NOT NULL,
    token      text NOT NULL,
    label      text NOT NULL DEFAULT '',
    is_default boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL,
    deleted_at timestamptz
);
CREATE UNIQUE INDEX payment_methods_one_default ON payment_methods (account_id) WHERE is_default AND deleted_at IS NULL;

CREATE TABLE payment_attempts (
    id                uuid PRIMARY KEY,
    invoice_id        uuid NOT NULL REFERENCES invoices(id),
    payment_method_id uuid REFERENCES payment_methods(id),
    at                timestamptz NOT NULL,
    amount_minor      bigint NOT NULL,
    outcome           text NOT NULL CHECK (outcome IN ('approved', 'declined', 'error', 'pending', 'manual')),
    reference         text NOT NULL DEFAULT '',
    detail            text NOT NULL DEFAULT ''
);
CREATE INDEX payment_attempts_invoice ON payment_attempts (invoice_id, at);

-- Dunning state of an unpaid invoice.
CREATE TABLE dunning (
    invoice_id     uuid PRIMARY KEY REFERENCES invoices(id),
    failures       int NOT NULL,
    first_failure  timestamptz NOT NULL,
    next_retry_at  timestamptz,
    exhausted      boolean NOT NULL DEFAULT false
);
CREATE INDEX dunning_due ON dunning (next_retry_at) WHERE NOT exhausted;

-- +goose Down
DROP TABLE dunning, payment_attempts, payment_methods, pending_items, renewals, invoices, invoice_counters, job_runs;
