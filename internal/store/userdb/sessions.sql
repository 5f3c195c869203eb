-- Portal sessions: only a SHA-256 of the cookie value is kept.

-- name: EndUserSessions :exec
DELETE FROM portal_sessions WHERE user_id = @user_id::uuid;

-- name: SweepSessions :exec
DELETE FROM portal_sessions WHERE expires_at < $1;

-- name: InsertSession :exec
INSERT INTO portal_sessions (token_sha256, user_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5);

-- The user columns are NULL for an operator session and for a removed user.
-- name: GetSession :one
SELECT s.csrf, s.expires_at, s.user_id, u.id, u.account_id, u.email, u.name, u.role, u.locale
		FROM portal_sessions s LEFT JOIN account_users u ON u.id = s.user_id AND u.deleted_at IS NULL
		WHERE s.token_sha256 = $1;

-- name: EndSession :exec
DELETE FROM portal_sessions WHERE token_sha256 = $1;
