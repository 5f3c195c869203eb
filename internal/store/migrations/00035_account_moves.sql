-- +goose Up
-- Moves of an account's lines from one Asterisk node to another (issue 19).
-- When a move starts, accounts.pbx_node already names to_node and every
-- live line of the account gets a new revision, recorded as never applied
-- (applied_revision 0), so the reconciler pushes them there as new lines;
-- from_node keeps its copies (phones registered there keep working) until
-- every line is applied on to_node ('copying'). Then the
-- lines are removed from from_node ('removing'), up to removed_upto (the
-- highest line id removed so far, so a restarted pbxd resumes), and the
-- move is 'done'. At most one move per account is not done.
CREATE TABLE account_moves (
    id           uuid PRIMARY KEY,
    account_id   uuid NOT NULL REFERENCES accounts(id),
    from_node    text NOT NULL,
    to_node      text NOT NULL,
    state        text NOT NULL CHECK (state IN ('copying', 'removing', 'done')),
    lines_total  int NOT NULL DEFAULT 0,
    lines_done   int NOT NULL DEFAULT 0,
    lines_removed int NOT NULL DEFAULT 0,
    removed_upto uuid,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    CHECK (from_node <> to_node)
);
CREATE UNIQUE INDEX account_moves_active ON account_moves (account_id) WHERE state <> 'done';
CREATE INDEX account_moves_account ON account_moves (account_id, created_at);

-- +goose Down
DROP TABLE account_moves;
