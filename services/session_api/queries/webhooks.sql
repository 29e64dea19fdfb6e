-- name: upsert_deployment_endpoint
INSERT INTO webhook_endpoints (id, org_id, url, secret, description, created_by)
VALUES ($1, NULL, $2, $3, 'SWITCHBOARD_WEBHOOK_URL', 'deployment')
ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url, secret = EXCLUDED.secret
RETURNING *;

-- name: delete_deployment_endpoint
DELETE FROM webhook_endpoints WHERE id = $1 AND org_id IS NULL;

-- name: insert_endpoint
INSERT INTO webhook_endpoints (id, org_id, url, secret, event_types, description, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING *;

-- name: get_endpoint
-- $2: the org (NULL: the deployment's own endpoints, for service callers).
SELECT * FROM webhook_endpoints WHERE id = $1 AND org_id IS NOT DISTINCT FROM $2;

-- name: list_endpoints
SELECT * FROM webhook_endpoints
WHERE org_id IS NOT DISTINCT FROM $1
ORDER BY created_at, id COLLATE "C";

-- name: delete_endpoint
DELETE FROM webhook_endpoints WHERE id = $1 AND org_id IS NOT DISTINCT FROM $2 RETURNING id;

-- name: enqueue_event
SELECT webhook_enqueue($1, $2, $3, $4::jsonb);

-- name: enqueue_for_endpoint
-- One event delivered to one endpoint only (`webhooks test`).
WITH ev AS (
    INSERT INTO webhook_events (id, type, org_id, ordering_key, data)
    VALUES ($2, $3, $4, $5, $6::jsonb)
    RETURNING seq, ordering_key
)
INSERT INTO webhook_deliveries (endpoint_id, event_seq, ordering_key)
SELECT $1, seq, ordering_key FROM ev
RETURNING event_seq;

-- name: take_due_delivery
-- The oldest due delivery no other deliverer holds and with no earlier
-- pending delivery of the same endpoint and key (per-thread order). The row
-- stays locked until the attempt is recorded; if the deliverer dies, the lock
-- goes with its connection and the delivery is due again.
SELECT d.endpoint_id, d.event_seq, d.attempts, d.retry_until,
       ev.id AS event_id, ev.type, ev.data, ev.created_at,
       ep.url, ep.secret
FROM webhook_deliveries d
JOIN webhook_events ev ON ev.seq = d.event_seq
JOIN webhook_endpoints ep ON ep.id = d.endpoint_id
WHERE d.status = 'pending' AND d.next_attempt_at <= clock_timestamp()
  AND NOT EXISTS (
      SELECT 1 FROM webhook_deliveries e
      WHERE e.endpoint_id = d.endpoint_id AND e.ordering_key = d.ordering_key
        AND e.status = 'pending' AND e.event_seq < d.event_seq)
ORDER BY d.next_attempt_at, d.event_seq
LIMIT 1
FOR UPDATE OF d SKIP LOCKED;

-- name: record_attempt
INSERT INTO webhook_attempts (endpoint_id, event_seq, status_code, error, duration_ms)
VALUES ($1, $2, $3, $4, $5);

-- name: mark_delivered
UPDATE webhook_deliveries
SET status = 'delivered', attempts = attempts + 1, delivered_at = clock_timestamp(), last_error = ''
WHERE endpoint_id = $1 AND event_seq = $2;

-- name: mark_failed
-- $3: when to try again; $4: dead-letter instead; $5: the retry window's end, set on the first failure.
UPDATE webhook_deliveries
SET attempts = attempts + 1,
    next_attempt_at = $3,
    status = CASE WHEN $4 THEN 'dead' ELSE 'pending' END,
    retry_until = coalesce(retry_until, $5),
    last_error = $6
WHERE endpoint_id = $1 AND event_seq = $2;

-- name: redeliver
-- Make a delivery due now with a fresh retry window; $3: the org (NULL: deployment).
UPDATE webhook_deliveries d
SET status = 'pending', next_attempt_at = clock_timestamp(), retry_until = NULL, delivered_at = NULL
FROM webhook_events ev, webhook_endpoints ep
WHERE ev.seq = d.event_seq AND ep.id = d.endpoint_id
  AND d.endpoint_id = $1 AND ev.id = $2 AND ep.org_id IS NOT DISTINCT FROM $3
RETURNING d.event_seq;

-- name: redeliver_dead
-- Every dead-lettered delivery of an endpoint, due now with a fresh retry window.
UPDATE webhook_deliveries d
SET status = 'pending', next_attempt_at = clock_timestamp(), retry_until = NULL
FROM webhook_endpoints ep
WHERE ep.id = d.endpoint_id AND d.endpoint_id = $1 AND ep.org_id IS NOT DISTINCT FROM $2 AND d.status = 'dead'
RETURNING d.event_seq;

-- name: list_deliveries
-- An endpoint's deliveries, newest first, with their attempts; $3: status filter; $4: before this event seq.
SELECT d.*, ev.id AS event_id, ev.type, ev.created_at AS event_created_at,
       coalesce((SELECT jsonb_agg(jsonb_build_object(
                     'attempted_at', a.attempted_at, 'status_code', a.status_code,
                     'error', a.error, 'duration_ms', a.duration_ms) ORDER BY a.id)
                 FROM webhook_attempts a
                 WHERE a.endpoint_id = d.endpoint_id AND a.event_seq = d.event_seq), '[]'::jsonb)::text AS attempt_list
FROM webhook_deliveries d
JOIN webhook_events ev ON ev.seq = d.event_seq
WHERE d.endpoint_id = $1
  AND ($2::text IS NULL OR d.status = $2)
  AND ($3::bigint IS NULL OR d.event_seq < $3)
ORDER BY d.event_seq DESC
LIMIT $4;

-- name: delete_finished_events
-- Outbox rows older than the cutoff whose every delivery is done (delivered or dead), in a batch.
DELETE FROM webhook_events
WHERE seq IN (
    SELECT ev.seq FROM webhook_events ev
    WHERE ev.created_at < $1
      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_seq = ev.seq AND d.status = 'pending')
    ORDER BY ev.created_at
    LIMIT $2)
RETURNING seq;
