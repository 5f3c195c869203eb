-- +goose Up
-- Reconciler sharding (issue 19). Each Asterisk node's reconciliation is
-- owned by one pbxd instance at a time, through a lease row that its owner
-- renews; a lease that is not renewed lapses at expires_at, so a dead or
-- cut-off owner's nodes are taken over within the lease time whatever
-- happened to its connection (a kill -9, a cut, a silent network loss, a
-- failover to a replica). Times are the database's (clock_timestamp()):
-- the one clock every instance shares. Taking a lease bumps its epoch;
-- every write of the owner's reconciler checks pbxd_node_fence(node,
-- epoch) in its own statement, so once the lease has lapsed or been
-- taken, the old owner commits nothing. pbxd_instances is each instance's
-- heartbeat: the live ones share the nodes out (at most ceil(nodes/live)
-- each).
CREATE TABLE pbxd_instances (
    id         text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

CREATE TABLE node_leases (
    node       text PRIMARY KEY,
    owner      text NOT NULL,
    epoch      bigint NOT NULL,
    expires_at timestamptz NOT NULL
);

-- +goose StatementBegin
CREATE FUNCTION pbxd_node_fence(n text, want bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM node_leases WHERE node = n AND epoch = want AND expires_at > clock_timestamp() FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lease of node % lost (epoch % is over)', n, want
            USING ERRCODE = 'PX002';
    END IF;
    RETURN true;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION pbxd_node_fence(text, bigint);
DROP TABLE node_leases;
DROP TABLE pbxd_instances;
