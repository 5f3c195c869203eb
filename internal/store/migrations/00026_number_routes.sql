-- +goose Up
-- Inbound routing of numbers on the PBX (Asterisk: one global variable per
-- number, see pbx/asterisk/routes.go). routed_to is the target pbxd last
-- set on node routed_node ('' the default node), '' when none: the
-- reconciler compares it with the number's line to know what to set or
-- clear, and reads back every routed or assigned number on a resync.
ALTER TABLE numbers ADD COLUMN routed_node text NOT NULL DEFAULT '',
                    ADD COLUMN routed_to text NOT NULL DEFAULT '';
CREATE INDEX numbers_routed ON numbers (e164) WHERE routed_to <> '';

-- A number moving to or off a line wakes the reconciler, whichever code
-- path moved it (assignment, release, removed line, scheduled change).
-- +goose StatementBegin
CREATE FUNCTION numbers_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pbxd_lines', '');
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER numbers_notify AFTER UPDATE OF line_id, account_id, state ON numbers
    FOR EACH STATEMENT EXECUTE FUNCTION numbers_notify();

-- +goose Down
DROP TRIGGER numbers_notify ON numbers;
DROP FUNCTION numbers_notify();
DROP INDEX numbers_routed;
ALTER TABLE numbers DROP COLUMN routed_node, DROP COLUMN routed_to;
