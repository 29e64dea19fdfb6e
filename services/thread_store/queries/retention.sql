-- name: retention_min_days
-- The shortest retention in force ($1: the deployment default; 0 or less: none), or NULL when nothing expires.
SELECT min(d) FROM (
    SELECT thread_days AS d FROM retention_policies WHERE $2 = 'thread' AND thread_days > 0
    UNION ALL SELECT audit_days FROM retention_policies WHERE $2 = 'audit' AND audit_days > 0
    UNION ALL SELECT $1::integer WHERE $1 > 0
) AS days;

-- name: retention_thread_candidates
-- Threads inactive past their org's retention (else the default $2), least recently active first,
-- after the keyset cursor ($5, $6); $4: the shortest retention (bounds the index scan).
-- Held threads, threads of held users and threads with an active run are left alone.
SELECT t.id, t.user_id, t.org_id, t.updated_at
FROM threads t
LEFT JOIN retention_policies p ON p.org_id = t.org_id
WHERE t.updated_at < $1::timestamptz - make_interval(days => $4::integer)
  AND (t.updated_at, t.id COLLATE "C") > ($5::timestamptz, $6::text COLLATE "C")
  AND coalesce(p.thread_days, $2::integer) > 0
  AND t.updated_at < $1::timestamptz - make_interval(days => coalesce(p.thread_days, $2::integer))
  AND NOT EXISTS (SELECT 1 FROM legal_holds h WHERE h.thread_id = t.id OR h.user_id = t.user_id)
  AND NOT EXISTS (
      SELECT 1 FROM runs r WHERE r.thread_id = t.id AND r.status IN ('queued', 'running', 'waiting_approval'))
ORDER BY t.updated_at, t.id COLLATE "C"
LIMIT $3;

-- name: retention_lock_thread
-- The thread, still untouched since it was found ($2) and not held, locked; nothing if it moved on.
SELECT t.id, t.user_id, t.org_id, t.title, t.created_at, t.updated_at, t.revision
FROM threads t
WHERE t.id = $1 AND t.updated_at = $2
  AND NOT EXISTS (SELECT 1 FROM legal_holds h WHERE h.thread_id = t.id OR h.user_id = t.user_id)
FOR UPDATE SKIP LOCKED;

-- name: retention_delete_attachments_chunk
-- Up to $3 of the thread's attachments after the id $2 (attachments_thread's order), rows and bytes:
-- how many went, their bytes, and the last id (where the next chunk starts).
WITH doomed AS (
    DELETE FROM attachments
    WHERE id = ANY (ARRAY(
        SELECT a.id FROM attachments a WHERE a.thread_id = $1 AND a.id > $2 ORDER BY a.id LIMIT $3))
    RETURNING id, coalesce(octet_length(content), 0) AS bytes
)
SELECT count(*)::integer AS deleted, coalesce(sum(bytes), 0)::bigint AS bytes, max(id) AS last FROM doomed;

-- name: retention_delete_items_chunk
-- Up to $3 of the thread's items after the key $2, in primary-key order: an index range scan that starts
-- past what the earlier chunks of this transaction deleted (their dead index entries are not stepped over
-- again), then a primary-key lookup per row (= ANY of an array: not a scan of all the thread's items, which
-- `IN (subquery)` plans as a hash join). How many went, and the last key (where the next chunk starts).
WITH doomed AS (
    DELETE FROM thread_items
    WHERE thread_id = $1
      AND id = ANY (ARRAY(
          SELECT i.id FROM thread_items i WHERE i.thread_id = $1 AND i.id > $2 ORDER BY i.id LIMIT $3))
    RETURNING id
)
SELECT count(*)::integer AS deleted, 0::bigint AS bytes, max(id) AS last FROM doomed;

-- name: retention_delete_thread
DELETE FROM threads WHERE id = $1;

-- name: retention_thread_deleted_event
SELECT webhook_enqueue('thread.deleted', $1, 'thread:' || $2, $3::jsonb);

-- name: retention_audit_delete
-- One batch of audit rows older than their org's retention (else the default $2); $3: the shortest
-- retention; rows of held users, or of sessions of held threads, stay.
WITH doomed AS (
    SELECT e.id
    FROM session_events e
    JOIN sessions s ON s.id = e.session_id
    LEFT JOIN retention_policies p ON p.org_id = s.org_id
    WHERE e.created_at < $1::timestamptz - make_interval(days => $3::integer)
      AND coalesce(p.audit_days, $2::integer) > 0
      AND e.created_at < $1::timestamptz - make_interval(days => coalesce(p.audit_days, $2::integer))
      AND NOT EXISTS (
          SELECT 1 FROM legal_holds h WHERE h.user_id = s.user_id OR h.thread_id = ANY (s.thread_ids))
    ORDER BY e.created_at
    LIMIT $4
), deleted AS (
    DELETE FROM session_events WHERE id IN (SELECT id FROM doomed) RETURNING 1
)
SELECT count(*)::integer FROM deleted;

-- name: retention_audit_count
SELECT count(*)
FROM session_events e
JOIN sessions s ON s.id = e.session_id
LEFT JOIN retention_policies p ON p.org_id = s.org_id
WHERE e.created_at < $1::timestamptz - make_interval(days => $3::integer)
  AND coalesce(p.audit_days, $2::integer) > 0
  AND e.created_at < $1::timestamptz - make_interval(days => coalesce(p.audit_days, $2::integer))
  AND NOT EXISTS (
      SELECT 1 FROM legal_holds h WHERE h.user_id = s.user_id OR h.thread_id = ANY (s.thread_ids));

-- name: retention_set_policy
INSERT INTO retention_policies (org_id, thread_days, audit_days)
VALUES ($1, $2, $3)
ON CONFLICT (org_id) DO UPDATE
SET thread_days = EXCLUDED.thread_days, audit_days = EXCLUDED.audit_days, updated_at = clock_timestamp()
RETURNING *;

-- name: retention_list_policies
SELECT * FROM retention_policies ORDER BY org_id;

-- name: retention_add_hold
INSERT INTO legal_holds (thread_id, user_id, reason, created_by)
VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING
RETURNING *;

-- name: retention_release_hold
DELETE FROM legal_holds
WHERE ($1::text IS NOT NULL AND thread_id = $1) OR ($2::text IS NOT NULL AND user_id = $2)
RETURNING id;

-- name: retention_list_holds
SELECT * FROM legal_holds ORDER BY created_at, id;

-- name: retention_delete_runs_chunk
-- Up to $3 of the thread's runs after the id $2 (finished: an active one kept the thread from being a
-- candidate); they go with it, since a paused run's saved state holds the conversation. How many went,
-- and the last id.
WITH doomed AS (
    DELETE FROM runs
    WHERE id = ANY (ARRAY(SELECT r.id FROM runs r WHERE r.thread_id = $1 AND r.id > $2 ORDER BY r.id LIMIT $3))
    RETURNING id
)
SELECT count(*)::integer AS deleted, 0::bigint AS bytes, max(id) AS last FROM doomed;
