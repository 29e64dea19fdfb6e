-- name: upsert_item
-- Insert item $2 of thread $1 (owner $3) written by $7, or update it when $7
-- wrote it: an item of another author returns no row, it is never overwritten.
INSERT INTO thread_items (thread_id, id, user_id, type, data, created_at, author)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (thread_id, id) DO UPDATE
SET type = EXCLUDED.type, data = EXCLUDED.data, created_at = EXCLUDED.created_at
WHERE thread_items.author = EXCLUDED.author
RETURNING thread_id, id, type, data, created_at, author, (xmax = 0) AS inserted;

-- name: get_item
SELECT thread_id, id, type, data, created_at, author FROM thread_items WHERE thread_id = $1 AND id = $2;

-- name: delete_item
-- Delete item $2 of thread $1 when $3 wrote it. Returns the item's author (no
-- row: no such item) and whether it was deleted.
WITH target AS (
    SELECT author FROM thread_items WHERE thread_id = $1 AND id = $2
), deleted AS (
    DELETE FROM thread_items WHERE thread_id = $1 AND id = $2 AND author = $3 RETURNING id
)
SELECT t.author, EXISTS (SELECT 1 FROM deleted) AS deleted FROM target t;

-- name: item_cursor
SELECT created_at, id FROM thread_items WHERE thread_id = $1 AND id = $2;

-- name: list_items_asc
SELECT thread_id, id, type, data, created_at, author FROM thread_items
WHERE thread_id = $1
  AND ($2::timestamptz IS NULL OR (created_at, id COLLATE "C") > ($2, $3::text COLLATE "C"))
ORDER BY created_at, id COLLATE "C"
LIMIT $4;

-- name: list_items_desc
SELECT thread_id, id, type, data, created_at, author FROM thread_items
WHERE thread_id = $1
  AND ($2::timestamptz IS NULL OR (created_at, id COLLATE "C") < ($2, $3::text COLLATE "C"))
ORDER BY created_at DESC, id COLLATE "C" DESC
LIMIT $4;

-- name: delete_items_after
-- ChatKit's retry: when item $2 of thread $1 has type $3 (a user message),
-- delete every item after it in listing order, unless one of them has another
-- author than the owner $4 (an operator replied after it). Returns the anchor's
-- type (no row: no such item), whether another author's item blocked the
-- retry, and the deleted ids in listing order; nothing is deleted when the
-- anchor has another type or the retry is blocked.
WITH anchor AS (
    SELECT created_at, id, type FROM thread_items WHERE thread_id = $1 AND id = $2
), later AS (
    SELECT i.id, i.author
    FROM thread_items i, anchor a
    WHERE i.thread_id = $1
      AND a.type = $3
      AND (i.created_at, i.id COLLATE "C") > (a.created_at, a.id COLLATE "C")
), deleted AS (
    DELETE FROM thread_items i
    USING later l
    WHERE i.thread_id = $1
      AND i.id = l.id
      AND NOT EXISTS (SELECT 1 FROM later WHERE author <> $4)
    RETURNING i.id, i.created_at
)
SELECT a.type,
       EXISTS (SELECT 1 FROM later WHERE author <> $4) AS blocked,
       ARRAY(SELECT d.id FROM deleted d ORDER BY d.created_at, d.id COLLATE "C") AS deleted_ids
FROM anchor a;

-- name: save_turn_message
-- BeginTurn's common write in one round trip, once the thread is locked: upsert
-- the user message and advance the thread as ``advance_thread`` does ($7
-- revisions; $8 title and $9 data when $9 is not NULL). No row: the message's
-- id is an item of another author (an operator's), which is never overwritten.
WITH item AS (
    INSERT INTO thread_items (thread_id, id, user_id, type, data, created_at, author)
    VALUES ($1, $2, $3, $4, $5, $6, $3)
    ON CONFLICT (thread_id, id) DO UPDATE
    SET type = EXCLUDED.type, data = EXCLUDED.data, created_at = EXCLUDED.created_at
    WHERE thread_items.author = EXCLUDED.author
    RETURNING id, type, data, created_at, author, (xmax = 0) AS inserted
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
       item.created_at AS item_created_at, item.author AS item_author, item.inserted AS item_inserted
FROM thread, item;
