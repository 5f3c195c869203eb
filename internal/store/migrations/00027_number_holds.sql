-- +goose Up
-- A port-in's numbers are imported for one account: held_for keeps them
-- for it until its order succeeds (they become the account's) or the
-- port-in is cancelled. Nobody else can order a held number.
ALTER TABLE numbers ADD COLUMN held_for uuid REFERENCES accounts(id),
    ADD CONSTRAINT numbers_held_free CHECK (held_for IS NULL OR account_id IS NULL);

-- +goose Down
ALTER TABLE numbers DROP CONSTRAINT numbers_held_free, DROP COLUMN held_for;
