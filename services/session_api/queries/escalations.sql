-- name: insert_escalation
-- Opening again while one is pending for the same thread returns nothing
-- (the caller then reads the pending one).
INSERT INTO escalations (id, session_id, thread_id, user_id, org_id, reason, opened_by)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (session_id, thread_id) WHERE status <> 'resolved' DO NOTHING
RETURNING *;

-- name: pending_escalation
SELECT * FROM escalations WHERE session_id = $1 AND thread_id = $2 AND status <> 'resolved';

-- name: get_escalation
-- $2: the caller; $3: the operator's org (NULL for non-operators).
SELECT * FROM escalations
WHERE id = $1 AND (user_id = $2 OR ($3::text IS NOT NULL AND org_id = $3));

-- name: claim_escalation
-- Atomic: of operators racing, only the first finds it open.
UPDATE escalations SET status = 'claimed', claimed_by = $3, claimed_at = clock_timestamp()
WHERE id = $1 AND org_id = $2 AND status = 'open'
RETURNING *;

-- name: resolve_escalation
UPDATE escalations
SET status = 'resolved', resolved_by = $3, resolved_at = clock_timestamp(), resolution = $4
WHERE id = $1 AND org_id = $2 AND status = 'claimed' AND claimed_by = $3
RETURNING *;

-- name: list_org_escalations
SELECT * FROM escalations
WHERE org_id = $1
  AND ($2::text IS NULL OR status = $2)
  AND ($3::text IS NULL OR session_id = $3)
  AND ($4::text IS NULL OR (opened_at, id COLLATE "C") > (
        SELECT opened_at, id COLLATE "C" FROM escalations WHERE id = $4 AND org_id = $1))
ORDER BY opened_at, id COLLATE "C"
LIMIT $5;

-- name: list_user_escalations
SELECT * FROM escalations
WHERE user_id = $1
  AND ($2::text IS NULL OR status = $2)
  AND ($3::text IS NULL OR session_id = $3)
  AND ($4::text IS NULL OR (opened_at, id COLLATE "C") > (
        SELECT opened_at, id COLLATE "C" FROM escalations WHERE id = $4 AND user_id = $1))
ORDER BY opened_at, id COLLATE "C"
LIMIT $5;
