-- name: runs_by_status
-- Read at each Prometheus scrape (services/agent_runner/metrics.py), under a statement timeout.
-- Runs of the whole deployment by status, with how long the oldest queued run has waited.
-- The terminal statuses count a whole table (retention deletes finished runs with their threads);
-- the active ones (queued, running, waiting_approval) are what an operator watches.
SELECT status,
       count(*) AS runs,
       coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)::float8 AS oldest_seconds
FROM runs
GROUP BY status;
