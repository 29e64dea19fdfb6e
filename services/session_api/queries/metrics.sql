-- name: session_counts
-- Sessions of an org created in [$2, $3), grouped by status, channel and agent.
SELECT status, channel, agent_id, count(*) AS n
FROM sessions
WHERE org_id = $1 AND created_at >= $2 AND created_at < $3
GROUP BY status, channel, agent_id;

-- name: escalation_durations
-- p50/p90 in seconds of: session start -> escalation opened, opened -> claimed,
-- opened -> resolved, claimed -> resolved (a person handled the thread), over
-- escalations of the org's sessions created in [$2, $3). An escalation resolved
-- after a claim is a hand-back: its thread went back to the agent.
WITH d AS (
    SELECT extract(epoch FROM e.opened_at - s.created_at) AS to_escalation,
           extract(epoch FROM e.claimed_at - e.opened_at) AS to_claim,
           extract(epoch FROM e.resolved_at - e.opened_at) AS to_resolution,
           extract(epoch FROM e.resolved_at - e.claimed_at) AS handled
    FROM escalations e JOIN sessions s ON s.id = e.session_id
    WHERE s.org_id = $1 AND s.created_at >= $2 AND s.created_at < $3
)
SELECT count(to_escalation) AS escalation_n,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY to_escalation) AS escalation_p50,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY to_escalation) AS escalation_p90,
       count(to_claim) AS claim_n,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY to_claim) AS claim_p50,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY to_claim) AS claim_p90,
       count(to_resolution) AS resolution_n,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY to_resolution) AS resolution_p50,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY to_resolution) AS resolution_p90,
       count(handled) AS handled_n,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY handled) AS handled_p50,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY handled) AS handled_p90
FROM d;

-- name: handoff_timeouts
-- Waiting threads nobody claimed in time, in the org's sessions created in
-- [$2, $3), from the `handoff_timed_out` events the agent runner records.
SELECT count(*)
FROM session_events ev JOIN sessions s ON s.id = ev.session_id
WHERE s.org_id = $1 AND s.created_at >= $2 AND s.created_at < $3
  AND ev.type = 'handoff_timed_out';

-- name: approval_figures
-- Action cards in the org's sessions created in [$2, $3), from the audit trail the
-- agent runner writes: decisions by kind, expiries, and card shown -> decided.
WITH events AS (
    SELECT ev.type, ev.payload, ev.created_at
    FROM session_events ev JOIN sessions s ON s.id = ev.session_id
    WHERE s.org_id = $1 AND s.created_at >= $2 AND s.created_at < $3
      AND ev.type IN ('approval_requested', 'approval_decided', 'approval_expired')
), waits AS (
    SELECT extract(epoch FROM d.created_at - a.created_at) AS seconds
    FROM events a JOIN events d ON d.payload ->> 'card_id' = a.payload ->> 'card_id'
    WHERE a.type = 'approval_requested' AND d.type = 'approval_decided'
)
SELECT (SELECT count(*) FROM events WHERE type = 'approval_decided' AND payload ->> 'decision' = 'approved') AS approved,
       (SELECT count(*) FROM events WHERE type = 'approval_decided' AND payload ->> 'decision' = 'rejected') AS rejected,
       (SELECT count(*) FROM events WHERE type = 'approval_expired') AS expired,
       count(seconds) AS decision_n,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS decision_p50,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds) AS decision_p90
FROM waits;
