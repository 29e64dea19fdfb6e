"""Figures from a known sequence of sessions and escalations, over gRPC and as Prometheus metrics."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from prometheus_client import REGISTRY

from services.session_api.client import Escalation, SessionApiClient
from switchboard.errors import PermissionDenied
from switchboard.principal import Principal


async def hand_off(
    client: SessionApiClient,
    user: Principal,
    operator: Principal,
    session_id: str,
    *,
    thread_id: str,
    claim: bool = True,
    resolve: bool = True,
) -> Escalation:
    """Open an escalation of the thread and take it as far as claimed or resolved."""
    escalation = await client.open_escalation(user, session_id, thread_id=thread_id, reason="a person, please")
    if claim:
        escalation = await client.claim_escalation(operator, escalation.id)
    if claim and resolve:
        escalation = await client.resolve_escalation(operator, escalation.id, resolution="handed back")
    return escalation


async def record_timeout(client: SessionApiClient, user: Principal, escalation: Escalation) -> None:
    """What the agent runner records, as the thread's owner, when nobody claimed a waiting thread."""
    payload = {"thread_id": escalation.thread_id, "escalation_id": escalation.id}
    await client.record_event(
        user, escalation.session_id, type="handoff_timed_out", payload_json=json.dumps(payload).encode()
    )


async def test_metrics_follow_a_known_sequence_of_sessions_and_escalations(
    client: SessionApiClient, user: Principal, operator: Principal, database_url: str
) -> None:
    sessions = [
        (await client.create_session(user, channel="web", agent_id="sales")).session,
        (await client.create_session(user, channel="web", agent_id="support")).session,
        (await client.create_session(user, channel="voice", agent_id="support")).session,
        (await client.create_session(user, channel="web", agent_id="support")).session,
    ]
    await client.cancel_session(user, sessions[0].id)
    await client.end_session(user, sessions[1].id)
    escalations = [await client.open_escalation(user, sessions[n].id, thread_id="thr", reason="help") for n in (2, 3)]
    for escalation in escalations:
        await client.claim_escalation(operator, escalation.id)
    await client.resolve_escalation(operator, escalations[0].id)

    # Put the steps at known offsets: escalated after 10 s and 30 s, claimed 20 s and
    # 60 s later, the first resolved 100 s after it was opened.
    conn = await asyncpg.connect(database_url)
    try:
        for escalation, (to_escalation, to_claim) in zip(escalations, [(10, 20), (30, 60)], strict=True):
            await conn.execute(
                """UPDATE escalations e SET opened_at = s.created_at + make_interval(secs => $2),
                       claimed_at = s.created_at + make_interval(secs => $2 + $3),
                       resolved_at = CASE WHEN e.resolved_at IS NULL THEN NULL
                                          ELSE s.created_at + make_interval(secs => $2 + 100) END
                   FROM sessions s WHERE s.id = e.session_id AND e.id = $1""",
                escalation.id,
                float(to_escalation),
                float(to_claim),
            )
    finally:
        await conn.close()

    metrics = await client.get_metrics(operator)
    assert metrics.total_sessions == 4
    assert metrics.by_status == {"active": 2, "cancelled": 1, "ended": 1}
    assert metrics.by_channel == {"web": 3, "voice": 1}
    assert metrics.by_agent == {"sales": 1, "support": 3}
    assert metrics.cancel_rate == pytest.approx(0.25)
    assert metrics.time_to_escalation.count == 2
    assert metrics.time_to_escalation.p50_seconds == pytest.approx(20.0)  # interpolated between 10 and 30
    assert metrics.time_to_escalation.p90_seconds == pytest.approx(28.0)
    assert metrics.time_to_claim.count == 2
    assert metrics.time_to_claim.p50_seconds == pytest.approx(40.0)
    assert metrics.time_to_claim.p90_seconds == pytest.approx(56.0)
    assert metrics.time_to_resolution.count == 1
    assert metrics.time_to_resolution.p50_seconds == pytest.approx(100.0)


