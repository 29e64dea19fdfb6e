-- depends: 0001.threads
-- The built-in task MCP server's tasks: each row belongs to one user, and
-- every query filters by that user (bound by the agent runner, never by the model).
CREATE TABLE tasks (
    id            text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
    user_id       text NOT NULL,
    title         text NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    notes         text NOT NULL DEFAULT '',
    done          boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz
);
CREATE INDEX tasks_user_created ON tasks (user_id, created_at, id);
