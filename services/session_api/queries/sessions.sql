-- name: insert_session
INSERT INTO sessions (id, user_id, org_id, channel, agent_id, metadata, thread_ids)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)
RETURNING *;

-- name: get_session
-- $2: the caller; $3: the operator's org (NULL for non-operators).
SELECT * FROM sessions
WHERE id = $1 AND (user_id = $2 OR ($3::text IS NOT NULL AND org_id = $3));

-- name: session_status
SELECT status FROM sessions WHERE id = $1;

-- name: list_user_sessions
SELECT * FROM sessions
WHERE user_id = $1
  AND ($2::text IS NULL OR status = $2)
  AND ($3::text IS NULL OR (created_at, id COLLATE "C") < (
        SELECT created_at, id COLLATE "C" FROM sessions WHERE id = $3 AND user_id = $1))
ORDER BY created_at DESC, id COLLATE "C" DESC
LIMIT $4;

-- name: list_org_sessions
SELECT * FROM sessions
WHERE org_id = $1
  AND ($2::text IS NULL OR status = $2)
  AND ($3::text IS NULL OR user_id = $3)
  AND ($4::text IS NULL OR (created_at, id COLLATE "C") < (
        SELECT created_at, id COLLATE "C" FROM sessions WHERE id = $4 AND org_id = $1))
ORDER BY created_at DESC, id COLLATE "C" DESC
LIMIT $5;

-- name: finish_session
-- Move an active session to ended or cancelled; no row when it is not active.
UPDATE sessions SET status = $2, ended_at = clock_timestamp()
WHERE id = $1 AND status = 'active'
RETURNING *;

-- name: attach_thread
UPDATE sessions SET thread_ids = array_append(thread_ids, $2)
WHERE id = $1 AND NOT ($2 = ANY (thread_ids))
RETURNING *;