async def test_metrics_of_an_empty_org_are_zero(client: SessionApiClient, operator: Principal) -> None:
    metrics = await client.get_metrics(operator)
    assert metrics.total_sessions == 0
    assert metrics.cancel_rate == 0.0
    assert metrics.time_to_claim.count == 0
    assert metrics.time_handled_by_human.count == 0
    assert (metrics.hand_backs, metrics.handoff_timeouts) == (0, 0)


async def test_metrics_are_for_operators(client: SessionApiClient, user: Principal) -> None:
    with pytest.raises(PermissionDenied):
        await client.get_metrics(user)


async def test_prometheus_counts_sessions_and_escalation_steps(
    client: SessionApiClient, user: Principal, operator: Principal
) -> None:
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    started = sample("switchboard_sessions_started_total", channel="voice", agent="prom-agent")
    cancelled = sample("switchboard_sessions_finished_total", status="cancelled", channel="voice", agent="prom-agent")
    claimed = sample("switchboard_escalation_steps_total", step="claimed")
    claim_seconds = sample("switchboard_escalation_seconds_count", phase="to_claim")
    handled_seconds = sample("switchboard_escalation_seconds_count", phase="handled_by_human")

    session = (await client.create_session(user, channel="voice", agent_id="prom-agent")).session
    escalation = await client.open_escalation(user, session.id, thread_id="thr", reason="prom")
    await client.claim_escalation(operator, escalation.id)
    await client.resolve_escalation(operator, escalation.id)
    await client.cancel_session(user, session.id)

    assert sample("switchboard_sessions_started_total", channel="voice", agent="prom-agent") == started + 1
    assert (
        sample("switchboard_sessions_finished_total", status="cancelled", channel="voice", agent="prom-agent")
        == cancelled + 1
    )
    assert sample("switchboard_escalation_steps_total", step="claimed") == claimed + 1
    assert sample("switchboard_escalation_seconds_count", phase="to_claim") == claim_seconds + 1
    assert sample("switchboard_escalation_seconds_count", phase="handled_by_human") == handled_seconds + 1


async def test_metrics_count_action_card_decisions_and_the_time_to_decide(
    client: SessionApiClient, user: Principal, operator: Principal, database_url: str
) -> None:
    session = (await client.create_session(user)).session
    for card, decision in (("msg_card1", "approved"), ("msg_card2", "rejected"), ("msg_card3", None)):
        await client.record_event(
            user, session.id, type="approval_requested", payload_json=json.dumps({"card_id": card}).encode()
        )
        if decision is not None:
            payload = json.dumps({"card_id": card, "decision": decision}).encode()
            await client.record_event(user, session.id, type="approval_decided", payload_json=payload)
    await client.record_event(
        user, session.id, type="approval_expired", payload_json=json.dumps({"card_id": "msg_card3"}).encode()
    )
    metrics = await client.get_metrics(operator)
    assert (metrics.approvals, metrics.rejections, metrics.approvals_expired) == (1, 1, 1)
    assert metrics.time_to_decision.count == 2 and metrics.time_to_decision.p90_seconds >= 0


async def test_a_claimed_then_resolved_escalation_is_a_hand_back_timed_from_claim_to_resolve(
    client: SessionApiClient, user: Principal, operator: Principal, database_url: str
) -> None:
    session = (await client.create_session(user)).session
    handed_back = await hand_off(client, user, operator, session.id, thread_id="thr_back")
    await hand_off(client, user, operator, session.id, thread_id="thr_held", resolve=False)
    await hand_off(client, user, operator, session.id, thread_id="thr_waiting", claim=False)

    # Claimed 20 s after it was opened and resolved 45 s after the claim.
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            """UPDATE escalations SET claimed_at = opened_at + interval '20 seconds',
                   resolved_at = opened_at + interval '65 seconds'
               WHERE id = $1""",
            handed_back.id,
        )
    finally:
        await conn.close()

    metrics = await client.get_metrics(operator)
    assert metrics.hand_backs == 1
    assert metrics.time_handled_by_human.count == 1
    assert metrics.time_handled_by_human.p50_seconds == pytest.approx(45.0)
    assert metrics.time_handled_by_human.p90_seconds == pytest.approx(45.0)
    assert metrics.time_to_resolution.p50_seconds == pytest.approx(65.0)
    assert metrics.time_to_claim.count == 2
    assert metrics.handoff_timeouts == 0


