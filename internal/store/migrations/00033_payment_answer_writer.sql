-- +goose Up
-- Which request recorded a change payment's answer (a token of its own).
-- The answer is recorded in the transaction that applies the change; when
-- the connection is lost around that COMMIT, the request reads this back
-- to know whether its own write committed, so that the attempts metric
-- counts each recorded answer exactly once (issue 13).
ALTER TABLE payment_attempts ADD COLUMN recorded_by uuid;

-- +goose Down
ALTER TABLE payment_attempts DROP COLUMN recorded_by;
