-- +goose Up
-- Each pbxd instance with the built-in registrar applies the lines changed
-- recently (by changed_at) to its own registrar (issue 19).
CREATE INDEX lines_changed_at ON lines (changed_at, id);

-- +goose Down
DROP INDEX lines_changed_at;