async def test_recorded_handoff_timeouts_are_counted_and_the_escalation_stays_open(
    client: SessionApiClient, user: Principal, operator: Principal
) -> None:
    session = (await client.create_session(user)).session
    waiting = await hand_off(client, user, operator, session.id, thread_id="thr_nobody", claim=False)
    await record_timeout(client, user, waiting)
    await client.record_event(user, session.id, type="button_click")

    metrics = await client.get_metrics(operator)
    assert metrics.handoff_timeouts == 1
    assert metrics.hand_backs == 0
    assert metrics.time_handled_by_human.count == 0
    assert (await client.get_escalation(operator, waiting.id)).status == "open"


async def test_another_orgs_hand_offs_do_not_count(
    client: SessionApiClient, user: Principal, operator: Principal
) -> None:
    other_org = f"org-{uuid.uuid4().hex[:8]}"
    other_user = Principal(user_id=f"user-{uuid.uuid4().hex[:10]}", org_id=other_org)
    other_operator = Principal(user_id=f"op-{uuid.uuid4().hex[:8]}", org_id=other_org, roles=("operator",))
    other_session = (await client.create_session(other_user)).session
    await hand_off(client, other_user, other_operator, other_session.id, thread_id="thr_back")
    waiting = await hand_off(client, other_user, other_operator, other_session.id, thread_id="thr_wait", claim=False)
    await record_timeout(client, other_user, waiting)

    session = (await client.create_session(user)).session
    await hand_off(client, user, operator, session.id, thread_id="thr_held", resolve=False)

    ours = await client.get_metrics(operator)
    assert (ours.hand_backs, ours.handoff_timeouts, ours.time_handled_by_human.count) == (0, 0, 0)
    theirs = await client.get_metrics(other_operator)
    assert (theirs.hand_backs, theirs.handoff_timeouts, theirs.time_handled_by_human.count) == (1, 1, 1)


async def test_hand_off_figures_follow_the_window_of_session_creation(
    client: SessionApiClient, user: Principal, operator: Principal, database_url: str
) -> None:
    old = (await client.create_session(user)).session
    new = (await client.create_session(user)).session
    await hand_off(client, user, operator, old.id, thread_id="thr_back")
    waiting = await hand_off(client, user, operator, old.id, thread_id="thr_wait", claim=False)
    await record_timeout(client, user, waiting)
    await hand_off(client, user, operator, new.id, thread_id="thr_back")
    await hand_off(client, user, operator, new.id, thread_id="thr_other")

    # The old session started a day ago; its hand-offs happened now, but the
    # window selects sessions by when they started, as for the other figures.
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE sessions SET created_at = created_at - interval '1 day' WHERE id = $1", old.id)
    finally:
        await conn.close()
    boundary = datetime.now(UTC) - timedelta(hours=1)

    before = await client.get_metrics(operator, until=boundary)
    assert (before.total_sessions, before.hand_backs, before.handoff_timeouts) == (1, 1, 1)
    assert before.time_handled_by_human.count == 1
    after = await client.get_metrics(operator, since=boundary)
    assert (after.total_sessions, after.hand_backs, after.handoff_timeouts) == (1, 2, 0)
    assert after.time_handled_by_human.count == 2
    everything = await client.get_metrics(operator)
    assert (everything.hand_backs, everything.handoff_timeouts) == (3, 1)
