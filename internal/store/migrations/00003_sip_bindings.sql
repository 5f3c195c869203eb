-- +goose Up
-- Contacts registered on the built-in SIP registrar (package sip), persisted
-- write-behind so a restart does not forget registered phones. The
-- registrar owns these rows; there is deliberately no foreign key to the
-- lines table: a binding may briefly outlive its line (the registrar drops
-- it when the line is removed) and must never make a line deletion fail.
CREATE TABLE sip_bindings (
    line_id     uuid        NOT NULL,
    contact_uri text        NOT NULL,
    source      text        NOT NULL DEFAULT '',
    user_agent  text        NOT NULL DEFAULT '',
    call_id     text        NOT NULL DEFAULT '',
    cseq        bigint      NOT NULL DEFAULT 0 CHECK (cseq >= 0),
    expires_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (line_id, contact_uri)
);

-- +goose Down
DROP TABLE sip_bindings;
