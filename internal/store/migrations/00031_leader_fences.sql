-- +goose Up
-- Fencing of the scheduled jobs' leader (issue 19). The leader of a job
-- holds a session advisory lock; on taking it, it bumps the job's epoch
-- here. Each of its transactions calls pbxd_fence(job, epoch) first: that
-- share-locks the row and fails once another instance has bumped the
-- epoch, and a new leader's bump waits for the old leader's transactions
-- in flight. So a leader whose lock session was cut can commit nothing
-- once another has started.
CREATE TABLE leader_fences (
    name  text   PRIMARY KEY,
    epoch bigint NOT NULL
);

-- +goose StatementBegin
CREATE FUNCTION pbxd_fence(job text, want bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM leader_fences WHERE name = job AND epoch = want FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'leadership of % lost (epoch % is over)', job, want
            USING ERRCODE = 'PX001';
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION pbxd_fence(text, bigint);
DROP TABLE leader_fences;
