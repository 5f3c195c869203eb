-- IP phones (devices) and the lines bound to their keys (device_lines).

-- name: InsertDevice :exec
INSERT INTO devices (id, account_id, mac, vendor, model, display_name, timezone, language, secret_hash, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10);

-- LiveLineOfAccount reports whether the line exists on the account and is
-- not deleted (a phone key may only carry such a line).
-- name: LiveLineOfAccount :one
SELECT EXISTS (SELECT 1 FROM lines WHERE id = @line_id AND account_id = @account_id AND state <> 'deleted');

-- name: InsertDeviceLine :exec
INSERT INTO device_lines (device_id, line_id, key) VALUES ($1, $2, $3);

-- name: DeviceOfAccountExists :one
SELECT EXISTS (SELECT 1 FROM devices WHERE id = @id AND account_id = @account_id);

-- name: SetDeviceActive :exec
UPDATE devices SET active = @active WHERE id = @id;

-- name: DeleteDeviceLines :exec
DELETE FROM device_lines WHERE device_id = $1;

-- name: DeleteDevice :execrows
DELETE FROM devices WHERE id = @id AND account_id = @account_id;

-- name: ListDevices :many
SELECT id, account_id, mac, vendor, model, display_name, timezone, language, active, created_at
FROM devices WHERE account_id = $1 ORDER BY created_at, mac;

-- name: GetDevice :one
SELECT id, account_id, mac, vendor, model, display_name, timezone, language, active, created_at
FROM devices WHERE id = @id AND account_id = @account_id;

-- DeviceKeys lists the lines on a phone's keys, in key order.
-- name: DeviceKeys :many
SELECT dl.line_id, dl.key, l.extension FROM device_lines dl JOIN lines l ON l.id = dl.line_id
WHERE dl.device_id = $1 ORDER BY dl.key;

-- DeviceByMAC is the phone as served now: a device without a time zone of
-- its own keeps its account's (read here, so that changing the account's
-- zone reaches its phones too); it is served only while it and its
-- account are active.
-- name: DeviceByMAC :one
SELECT d.id, d.account_id, d.vendor, d.model, d.display_name,
	COALESCE(NULLIF(d.timezone, ''), a.timezone)::text AS timezone, d.language, d.secret_hash,
	(d.active AND a.status = 'active')::boolean AS served
FROM devices d JOIN accounts a ON a.id = d.account_id WHERE d.mac = $1;

-- DeviceServedLines are the active lines bound to a phone now, with their
-- sealed passwords.
-- name: DeviceServedLines :many
SELECT l.id, dl.key, l.extension, l.sip_username, a.sip_domain, l.password_enc
FROM device_lines dl JOIN lines l ON l.id = dl.line_id JOIN accounts a ON a.id = l.account_id
WHERE dl.device_id = @device_id AND l.state = 'active' AND l.account_id = @account_id ORDER BY dl.key;
