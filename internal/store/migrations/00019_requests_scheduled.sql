-- +goose Up
-- How a package's decreases take effect: at once with a prorated credit, or
-- at the end of the period with no credit (the lines stay until then).
-- decrease_choice lets the customer pick the other one per order.
ALTER TABLE packages ADD COLUMN decrease text NOT NULL DEFAULT 'immediate_credit'
    CHECK (decrease IN ('immediate_credit', 'period_end'));
ALTER TABLE packages ADD COLUMN decrease_choice boolean NOT NULL DEFAULT false;

-- Service requests: what customers cannot do themselves (cancel, downgrade,
-- remove an add-on or a number, port numbers in or out, change owner).
CREATE TABLE service_requests (
    id          uuid PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts(id),
    kind        text NOT NULL CHECK (kind IN ('cancel_all', 'downgrade', 'remove_addon', 'remove_number',
                                             'port_in', 'port_out', 'change_owner', 'other')),
    state       text NOT NULL CHECK (state IN ('open', 'approved', 'rejected', 'done')),
    details     jsonb NOT NULL DEFAULT '{}',
    -- [{at, actor, text, state}]: the conversation and each decision.
    comments    jsonb NOT NULL DEFAULT '[]',
    -- The scheduled change order approving it made (set before it is
    -- confirmed, so a retried approval confirms the same one).
    change_id   uuid,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX service_requests_account ON service_requests (account_id, created_at);
CREATE INDEX service_requests_open ON service_requests (created_at) WHERE state IN ('open', 'approved');

-- Changes that take effect at a subscription's period end: the quantity
-- drops (and lines and numbers go) just before the renewal bills it.
CREATE TABLE scheduled_changes (
    id              uuid PRIMARY KEY,
    account_id      uuid NOT NULL REFERENCES accounts(id),
    subscription_id uuid NOT NULL REFERENCES subscriptions(id),
    package_code    text NOT NULL,
    from_quantity   int NOT NULL,
    to_quantity     int NOT NULL CHECK (to_quantity >= 0),
    remove_lines    jsonb NOT NULL DEFAULT '[]', -- line ids named by the order
    release_numbers jsonb NOT NULL DEFAULT '[]', -- numbers given back
    effective_at    timestamptz NOT NULL,
    state           text NOT NULL CHECK (state IN ('pending', 'applied', 'cancelled')),
    change_id       uuid NOT NULL,
    created_at      timestamptz NOT NULL,
    done_at         timestamptz,
    result          jsonb
);
-- One pending change per subscription: a second order must cancel it first.
CREATE UNIQUE INDEX scheduled_changes_pending ON scheduled_changes (subscription_id) WHERE state = 'pending';
CREATE INDEX scheduled_changes_due ON scheduled_changes (effective_at) WHERE state = 'pending';

-- +goose Down
DROP TABLE scheduled_changes, service_requests;
ALTER TABLE packages DROP COLUMN decrease_choice;
ALTER TABLE packages DROP COLUMN decrease;
