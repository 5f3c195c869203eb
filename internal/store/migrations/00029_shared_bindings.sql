-- +goose Up
-- Several pbxd instances share the registrar's bindings (issue 19): the
-- Contact parameters are stored so an instance that did not receive the
-- REGISTER can echo them, and the expiry sweep finds lapsed bindings by
-- index (whichever instance deletes a row has expired it: exactly once).
ALTER TABLE sip_bindings ADD COLUMN params text NOT NULL DEFAULT '';
CREATE INDEX sip_bindings_expires_at ON sip_bindings (expires_at);

-- +goose Down
DROP INDEX sip_bindings_expires_at;
ALTER TABLE sip_bindings DROP COLUMN params;
