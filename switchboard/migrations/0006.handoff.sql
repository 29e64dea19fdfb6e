-- depends: 0005.run_approvals
-- The hand-off: who answers a thread, and who wrote each of its items.
--
-- `handler` is the agent, nobody yet (`waiting` for a person until
-- `handler_until`) or a person (`human`: the operator `handler_operator`
-- holds it). `handler_escalation` is the escalation the hand-off belongs to;
-- it is kept when a wait runs out, so the escalation stays in the queue.
-- `handler_since` is when the kind last changed (NULL: never).
ALTER TABLE threads
    ADD COLUMN handler text NOT NULL DEFAULT 'agent' CHECK (handler IN ('agent', 'waiting', 'human')),
    ADD COLUMN handler_operator text,
    ADD COLUMN handler_escalation text,
    ADD COLUMN handler_since timestamptz,
    ADD COLUMN handler_until timestamptz,
    ADD CONSTRAINT threads_handler_operator_check CHECK ((handler = 'human') = (handler_operator IS NOT NULL)),
    ADD CONSTRAINT threads_handler_waiting_check
        CHECK ((handler = 'waiting') = (handler_until IS NOT NULL)
               AND (handler <> 'waiting' OR handler_escalation IS NOT NULL));
-- The expiry sweep reads only the threads that wait, soonest first.
CREATE INDEX threads_waiting_until ON threads (handler_until) WHERE handler = 'waiting';

-- Who wrote an item: the owner (the user, and the agent acting for them) or
-- the operator who held the thread. Items written before the hand-off existed
-- were all written as the owner's.
ALTER TABLE thread_items ADD COLUMN author text;
UPDATE thread_items SET author = user_id;
ALTER TABLE thread_items ALTER COLUMN author SET NOT NULL;
