-- name: insert_event
INSERT INTO session_events (session_id, type, actor_user_id, payload)
VALUES ($1, $2, $3, $4::jsonb)
RETURNING id, session_id, type, actor_user_id, payload::text AS payload, created_at;

-- name: list_events
SELECT id, session_id, type, actor_user_id, payload::text AS payload, created_at
FROM session_events
WHERE session_id = $1 AND id > $2 AND ($3::text IS NULL OR type = $3)
ORDER BY id
LIMIT $4;
