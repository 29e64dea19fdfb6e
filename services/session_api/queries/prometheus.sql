-- name: escalation_queue
-- Read at each Prometheus scrape (services/session_api/metrics.py), under a statement timeout.
-- Escalations not resolved yet (the partial index escalations_one_pending covers them): waiting for
-- an operator ('open') or held by one ('claimed'), and how long the oldest open one has waited.
SELECT count(*) FILTER (WHERE status = 'open') AS waiting,
       count(*) FILTER (WHERE status = 'claimed') AS claimed,
       coalesce(extract(epoch FROM clock_timestamp() - min(opened_at) FILTER (WHERE status = 'open')), 0)::float8
           AS oldest_waiting_seconds
FROM escalations
WHERE status <> 'resolved';
