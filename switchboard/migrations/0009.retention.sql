-- depends: 0008.webhooks
-- Retention: per-org policies over the deployment's default, legal holds, and
-- what the sweep needs to find old rows without scanning everything.
--
-- thread_days / audit_days: NULL follows the deployment's default
-- (SWITCHBOARD_RETENTION_THREAD_DAYS / _AUDIT_DAYS); 0 keeps forever.
CREATE TABLE retention_policies (
    org_id       text PRIMARY KEY CHECK (length(org_id) BETWEEN 1 AND 255),
    thread_days  integer CHECK (thread_days >= 0),
    audit_days   integer CHECK (audit_days >= 0),
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- A hold on one thread or on everything of one user: never swept while it exists.
CREATE TABLE legal_holds (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    thread_id   text,
    user_id     text,
    reason      text NOT NULL DEFAULT '',
    created_by  text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK ((thread_id IS NULL) <> (user_id IS NULL))
);
CREATE UNIQUE INDEX legal_holds_thread ON legal_holds (thread_id) WHERE thread_id IS NOT NULL;
CREATE UNIQUE INDEX legal_holds_user ON legal_holds (user_id) WHERE user_id IS NOT NULL;

-- The sweep reads the least recently active threads first, and the oldest audit rows.
CREATE INDEX threads_updated ON threads (updated_at);
CREATE INDEX session_events_created ON session_events (created_at);

-- The audit trail stays append-only, except for the retention sweep, which
-- says so in its own transaction (SET LOCAL switchboard.retention_sweep = 'on').
CREATE OR REPLACE FUNCTION session_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('switchboard.retention_sweep', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'session_events is append-only';
END;
$$;
