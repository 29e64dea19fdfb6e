"""Figures from a known sequence of sessions and escalations, over gRPC and as Prometheus metrics."""

from __future__ import annotations

import json

import asyncpg
import pytest
from prometheus_client import REGISTRY

from services.session_api.client import SessionApiClient
from switchboard.errors import PermissionDenied
from switchboard.principal import Principal


def counts(entries: object) -> dict[str, int]:
    return {c.key: c.count for c in entries}  # type: ignore[attr-defined]


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
    assert counts(metrics.by_status) == {"active": 2, "cancelled": 1, "ended": 1}
    assert counts(metrics.by_channel) == {"web": 3, "voice": 1}
    assert counts(metrics.by_agent) == {"sales": 1, "support": 3}
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

    session = (await client.create_session(user, channel="voice", agent_id="prom-agent")).session
    escalation = await client.open_escalation(user, session.id, thread_id="thr", reason="prom")
    await client.claim_escalation(operator, escalation.id)
    await client.cancel_session(user, session.id)

    assert sample("switchboard_sessions_started_total", channel="voice", agent="prom-agent") == started + 1
    assert (
        sample("switchboard_sessions_finished_total", status="cancelled", channel="voice", agent="prom-agent")
        == cancelled + 1
    )
    assert sample("switchboard_escalation_steps_total", step="claimed") == claimed + 1
    assert sample("switchboard_escalation_seconds_count", phase="to_claim") == claim_seconds + 1


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
