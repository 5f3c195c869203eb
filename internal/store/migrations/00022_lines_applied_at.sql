-- +goose Up
-- When the reconciler last recorded a revision of the line as applied to
-- the PBX (the daemon's clock); NULL until the first apply.
ALTER TABLE lines ADD COLUMN applied_at timestamptz;

-- +goose Down
ALTER TABLE lines DROP COLUMN applied_at;
