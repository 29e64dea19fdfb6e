-- depends: 0011.webhook_no_notify
-- Hosted sessions: a session whose agent is an OpenAI ChatKit workflow is created
-- through OpenAI's ChatKit sessions API and runs at OpenAI. Switchboard keeps the
-- session record (audit, escalations, metrics, the console) and the link to OpenAI.
--
-- The session's current OpenAI session (the one whose client secret the user holds)
-- lives on the session row, read with every session; every OpenAI session ever
-- created for it (one per refresh: OpenAI has no refresh) is in hosted_sessions, so
-- a cancel cancels them all at OpenAI.
ALTER TABLE sessions
    ADD COLUMN workflow_id        text,
    ADD COLUMN hosted_user        text,
    ADD COLUMN hosted_session_id  text,
    ADD COLUMN hosted_expires_at  timestamptz,
    ADD COLUMN hosted_status      text CHECK (hosted_status IN ('active', 'cancelled')),
    ADD CONSTRAINT sessions_hosted_complete CHECK (
        (workflow_id IS NULL AND hosted_user IS NULL AND hosted_session_id IS NULL
             AND hosted_expires_at IS NULL AND hosted_status IS NULL)
        OR (workflow_id IS NOT NULL AND hosted_user IS NOT NULL AND hosted_session_id IS NOT NULL
             AND hosted_expires_at IS NOT NULL AND hosted_status IS NOT NULL)
    );

CREATE TABLE hosted_sessions (
    id          text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 255),  -- OpenAI's session id
    session_id  text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'cancelled')),
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- A session's OpenAI sessions, for the cancel that ends them all.
CREATE INDEX hosted_sessions_session ON hosted_sessions (session_id, created_at);
