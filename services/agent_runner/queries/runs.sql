-- name: insert_run
-- A new run: `running` when the thread has no active run, else `queued`
-- ($8 forces `running`: the reject policy, which never queues). Two racing
-- inserts are settled by runs_one_running_per_thread: the loser retries queued.
INSERT INTO runs (id, thread_id, user_id, org_id, session_id, agent_id, holder, lease_expires_at,
                  input_item_id, status, started_at)
SELECT $1, $2, $3, $4, $5, $6, $7, clock_timestamp() + make_interval(secs => $9), $10, s.status,
       CASE WHEN s.status = 'running' THEN clock_timestamp() END
FROM (
    SELECT CASE
        WHEN $8::boolean THEN 'running'
        WHEN EXISTS (SELECT 1 FROM runs WHERE thread_id = $2 AND status IN ('queued', 'running')) THEN 'queued'
        ELSE 'running'
    END AS status
) AS s
RETURNING *;

-- name: insert_queued_run
INSERT INTO runs (id, thread_id, user_id, org_id, session_id, agent_id, holder, lease_expires_at,
                  input_item_id, status)
VALUES ($1, $2, $3, $4, $5, $6, $7, clock_timestamp() + make_interval(secs => $8), $9, 'queued')
RETURNING *;

-- name: start_queued_run
-- A queued run starts when nothing runs in its thread and it is the oldest queued.
UPDATE runs SET status = 'running', started_at = clock_timestamp()
WHERE id = $1 AND status = 'queued'
  AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.thread_id = $2 AND r.status = 'running')
  AND NOT EXISTS (
      SELECT 1 FROM runs q
      WHERE q.thread_id = $2 AND q.status = 'queued' AND (q.created_at, q.id) < (
          SELECT created_at, id FROM runs WHERE id = $1)
  )
RETURNING *;

-- name: finish_run
-- Only an active run ends: a run the reaper marked interrupted stays so. The
-- holder stays recorded: which replica answered (or died answering) is worth knowing.
UPDATE runs SET status = $2, error = $3, last_seq = $4, ended_at = clock_timestamp(),
                lease_expires_at = NULL
WHERE id = $1 AND status IN ('queued', 'running')
RETURNING *;

-- name: delete_run
DELETE FROM runs WHERE id = $1;

-- name: renew_leases
-- One statement per replica and heartbeat, however many runs it holds.
-- Only the runs it still executes ($3): one whose end could not be recorded expires.
UPDATE runs SET lease_expires_at = clock_timestamp() + make_interval(secs => $2)
WHERE holder = $1 AND status IN ('queued', 'running') AND id = ANY($3::text[])
RETURNING id, cancel_requested;

-- name: reap_expired_runs
-- Runs whose holder stopped renewing: interrupted, a batch at a time; SKIP
-- LOCKED lets every replica reap at once without waiting on each other.
UPDATE runs SET status = 'interrupted', error = $1, ended_at = clock_timestamp(),
                lease_expires_at = NULL
WHERE id IN (
    SELECT id FROM runs
    WHERE status IN ('queued', 'running') AND lease_expires_at < clock_timestamp()
    ORDER BY lease_expires_at
    LIMIT 100
    FOR UPDATE SKIP LOCKED
)
RETURNING *;

-- name: request_cancel
-- The principal's active runs that match one of run id, thread id or session id; for an
-- operator ($5: their org) naming a session, every run of that session in their org.
UPDATE runs SET cancel_requested = true
WHERE status IN ('queued', 'running')
  AND (id = $2 OR thread_id = $3 OR session_id = $4)
  AND (user_id = $1 OR ($4::text IS NOT NULL AND $5::text IS NOT NULL AND org_id = $5))
RETURNING id, holder, user_id;

-- name: get_run
-- A run of the user, or (operators, $3) of their org.
SELECT * FROM runs WHERE id = $1 AND (user_id = $2 OR org_id = $3);

-- name: active_run_of_thread
-- The run a joiner follows: the running one, else the oldest queued.
SELECT * FROM runs
WHERE thread_id = $1 AND (user_id = $2 OR org_id = $3) AND status IN ('queued', 'running')
ORDER BY status = 'running' DESC, created_at, id
LIMIT 1;

-- name: list_runs
-- A thread's runs, newest first, after the run $4 (keyset on created_at, id).
SELECT * FROM runs
WHERE thread_id = $1 AND (user_id = $2 OR org_id = $3)
  AND ($4::text IS NULL OR (created_at, id) < (SELECT created_at, id FROM runs WHERE id = $4 AND thread_id = $1))
ORDER BY created_at DESC, id DESC
LIMIT $5;

-- name: run_exists_in_thread
SELECT 1 FROM runs WHERE id = $1 AND thread_id = $2;

-- name: set_session
UPDATE runs SET session_id = $2 WHERE id = $1;

-- name: pause_run
-- A running run stops to wait for a person's approval: in Postgres only, held by nobody.
UPDATE runs SET status = 'waiting_approval', state = $2, approval = $3::jsonb, last_seq = $4,
                approval_expires_at = clock_timestamp() + make_interval(secs => $5), lease_expires_at = NULL
WHERE id = $1 AND status = 'running'
RETURNING *;

-- name: resume_run
-- The click on a card: its waiting run runs again, held by this replica. A run
-- of the thread that is running already wins (unique index): the click waits.
UPDATE runs SET status = 'running', holder = $4, lease_expires_at = clock_timestamp() + make_interval(secs => $5),
                cancel_requested = false, approval_expires_at = NULL
WHERE thread_id = $1 AND user_id = $2 AND status = 'waiting_approval' AND approval ->> 'card_id' = $3
RETURNING *;

-- name: run_of_card
-- The run a card belongs to, in any state (a click on a decided card is a no-op):
-- the user's, or (an operator deciding for the user, $4) one of the org's.
SELECT * FROM runs WHERE thread_id = $1 AND approval ->> 'card_id' = $2 AND (user_id = $3 OR org_id = $4);

-- name: drop_waiting_in_thread
-- A new message while a card waits: the card's run ends, nothing was done.
UPDATE runs SET status = 'cancelled', error = $3, ended_at = clock_timestamp(), approval_expires_at = NULL
WHERE thread_id = $1 AND user_id = $2 AND status = 'waiting_approval'
RETURNING *;

-- name: expire_waiting
UPDATE runs SET status = 'cancelled', error = $1, ended_at = clock_timestamp(), approval_expires_at = NULL
WHERE id IN (
    SELECT id FROM runs
    WHERE status = 'waiting_approval' AND approval_expires_at < clock_timestamp()
    ORDER BY approval_expires_at
    LIMIT 100
    FOR UPDATE SKIP LOCKED
)
RETURNING *;

-- name: set_attending
-- The run now waits for a person (its thread is handed off): its stream stays
-- open to carry the operator's replies, and a new message of the user ends it.
UPDATE runs SET attending = true WHERE id = $1 AND status = 'running';

-- name: stop_attending_runs
-- A new message of the user ends the runs of the thread that wait for a person.
UPDATE runs SET cancel_requested = true
WHERE thread_id = $1 AND user_id = $2 AND status = 'running' AND attending
RETURNING id, holder;

-- name: cancel_answering_runs
-- A person took the thread: the agent's running answer stops (a run waiting
-- for a person stays: it carries the person's replies).
UPDATE runs SET cancel_requested = true
WHERE thread_id = $1 AND user_id = $2 AND status = 'running' AND NOT attending
RETURNING id, holder;
