-- depends: 0010.feedback_webhook
-- Deliverers poll (SWITCHBOARD_WEBHOOK_POLL_SECONDS) instead of listening: a
-- NOTIFY in every event's transaction would take Postgres's global notify lock
-- at each commit, and a listener would hold a connection per replica.
CREATE OR REPLACE FUNCTION webhook_enqueue(p_type text, p_org_id text, p_ordering_key text, p_data jsonb)
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
    RETURN v_id;
END;
$$;
