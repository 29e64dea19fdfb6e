-- Threads, their items and attachments. Every row carries its owner so that
-- every query can filter by it; org_id lets operators read their org's threads.
CREATE TABLE threads (
    id          text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 255),
    user_id     text NOT NULL,
    org_id      text,
    scope       text,
    title       text,
    status      text NOT NULL DEFAULT 'active',
    data        jsonb NOT NULL,
    revision    bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- ChatKit's own listing: a user's threads by creation time.
CREATE INDEX threads_user_created ON threads (user_id, created_at, id COLLATE "C");
-- "Reopen the thread I last used": by most recent activity.
CREATE INDEX threads_user_activity ON threads (user_id, updated_at, id COLLATE "C");
-- A user's threads of one opportunity, case or project.
CREATE INDEX threads_user_scope_activity ON threads (user_id, scope, updated_at, id COLLATE "C") WHERE scope IS NOT NULL;
-- Operators read their org's threads.
CREATE INDEX threads_org_activity ON threads (org_id, updated_at, id COLLATE "C") WHERE org_id IS NOT NULL;

CREATE TABLE thread_items (
    thread_id   text NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    id          text NOT NULL CHECK (length(id) BETWEEN 1 AND 255),
    user_id     text NOT NULL,
    type        text NOT NULL,
    data        jsonb NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (thread_id, id)
);
-- Items are paged by creation time with the id (byte order) as tie-break,
-- the same order the Redis cache keeps.
CREATE INDEX thread_items_order ON thread_items (thread_id, created_at, id COLLATE "C");

CREATE TABLE attachments (
    id          text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 255),
    user_id     text NOT NULL,
    org_id      text,
    thread_id   text REFERENCES threads (id) ON DELETE SET NULL,
    mime_type   text NOT NULL,
    data        jsonb NOT NULL,
    content     bytea,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX attachments_user ON attachments (user_id);
