-- Account users: the people who sign in to the portal.

-- name: InsertUser :exec
INSERT INTO account_users (id, account_id, email, name, role, locale, password_hash, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8);

-- LockAccount serialises user changes of one account (the last-owner rule).
-- name: LockAccount :one
SELECT id FROM accounts WHERE id = $1 FOR NO KEY UPDATE;

-- name: AccountExists :one
SELECT EXISTS (SELECT 1 FROM accounts WHERE id = $1);

-- name: ListUsers :many
SELECT id, account_id, email, name, role, locale, created_at FROM account_users WHERE account_id = $1 AND deleted_at IS NULL
		ORDER BY array_position(ARRAY['owner','admin','member'], role), lower(email);

-- name: GetUser :one
SELECT id, account_id, email, name, role, locale, created_at FROM account_users WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL;

-- name: SetPasswordHash :exec
UPDATE account_users SET password_hash = $2 WHERE id = $1;

-- name: UpdateUser :exec
UPDATE account_users SET role = $2, name = $3, locale = $4 WHERE id = $1;

-- name: CountOwners :one
SELECT count(*) FROM account_users WHERE account_id = $1 AND role = 'owner' AND deleted_at IS NULL;

-- name: DeleteUser :exec
UPDATE account_users SET deleted_at = $2 WHERE id = $1;

-- name: UserByEmail :one
SELECT u.id, u.account_id, u.email, u.name, u.role, u.locale, u.created_at, u.password_hash
		FROM account_users u WHERE lower(u.email) = lower(@email) AND u.deleted_at IS NULL;

-- name: CountLiveLines :one
SELECT count(DISTINCT id) FROM lines WHERE id = ANY(@ids::uuid[]) AND account_id = @account_id AND state <> 'deleted';

-- name: ClearUserLines :exec
DELETE FROM account_user_lines WHERE user_id = $1;

-- name: AddUserLines :exec
INSERT INTO account_user_lines (user_id, line_id) SELECT @user_id::uuid, unnest(@line_ids::uuid[]);

-- name: UserLines :many
SELECT ul.line_id::text FROM account_user_lines ul JOIN lines l ON l.id = ul.line_id
		WHERE ul.user_id = $1 AND l.state <> 'deleted' ORDER BY l.extension;
