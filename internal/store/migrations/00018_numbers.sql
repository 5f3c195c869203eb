-- +goose Up
-- Phone number inventory (DIDs). A number is not a line: it is imported by
-- the operator, sold through a change order (billed as its catalog add-on),
-- then assigned to one of the account's lines. The C collation makes the
-- primary key serve prefix searches (e164 LIKE '+331%').
--
-- States: available → reserved (sold, not yet on a line) → assigned (on a
-- line) → removal_requested (a removal or port-out request is open) → aging
-- (not resold before aging_until) → available. An aging number whose
-- aging_until has passed counts as available; no job has to flip it.
CREATE TABLE numbers (
    e164            text COLLATE "C" PRIMARY KEY CHECK (e164 ~ '^\+[1-9][0-9]{6,14}$'),
    country         char(2) NOT NULL,
    area            text NOT NULL DEFAULT '',
    kind            text NOT NULL CHECK (kind IN ('local', 'toll-free')),
    addon_code      text NOT NULL,
    setup_fee_minor bigint NOT NULL DEFAULT 0 CHECK (setup_fee_minor >= 0),
    state           text NOT NULL CHECK (state IN ('available', 'reserved', 'assigned', 'removal_requested', 'aging')),
    account_id      uuid REFERENCES accounts(id),
    line_id         uuid REFERENCES lines(id),
    caller_id       boolean NOT NULL DEFAULT false,
    change_id       uuid,
    aging_until     timestamptz,
    imported_at     timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    CHECK ((state IN ('available', 'aging')) = (account_id IS NULL)),
    CHECK (line_id IS NULL OR state IN ('assigned', 'removal_requested')),
    CHECK (state <> 'aging' OR aging_until IS NOT NULL)
);
CREATE INDEX numbers_free ON numbers (e164) WHERE state IN ('available', 'aging');
CREATE INDEX numbers_account ON numbers (account_id, e164) WHERE account_id IS NOT NULL;
CREATE INDEX numbers_line ON numbers (line_id) WHERE line_id IS NOT NULL;
CREATE INDEX numbers_addon ON numbers (addon_code);

-- +goose Down
DROP TABLE numbers;
