-- Node leases and instance heartbeats of the sharding of the reconciler
-- (provisioning/shard.go). Times are clock_timestamp() of the database, the
-- one clock the instances share.

-- Heartbeat records the heartbeat of this instance, drops those dead for an
-- hour, and counts the live instances, this one included.
-- name: Heartbeat :one
WITH hb AS (
	INSERT INTO pbxd_instances (id, expires_at) VALUES (@id::text, clock_timestamp() + sqlc.arg(ttl_ms)::bigint * interval '1 millisecond')
	ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at),
gc AS (DELETE FROM pbxd_instances WHERE expires_at < clock_timestamp() - interval '1 hour')
SELECT (count(*) + 1)::bigint AS alive FROM pbxd_instances i WHERE i.id <> @id AND i.expires_at > clock_timestamp();

-- RenewLeases extends the leases of the owner not lapsed.
-- name: RenewLeases :many
UPDATE node_leases SET expires_at = clock_timestamp() + sqlc.arg(ttl_ms)::bigint * interval '1 millisecond'
WHERE owner = @owner AND expires_at > clock_timestamp() RETURNING node, epoch;

-- AcquireLease takes the lease of a node, free or lapsed, with a new epoch; no
-- row while another instance holds it.
-- name: AcquireLease :one
INSERT INTO node_leases (node, owner, epoch, expires_at) VALUES (@node, @owner, 1, clock_timestamp() + sqlc.arg(ttl_ms)::bigint * interval '1 millisecond')
ON CONFLICT (node) DO UPDATE SET owner = excluded.owner, epoch = node_leases.epoch + 1, expires_at = excluded.expires_at
WHERE node_leases.expires_at <= clock_timestamp() RETURNING epoch;

-- name: ReleaseLease :exec
UPDATE node_leases SET expires_at = '-infinity' WHERE node = @node AND owner = @owner AND epoch = @epoch;

-- name: ReleaseLeasesOf :exec
UPDATE node_leases SET expires_at = '-infinity' WHERE owner = @owner;

-- name: DeleteInstance :exec
DELETE FROM pbxd_instances WHERE id = @id;

-- name: NodeLeases :many
SELECT node, owner, epoch, expires_at, (expires_at > clock_timestamp())::boolean AS live FROM node_leases ORDER BY node;

-- name: Instances :many
SELECT id, expires_at, (expires_at > clock_timestamp())::boolean AS live FROM pbxd_instances ORDER BY id;
