-- +goose Up
-- Account users sign in to the customer portal. Numbered 00017 (the issue
-- that adds it) so parallel branches' migrations do not collide.
CREATE TABLE account_users (
    id            uuid PRIMARY KEY,
    account_id    uuid NOT NULL REFERENCES accounts(id),
    email         text NOT NULL,
    name          text NOT NULL DEFAULT '',
    role          text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    locale        text NOT NULL DEFAULT 'en' CHECK (locale IN ('en', 'fr')),
    -- argon2id in the PHC string format ($argon2id$v=19$m=...,t=...,p=...$salt$hash).
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL,
    deleted_at    timestamptz
);
-- An email signs in to one account: the portal's login form asks for no account.
CREATE UNIQUE INDEX account_users_email ON account_users (lower(email)) WHERE deleted_at IS NULL;
CREATE INDEX account_users_account ON account_users (account_id) WHERE deleted_at IS NULL;

-- The lines a member sees (owners and admins see all of the account's).
CREATE TABLE account_user_lines (
    user_id uuid NOT NULL REFERENCES account_users(id),
    line_id uuid NOT NULL REFERENCES lines(id),
    PRIMARY KEY (user_id, line_id)
);

-- Portal sessions: only a SHA-256 of the cookie value is kept. user_id is
-- NULL for an operator session.
CREATE TABLE portal_sessions (
    token_sha256 bytea PRIMARY KEY,
    user_id      uuid REFERENCES account_users(id),
    csrf         text NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX portal_sessions_expiry ON portal_sessions (expires_at);

-- +goose Down
DROP TABLE portal_sessions, account_user_lines, account_users;
