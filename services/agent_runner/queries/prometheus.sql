-- name: active_runs
-- Read at each Prometheus scrape (services/agent_runner/metrics.py), under a statement timeout.
-- Runs not finished yet, by status, with how long the oldest of each has waited since it was created.
-- Two branches, each with the predicate of a partial index (runs_active_lease, runs_waiting_expiry),
-- so this reads the active runs alone however many finished.
SELECT status,
       count(*) AS runs,
       coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)::float8 AS oldest_seconds
FROM runs
WHERE status IN ('queued', 'running')
GROUP BY status
UNION ALL
SELECT status,
       count(*) AS runs,
       coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)::float8 AS oldest_seconds
FROM runs
WHERE status = 'waiting_approval'
GROUP BY status;

-- name: finished_runs
-- Finished runs by status: a scan of the whole table (retention deletes finished runs with their
-- threads), so the collector recounts them at most once a minute (python -m bench metrics).
SELECT status, count(*) AS runs
FROM runs
WHERE status NOT IN ('queued', 'running', 'waiting_approval')
GROUP BY status;
