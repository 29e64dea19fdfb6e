-- depends: 0009.retention
-- A user's thumbs up or down on an answer (recorded by the edge as a `feedback`
-- session event) is a `feedback.given` webhook, enqueued in the same transaction.
CREATE FUNCTION webhook_on_feedback() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_session sessions%ROWTYPE;
    v_thread  text := coalesce(NEW.payload ->> 'thread_id', '');
BEGIN
    SELECT * INTO v_session FROM sessions WHERE id = NEW.session_id;
    PERFORM webhook_enqueue('feedback.given', v_session.org_id,
        CASE WHEN v_thread <> '' THEN 'thread:' || v_thread ELSE 'session:' || NEW.session_id END,
        jsonb_build_object(
            'session_id', NEW.session_id, 'user_id', NEW.actor_user_id, 'org_id', v_session.org_id,
            'thread_id', v_thread, 'item_ids', NEW.payload -> 'item_ids', 'kind', NEW.payload ->> 'kind'));
    RETURN NULL;
END;
$$;
CREATE TRIGGER webhook_on_feedback AFTER INSERT ON session_events
    FOR EACH ROW WHEN (NEW.type = 'feedback') EXECUTE FUNCTION webhook_on_feedback();
