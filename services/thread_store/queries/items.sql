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
