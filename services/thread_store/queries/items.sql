-- name: upsert_item
INSERT INTO thread_items (thread_id, id, user_id, type, data, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (thread_id, id) DO UPDATE
SET type = EXCLUDED.type, data = EXCLUDED.data, created_at = EXCLUDED.created_at
RETURNING thread_id, id, type, data, created_at, (xmax = 0) AS inserted;

-- name: get_item
SELECT thread_id, id, type, data, created_at FROM thread_items WHERE thread_id = $1 AND id = $2;

-- name: delete_item
DELETE FROM thread_items WHERE thread_id = $1 AND id = $2 RETURNING id;

-- name: item_cursor
SELECT created_at, id FROM thread_items WHERE thread_id = $1 AND id = $2;

-- name: list_items_asc
SELECT thread_id, id, type, data, created_at FROM thread_items
WHERE thread_id = $1
  AND ($2::timestamptz IS NULL OR (created_at, id COLLATE "C") > ($2, $3::text COLLATE "C"))
ORDER BY created_at, id COLLATE "C"
LIMIT $4;

-- name: list_items_desc
SELECT thread_id, id, type, data, created_at FROM thread_items
WHERE thread_id = $1
  AND ($2::timestamptz IS NULL OR (created_at, id COLLATE "C") < ($2, $3::text COLLATE "C"))
ORDER BY created_at DESC, id COLLATE "C" DESC
LIMIT $4;

-- name: delete_items_after
-- ChatKit's retry: when item $2 of thread $1 has type $3 (a user message),
-- delete every item after it in listing order. Returns the anchor's type (no
-- row: no such item) and the deleted ids in listing order; nothing is deleted
-- when the anchor has another type.
WITH anchor AS (
    SELECT created_at, id, type FROM thread_items WHERE thread_id = $1 AND id = $2
), deleted AS (
    DELETE FROM thread_items i
    USING anchor a
    WHERE i.thread_id = $1
      AND a.type = $3
      AND (i.created_at, i.id COLLATE "C") > (a.created_at, a.id COLLATE "C")
    RETURNING i.id, i.created_at
)
SELECT a.type, ARRAY(SELECT d.id FROM deleted d ORDER BY d.created_at, d.id COLLATE "C") AS deleted_ids
FROM anchor a;

-- name: save_turn_message
-- BeginTurn's common write in one round trip, once the thread is locked: upsert
-- the user message and advance the thread as ``advance_thread`` does ($7
-- revisions; $8 title and $9 data when $9 is not NULL).
WITH item AS (
    INSERT INTO thread_items (thread_id, id, user_id, type, data, created_at)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (thread_id, id) DO UPDATE
    SET type = EXCLUDED.type, data = EXCLUDED.data, created_at = EXCLUDED.created_at
    RETURNING id, type, data, created_at, (xmax = 0) AS inserted
), thread AS (
    UPDATE threads
    SET revision = revision + $7,
        updated_at = now(),
        title = CASE WHEN $9::jsonb IS NULL THEN title ELSE $8 END,
        data = COALESCE($9::jsonb, data)
    WHERE id = $1 AND user_id = $3
    RETURNING *
)
SELECT thread.*,
       item.id AS item_id, item.type AS item_type, item.data AS item_data,
       item.created_at AS item_created_at, item.inserted AS item_inserted
FROM thread, item;
