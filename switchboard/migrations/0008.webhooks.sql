-- depends: 0007.run_attending
-- Webhooks: a transactional outbox. Triggers on the tables whose changes are
-- events (sessions, escalations, threads' hand-off, runs) enqueue the event in
-- the same transaction as the change, so an event exists if and only if its
-- change committed, whichever service or replica made it. Each event fans out
-- at once to one delivery per matching endpoint (the deployment's, org_id NULL,
-- and its org's); deliverers on any replica take due deliveries with
-- FOR UPDATE SKIP LOCKED.
CREATE TABLE webhook_endpoints (
    id           text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
    -- NULL: the deployment's endpoint (SWITCHBOARD_WEBHOOK_URL), which gets every org's events.
    org_id       text,
    url          text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    secret       text NOT NULL CHECK (secret LIKE 'whsec\_%'),
    -- Empty: every event type.
    event_types  text[] NOT NULL DEFAULT '{}',
    description  text NOT NULL DEFAULT '',
    created_by   text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX webhook_endpoints_org ON webhook_endpoints (org_id, created_at, id COLLATE "C");

CREATE TABLE webhook_events (
    seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id            text NOT NULL UNIQUE,
    type          text NOT NULL,
    org_id        text,
    -- Deliveries of one endpoint with the same key go out in seq order (a thread's id, else its session's).
    ordering_key  text NOT NULL,
    data          jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX webhook_events_created ON webhook_events (created_at);

CREATE TABLE webhook_deliveries (
    endpoint_id      text NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_seq        bigint NOT NULL REFERENCES webhook_events (seq) ON DELETE CASCADE,
    ordering_key     text NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Past this, a failed attempt dead-letters the delivery (a day after enqueue or redelivery by default).
    retry_until      timestamptz,
    last_error       text NOT NULL DEFAULT '',
    delivered_at     timestamptz,
    PRIMARY KEY (endpoint_id, event_seq)
);
-- The deliverers' scan: due pending deliveries, oldest first.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
-- Per-key ordering: is an earlier delivery of the same key still pending?
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (endpoint_id, ordering_key, event_seq) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_seq);

CREATE TABLE webhook_attempts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id   text NOT NULL,
    event_seq     bigint NOT NULL,
    attempted_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    status_code   integer,
    error         text NOT NULL DEFAULT '',
    duration_ms   integer NOT NULL DEFAULT 0,
    FOREIGN KEY (endpoint_id, event_seq) REFERENCES webhook_deliveries (endpoint_id, event_seq) ON DELETE CASCADE
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, id);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (endpoint_id, event_seq);

-- Enqueue one event in the caller's transaction: the outbox row and one
-- delivery per endpoint that wants it. Returns the event's id, or NULL when no
-- endpoint wants it (then nothing is stored: a deployment without webhooks
-- pays one indexed lookup per event).
CREATE FUNCTION webhook_enqueue(p_type text, p_org_id text, p_ordering_key text, p_data jsonb)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_seq bigint;
    v_id  text := 'msg_' || replace(gen_random_uuid()::text, '-', '');
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM webhook_endpoints e
        WHERE (e.org_id IS NULL OR e.org_id = p_org_id)
          AND (cardinality(e.event_types) = 0 OR p_type = ANY (e.event_types))) THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_events (id, type, org_id, ordering_key, data)
    VALUES (v_id, p_type, p_org_id, p_ordering_key, p_data)
    RETURNING seq INTO v_seq;
    INSERT INTO webhook_deliveries (endpoint_id, event_seq, ordering_key)
    SELECT e.id, v_seq, p_ordering_key
    FROM webhook_endpoints e
    WHERE (e.org_id IS NULL OR e.org_id = p_org_id)
      AND (cardinality(e.event_types) = 0 OR p_type = ANY (e.event_types));
    PERFORM pg_notify('webhook_outbox', '');
    RETURN v_id;
END;
$$;

CREATE FUNCTION webhook_on_session() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM webhook_enqueue('session.created', NEW.org_id, 'session:' || NEW.id, jsonb_build_object(
            'session_id', NEW.id, 'user_id', NEW.user_id, 'org_id', NEW.org_id, 'channel', NEW.channel,
            'agent_id', NEW.agent_id, 'thread_ids', to_jsonb(NEW.thread_ids)));
    ELSIF NEW.status IS DISTINCT FROM OLD.status AND NEW.status IN ('ended', 'cancelled') THEN
        PERFORM webhook_enqueue('session.' || NEW.status, NEW.org_id, 'session:' || NEW.id, jsonb_build_object(
            'session_id', NEW.id, 'user_id', NEW.user_id, 'org_id', NEW.org_id, 'thread_ids', to_jsonb(NEW.thread_ids),
            'ended_at', NEW.ended_at));
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER webhook_on_session AFTER INSERT OR UPDATE OF status ON sessions
    FOR EACH ROW EXECUTE FUNCTION webhook_on_session();

CREATE FUNCTION webhook_on_escalation() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_type text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        v_type := 'escalation.opened';
    ELSIF NEW.status IS DISTINCT FROM OLD.status AND NEW.status IN ('claimed', 'resolved') THEN
        v_type := 'escalation.' || NEW.status;
    ELSE
        RETURN NULL;
    END IF;
    PERFORM webhook_enqueue(v_type, NEW.org_id,
        CASE WHEN NEW.thread_id <> '' THEN 'thread:' || NEW.thread_id ELSE 'session:' || NEW.session_id END,
        jsonb_build_object(
            'escalation_id', NEW.id, 'session_id', NEW.session_id, 'thread_id', NEW.thread_id,
            'user_id', NEW.user_id, 'org_id', NEW.org_id, 'reason', NEW.reason, 'status', NEW.status,
            'opened_by', NEW.opened_by, 'claimed_by', NEW.claimed_by, 'resolved_by', NEW.resolved_by,
            'resolution', NEW.resolution));
    RETURN NULL;
END;
$$;
CREATE TRIGGER webhook_on_escalation AFTER INSERT OR UPDATE OF status ON escalations
    FOR EACH ROW EXECUTE FUNCTION webhook_on_escalation();

-- The hand-off: a person took the thread (handoff.started), gave it back to
-- the agent (handoff.ended), or nobody came before the wait ran out
-- (escalation.timed_out: the agent answers again, the escalation stays queued).
CREATE FUNCTION webhook_on_handler() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_type text;
BEGIN
    IF NEW.handler = 'human' AND OLD.handler <> 'human' THEN
        v_type := 'handoff.started';
    ELSIF OLD.handler = 'human' AND NEW.handler <> 'human' THEN
        v_type := 'handoff.ended';
    ELSIF OLD.handler = 'waiting' AND NEW.handler = 'agent' THEN
        v_type := 'escalation.timed_out';
    ELSE
        RETURN NULL;
    END IF;
    PERFORM webhook_enqueue(v_type, NEW.org_id, 'thread:' || NEW.id, jsonb_build_object(
        'thread_id', NEW.id, 'user_id', NEW.user_id, 'org_id', NEW.org_id,
        'escalation_id', coalesce(NEW.handler_escalation, OLD.handler_escalation),
        'operator', coalesce(NEW.handler_operator, OLD.handler_operator), 'handler', NEW.handler));
    RETURN NULL;
END;
$$;
CREATE TRIGGER webhook_on_handler AFTER UPDATE OF handler ON threads
    FOR EACH ROW WHEN (OLD.handler IS DISTINCT FROM NEW.handler) EXECUTE FUNCTION webhook_on_handler();

-- Runs that finish or pause for an approval; a run leaving the wait for an
-- approval to run again (or end) is the approval's decision.
CREATE FUNCTION webhook_on_run() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_data jsonb := jsonb_build_object(
        'run_id', NEW.id, 'thread_id', NEW.thread_id, 'user_id', NEW.user_id, 'org_id', NEW.org_id,
        'session_id', NEW.session_id, 'agent_id', NEW.agent_id, 'status', NEW.status, 'error', NEW.error);
BEGIN
    IF OLD.status = 'waiting_approval' AND NEW.status <> 'waiting_approval' THEN
        PERFORM webhook_enqueue('approval.decided', NEW.org_id, 'thread:' || NEW.thread_id,
            v_data || jsonb_build_object('approval', OLD.approval));
    END IF;
    IF NEW.status IN ('completed', 'failed', 'cancelled', 'waiting_approval') THEN
        PERFORM webhook_enqueue(
            CASE NEW.status WHEN 'waiting_approval' THEN 'run.waiting_for_approval' ELSE 'run.' || NEW.status END,
            NEW.org_id, 'thread:' || NEW.thread_id, v_data);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER webhook_on_run AFTER UPDATE OF status ON runs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION webhook_on_run();
