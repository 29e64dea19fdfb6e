-- depends: 0004.runs
-- A run paused on a tool call that needs a person's approval: `waiting_approval`,
-- held by no replica (it waits in Postgres, not in memory), with the Agents SDK's
-- serialized RunState, the pending approval (its card, call, tool and arguments)
-- and when it expires. Any replica resumes it when the user clicks.
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('queued', 'running', 'waiting_approval', 'completed', 'cancelled', 'failed', 'interrupted'));
ALTER TABLE runs ADD COLUMN state text;
ALTER TABLE runs ADD COLUMN approval jsonb;
ALTER TABLE runs ADD COLUMN approval_expires_at timestamptz;
-- A thread has at most one card waiting; the expiry sweep reads only those.
CREATE UNIQUE INDEX runs_one_waiting_per_thread ON runs (thread_id) WHERE status = 'waiting_approval';
CREATE INDEX runs_waiting_expiry ON runs (approval_expires_at) WHERE status = 'waiting_approval';
