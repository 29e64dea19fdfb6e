-- name: insert_task
INSERT INTO tasks (id, user_id, title, notes)
VALUES ($1, $2, $3, $4)
RETURNING id, title, notes, done, created_at, updated_at, completed_at;

-- name: list_tasks
SELECT id, title, notes, done, created_at, updated_at, completed_at
FROM tasks
WHERE user_id = $1 AND ($2::boolean OR NOT done)
ORDER BY created_at, id
LIMIT $3;

-- name: update_task
UPDATE tasks
SET title = coalesce($3, title),
    notes = coalesce($4, notes),
    done = coalesce($5, done),
    completed_at = CASE WHEN $5::boolean IS TRUE THEN coalesce(completed_at, now())
                        WHEN $5::boolean IS FALSE THEN NULL
                        ELSE completed_at END,
    updated_at = now()
WHERE user_id = $1 AND id = $2
RETURNING id, title, notes, done, created_at, updated_at, completed_at;

-- name: delete_task
DELETE FROM tasks WHERE user_id = $1 AND id = $2 RETURNING id;
