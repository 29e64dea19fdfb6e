-- name: upsert_attachment
-- An attachment id of another user returns no row (NOT_FOUND). $8 false keeps stored bytes.
INSERT INTO attachments (id, user_id, org_id, thread_id, mime_type, data, content)
VALUES ($1, $2, $3, (SELECT id FROM threads WHERE id = $4 AND user_id = $2), $5, $6, $7)
ON CONFLICT (id) DO UPDATE
SET thread_id = EXCLUDED.thread_id,
    mime_type = EXCLUDED.mime_type,
    data = EXCLUDED.data,
    content = CASE WHEN $8 THEN EXCLUDED.content ELSE attachments.content END
WHERE attachments.user_id = EXCLUDED.user_id
RETURNING id, thread_id, mime_type, data, created_at, content IS NOT NULL AS has_content;

-- name: get_attachment
SELECT id, thread_id, mime_type, data, created_at, content IS NOT NULL AS has_content,
       CASE WHEN $3 THEN content END AS content
FROM attachments WHERE id = $1 AND user_id = $2;

-- name: delete_attachment
DELETE FROM attachments WHERE id = $1 AND user_id = $2 RETURNING id;

-- name: list_user_attachments
SELECT id, thread_id, mime_type, data, created_at, content IS NOT NULL AS has_content, content
FROM attachments WHERE user_id = $1 ORDER BY created_at, id;
