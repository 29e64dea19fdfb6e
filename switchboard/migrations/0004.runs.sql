-- depends: 0003.tasks
-- Agent runs: the truth of who answers a thread. At most one run per thread is
-- `running` (the partial unique index below holds across replicas and without
-- Redis); later messages wait as `queued` (double-texting policy "enqueue").
-- An active run is held by one replica (`holder`) under a lease that the
-- holder renews by heartbeat; any replica marks a run whose lease ran out
-- `interrupted`. No foreign key to threads: the agent runner owns this table,
-- the thread store owns threads, and every read of a run checks the caller.
CREATE TABLE runs (
    id                text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
    thread_id         text NOT NULL,
    user_id           text NOT NULL,
    org_id            text,
    session_id        text,
    agent_id          text NOT NULL DEFAULT '',
    status            text NOT NULL
        CHECK (status IN ('queued', 'running', 'completed', 'cancelled', 'failed', 'interrupted')),
    input_item_id     text NOT NULL DEFAULT '',
    error             text NOT NULL DEFAULT '',
    holder            text,
    lease_expires_at  timestamptz,
    cancel_requested  boolean NOT NULL DEFAULT false,
    last_seq          bigint NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at        timestamptz,
    ended_at          timestamptz
);
CREATE UNIQUE INDEX runs_one_running_per_thread ON runs (thread_id) WHERE status = 'running';
-- A thread's runs, newest first (GET /api/threads/{id}/runs), and its queue.
CREATE INDEX runs_thread_created ON runs (thread_id, created_at, id COLLATE "C");
-- The reaper's scan and each replica's heartbeat touch only active runs.
CREATE INDEX runs_active_lease ON runs (lease_expires_at) WHERE status IN ('queued', 'running');
CREATE INDEX runs_active_holder ON runs (holder) WHERE status IN ('queued', 'running');
CREATE INDEX runs_active_session ON runs (session_id) WHERE status IN ('queued', 'running');
