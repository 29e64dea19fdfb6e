-- name: get_thread
-- The owner's thread, or (for operators, $3 true) a thread of the operator's org $4.
SELECT * FROM threads
WHERE id = $1 AND (user_id = $2 OR ($3 AND org_id IS NOT NULL AND org_id = $4));

-- name: upsert_thread
-- Insert, or update only when the existing row has the same owner: a thread id
-- of another user returns no row (NOT_FOUND), it is never overwritten.
-- $4 is the scope of a new thread; on update, $9 NULL keeps the stored scope.
INSERT INTO threads (id, user_id, org_id, scope, title, status, data, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now())
ON CONFLICT (id) DO UPDATE
SET title = EXCLUDED.title,
    status = EXCLUDED.status,
    data = EXCLUDED.data,
    scope = COALESCE($9, threads.scope),
    revision = threads.revision + 1,
    updated_at = now()
WHERE threads.user_id = EXCLUDED.user_id
RETURNING *, (xmax = 0) AS inserted;

-- name: touch_thread
-- Every item write bumps the thread's revision and activity time in the same
-- transaction; the row lock orders writes to one thread.
UPDATE threads SET revision = revision + 1, updated_at = now()
WHERE id = $1 AND user_id = $2
RETURNING *;

-- name: delete_thread
DELETE FROM threads WHERE id = $1 AND user_id = $2 RETURNING *;

-- name: list_threads_created_asc
SELECT * FROM threads
WHERE user_id = $1 AND ($2::text IS NULL OR scope = $2)
  AND ($3::timestamptz IS NULL OR (created_at, id COLLATE "C") > ($3, $4::text COLLATE "C"))
ORDER BY created_at, id COLLATE "C"
LIMIT $5;

-- name: list_threads_created_desc
SELECT * FROM threads
WHERE user_id = $1 AND ($2::text IS NULL OR scope = $2)
  AND ($3::timestamptz IS NULL OR (created_at, id COLLATE "C") < ($3, $4::text COLLATE "C"))
ORDER BY created_at DESC, id COLLATE "C" DESC
LIMIT $5;

-- name: list_threads_activity_asc
SELECT * FROM threads
WHERE user_id = $1 AND ($2::text IS NULL OR scope = $2)
  AND ($3::timestamptz IS NULL OR (updated_at, id COLLATE "C") > ($3, $4::text COLLATE "C"))
ORDER BY updated_at, id COLLATE "C"
LIMIT $5;

-- name: list_threads_activity_desc
SELECT * FROM threads
WHERE user_id = $1 AND ($2::text IS NULL OR scope = $2)
  AND ($3::timestamptz IS NULL OR (updated_at, id COLLATE "C") < ($3, $4::text COLLATE "C"))
ORDER BY updated_at DESC, id COLLATE "C" DESC
LIMIT $5;

-- name: list_org_threads_activity_desc
SELECT * FROM threads
WHERE org_id = $1 AND ($2::text IS NULL OR scope = $2)
  AND ($3::timestamptz IS NULL OR (updated_at, id COLLATE "C") < ($3, $4::text COLLATE "C"))
ORDER BY updated_at DESC, id COLLATE "C" DESC
LIMIT $5;

-- name: list_org_threads_activity_asc
SELECT * FROM threads
WHERE org_id = $1 AND ($2::text IS NULL OR scope = $2)
  AND ($3::timestamptz IS NULL OR (updated_at, id COLLATE "C") > ($3, $4::text COLLATE "C"))
ORDER BY updated_at, id COLLATE "C"
LIMIT $5;

-- name: list_org_threads_created_desc
SELECT * FROM threads
WHERE org_id = $1 AND ($2::text IS NULL OR scope = $2)
  AND ($3::timestamptz IS NULL OR (created_at, id COLLATE "C") < ($3, $4::text COLLATE "C"))
ORDER BY created_at DESC, id COLLATE "C" DESC
LIMIT $5;

-- name: list_org_threads_created_asc
SELECT * FROM threads
WHERE org_id = $1 AND ($2::text IS NULL OR scope = $2)
  AND ($3::timestamptz IS NULL OR (created_at, id COLLATE "C") > ($3, $4::text COLLATE "C"))
ORDER BY created_at, id COLLATE "C"
LIMIT $5;

-- name: list_user_thread_ids
SELECT id FROM threads WHERE user_id = $1 ORDER BY created_at, id COLLATE "C";

-- name: insert_thread_if_absent
-- BeginTurn's creation: insert, or do nothing when the id exists, whoever owns
-- it. The caller then locks the row as its owner, so an id of another user is
-- NOT_FOUND and a thread that exists already is kept as it is.
INSERT INTO threads (id, user_id, org_id, scope, title, status, data, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now())
ON CONFLICT (id) DO NOTHING
RETURNING *;

-- name: lock_thread
-- The owner's thread, locked until the transaction ends: BeginTurn takes the
-- lock first, in a statement of its own, so that every later statement of the
-- turn sees the writes committed before it and revisions follow commit order.
SELECT * FROM threads WHERE id = $1 AND user_id = $2 FOR UPDATE;

-- name: advance_thread
-- BeginTurn, once the thread is locked: bump the revision by $3 (one per change
-- of the turn) and, when $5 is not NULL, replace the title ($4) and data.
UPDATE threads
SET revision = revision + $3,
    updated_at = now(),
    title = CASE WHEN $5::jsonb IS NULL THEN title ELSE $4 END,
    data = COALESCE($5::jsonb, data)
WHERE id = $1 AND user_id = $2
RETURNING *;

-- name: lock_readable_thread
-- The thread $1 of its owner $2 or (for operators, $3 true) of the operator's
-- org $4, locked until the transaction ends: hand-off changes and operators'
-- writes take this lock, so a write checks the handler as committed last.
SELECT * FROM threads
WHERE id = $1 AND (user_id = $2 OR ($3 AND org_id IS NOT NULL AND org_id = $4))
FOR UPDATE;

-- name: set_handler
-- Thread $1, locked by the caller: handler $2 held by $3 for escalation $4,
-- waiting $5 seconds (0: no deadline). One revision; `handler_since` moves
-- only when the kind changes.
UPDATE threads
SET handler = $2,
    handler_operator = $3,
    handler_escalation = $4,
    handler_since = CASE WHEN handler = $2 AND handler_since IS NOT NULL THEN handler_since ELSE now() END,
    handler_until = CASE WHEN $5::int > 0 THEN now() + make_interval(secs => $5::int) END,
    revision = revision + 1,
    updated_at = now()
WHERE id = $1
RETURNING *;

-- name: expire_waiting
-- Up to $1 threads whose wait for a person ran out go back to the agent; each
-- keeps its escalation id (the escalation stays in the queue). SKIP LOCKED:
-- concurrent sweeps take disjoint threads, and a row changed meanwhile is
-- re-checked, so no thread is returned twice.
UPDATE threads
SET handler = 'agent',
    handler_operator = NULL,
    handler_until = NULL,
    handler_since = now(),
    revision = revision + 1,
    updated_at = now()
WHERE id IN (
    SELECT id FROM threads
    WHERE handler = 'waiting' AND handler_until <= now()
    ORDER BY handler_until
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
RETURNING *;
