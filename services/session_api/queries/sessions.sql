-- name: insert_session
-- $8-$11: hosted sessions only (the workflow, OpenAI's user, session and expiry), else NULL.
INSERT INTO sessions (id, user_id, org_id, channel, agent_id, metadata, thread_ids,
                      workflow_id, hosted_user, hosted_session_id, hosted_expires_at, hosted_status)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11, CASE WHEN $8::text IS NULL THEN NULL ELSE 'active' END)
RETURNING *;

-- name: insert_hosted_session
INSERT INTO hosted_sessions (id, session_id, expires_at) VALUES ($1, $2, $3);

-- name: set_current_hosted_session
-- A refresh of a hosted session: only while it is active.
UPDATE sessions SET hosted_session_id = $2, hosted_expires_at = $3
WHERE id = $1 AND status = 'active' AND workflow_id IS NOT NULL
RETURNING true;

-- name: live_hosted_sessions
SELECT id FROM hosted_sessions
WHERE session_id = $1 AND status = 'active' AND expires_at > clock_timestamp()
ORDER BY created_at;

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
-- Move an active session to ended or cancelled; no row when it is not active. A hosted
-- session's OpenAI sessions were cancelled at OpenAI just before: they are marked so.
WITH finished AS (
    UPDATE sessions SET status = $2, ended_at = clock_timestamp(),
                        hosted_status = CASE WHEN workflow_id IS NULL THEN NULL ELSE 'cancelled' END
    WHERE id = $1 AND status = 'active'
    RETURNING *
), links AS (
    UPDATE hosted_sessions SET status = 'cancelled'
    WHERE session_id IN (SELECT id FROM finished) AND status = 'active'
)
SELECT * FROM finished;

-- name: attach_thread
UPDATE sessions SET thread_ids = array_append(thread_ids, $2)
WHERE id = $1 AND NOT ($2 = ANY (thread_ids))
RETURNING *;
