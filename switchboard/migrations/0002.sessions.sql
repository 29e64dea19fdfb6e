-- depends: 0001.threads
-- Chat sessions, their append-only audit trail and human-in-the-loop escalations.
CREATE TABLE sessions (
    id          text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 255),
    user_id     text NOT NULL,
    org_id      text,
    channel     text NOT NULL CHECK (channel IN ('web', 'voice')),
    agent_id    text NOT NULL DEFAULT '',
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'ended', 'cancelled')),
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    thread_ids  text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    ended_at    timestamptz,
    CHECK ((status = 'active') = (ended_at IS NULL))
);
-- A user's sessions, newest first.
CREATE INDEX sessions_user_created ON sessions (user_id, created_at, id COLLATE "C");
-- Operators list and measure their org's sessions.
CREATE INDEX sessions_org_created ON sessions (org_id, created_at, id COLLATE "C") WHERE org_id IS NOT NULL;

-- The audit trail: rows are only ever inserted (a trigger refuses the rest).
CREATE TABLE session_events (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id     text NOT NULL REFERENCES sessions (id),
    type           text NOT NULL,
    actor_user_id  text NOT NULL,
    payload        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX session_events_session ON session_events (session_id, id);

CREATE FUNCTION session_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'session_events is append-only';
END;
$$;
CREATE TRIGGER session_events_append_only BEFORE UPDATE OR DELETE ON session_events
    FOR EACH ROW EXECUTE FUNCTION session_events_append_only();

CREATE TABLE escalations (
    id           text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 255),
    session_id   text NOT NULL REFERENCES sessions (id),
    thread_id    text NOT NULL DEFAULT '',
    user_id      text NOT NULL,
    org_id       text,
    reason       text NOT NULL,
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'claimed', 'resolved')),
    opened_by    text NOT NULL,
    opened_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    claimed_by   text,
    claimed_at   timestamptz,
    resolved_by  text,
    resolved_at  timestamptz,
    resolution   text NOT NULL DEFAULT ''
);
-- The operators' queue: oldest first, by status.
CREATE INDEX escalations_org_queue ON escalations (org_id, status, opened_at, id COLLATE "C");
CREATE INDEX escalations_user ON escalations (user_id, opened_at, id COLLATE "C");
CREATE INDEX escalations_session ON escalations (session_id, opened_at);
-- At most one pending escalation per thread of a session.
CREATE UNIQUE INDEX escalations_one_pending ON escalations (session_id, thread_id) WHERE status <> 'resolved';
