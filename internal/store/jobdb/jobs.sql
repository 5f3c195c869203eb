-- Job runs: the daemon-clock time of each job's last successful run.

-- name: RecordRun :exec
INSERT INTO job_runs (name, last_run_at) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET last_run_at = greatest(job_runs.last_run_at, excluded.last_run_at);

-- name: LastRun :one
SELECT last_run_at FROM job_runs WHERE name = $1;
