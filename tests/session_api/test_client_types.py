"""The public clients give back what the services returned: every field of every domain type survives
the servicer's conversion to protobuf and the client's conversion back (no server needed)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from services.agent_runner.client import Run
from services.agent_runner.runs import RunRecord
from services.agent_runner.servicer import run_info
from services.session_api.client import (
    change_from_proto,
    delivery_from_proto,
    endpoint_from_proto,
    escalation_from_proto,
    event_from_proto,
    metrics_from_proto,
    session_from_proto,
)
from services.session_api.domain import (
    DurationStats,
    Escalation,
    HostedLink,
    Session,
    SessionChange,
    SessionEvent,
    SessionMetrics,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from services.session_api.servicer import (
    change_to_proto,
    escalation_to_proto,
    event_to_proto,
    metrics_to_proto,
    session_to_proto,
)
from services.session_api.webhook_servicer import delivery_to_proto, endpoint_to_proto
from services.thread_store.client import change_from_proto as thread_change_from_proto
from services.thread_store.domain import ChangeEvent
from services.thread_store.servicer import event_to_proto as thread_event_to_proto

AT = datetime(2026, 12, 5, 13, 4, 5, 123456, tzinfo=UTC)


def _session(**changes: object) -> Session:
    session = Session(
        id="sess_1",
        user_id="u-1",
        org_id="acme",
        channel="voice",
        agent_id="support",
        status="active",
        created_at=AT,
        ended_at=None,
        metadata_json=b'{"page":"/pricing"}',
        thread_ids=("thr_1", "thr_2"),
    )
    return dataclasses.replace(session, **changes)  # type: ignore[arg-type]


def _escalation(**changes: object) -> Escalation:
    escalation = Escalation(
        id="esc_1",
        session_id="sess_1",
        thread_id="thr_1",
        user_id="u-1",
        org_id="acme",
        reason="a person, please",
        status="open",
        opened_by="u-1",
        opened_at=AT,
    )
    return dataclasses.replace(escalation, **changes)  # type: ignore[arg-type]


LATER = AT + timedelta(minutes=3, microseconds=7)
HOSTED = HostedLink(
    workflow_id="wf_1", openai_user="sb_abc", openai_session_id="cksess_1", expires_at=AT + timedelta(hours=1)
)


@pytest.mark.parametrize(
    "session",
    [
        _session(),
        _session(org_id=None, thread_ids=(), metadata_json=b""),
        _session(status="cancelled", ended_at=LATER),
        _session(status="ended", ended_at=LATER, hosted=HOSTED),
        _session(hosted=dataclasses.replace(HOSTED, cancelled=True)),
    ],
)
def test_a_session_comes_back_whole(session: Session) -> None:
    assert session_from_proto(session_to_proto(session)) == session


@pytest.mark.parametrize(
    "escalation",
    [
        _escalation(),
        _escalation(org_id=None),
        _escalation(status="claimed", claimed_by="op-1", claimed_at=LATER),
        _escalation(
            status="resolved",
            claimed_by="op-1",
            claimed_at=LATER,
            resolved_by="op-1",
            resolved_at=LATER + timedelta(seconds=1),
            resolution="refund issued",
        ),
    ],
)
def test_an_escalation_comes_back_whole(escalation: Escalation) -> None:
    assert escalation_from_proto(escalation_to_proto(escalation)) == escalation


def test_events_metrics_and_changes_come_back_whole() -> None:
    event = SessionEvent(
        id=42, session_id="sess_1", type="button_click", actor_user_id="u-1", payload_json=b'{"a":1}', created_at=AT
    )
    assert event_from_proto(event_to_proto(event)) == event

    metrics = SessionMetrics(
        total_sessions=7,
        by_status={"active": 4, "ended": 3},
        by_channel={"web": 7},
        by_agent={"support": 5, "sales": 2},
        cancel_rate=0.25,
        time_to_escalation=DurationStats(3, 1.5, 9.25),
        time_to_claim=DurationStats(2, 4.0, 8.0),
        time_to_resolution=DurationStats(1, 60.0, 60.0),
        approvals=5,
        rejections=2,
        approvals_expired=1,
        time_to_decision=DurationStats(7, 2.0, 3.0),
        time_handled_by_human=DurationStats(1, 30.0, 30.0),
        hand_backs=1,
        handoff_timeouts=2,
    )
    assert metrics_from_proto(metrics_to_proto(metrics)) == metrics

    for change in (
        SessionChange(id="1-0", type="session.created", at=AT, session=_session()),
        SessionChange(id="2-0", type="escalation.claimed", at=AT, escalation=_escalation(status="claimed")),
        SessionChange(id="3-0", type="watch.started", at=AT),
    ):
        assert change_from_proto(change_to_proto(change)) == change


def test_webhook_endpoints_and_deliveries_come_back_whole() -> None:
    endpoint = WebhookEndpoint(
        id="whe_1",
        org_id="acme",
        url="https://hooks.example.com/in",
        secret="whsec_x",
        event_types=("escalation.opened", "webhook.test"),
        description="crm",
        created_by="op-1",
        created_at=AT,
    )
    assert endpoint_from_proto(endpoint_to_proto(endpoint, with_secret=True)) == endpoint
    assert endpoint_from_proto(endpoint_to_proto(endpoint)) == dataclasses.replace(endpoint, secret="")

    delivery = WebhookDelivery(
        endpoint_id="whe_1",
        event_id="msg_1",
        event_seq=9,
        type="escalation.opened",
        status="delivered",
        attempts=2,
        next_attempt_at=AT,
        last_error="",
        delivered_at=LATER,
        event_created_at=AT,
        attempt_list=(
            WebhookAttempt(attempted_at=AT, status_code=None, error="connection refused", duration_ms=3),
            WebhookAttempt(attempted_at=LATER, status_code=200, error="", duration_ms=12),
        ),
    )
    assert delivery_from_proto(delivery_to_proto(delivery)) == delivery
    pending = dataclasses.replace(delivery, status="pending", delivered_at=None, attempt_list=())
    assert delivery_from_proto(delivery_to_proto(pending)) == pending


def test_a_run_comes_back_with_every_field_the_runner_reports() -> None:
    record = RunRecord(
        id="run_1",
        thread_id="thr_1",
        user_id="u-1",
        org_id="acme",
        session_id="sess_1",
        agent_id="support",
        status="running",
        input_item_id="msg_1",
        error="",
        holder="replica-a",
        lease_expires_at=LATER,
        cancel_requested=False,
        last_seq=17,
        created_at=AT,
        started_at=AT + timedelta(milliseconds=5),
        ended_at=None,
    )
    run = Run.from_proto(run_info(record))
    reported = {f.name for f in dataclasses.fields(Run)}
    assert {name: getattr(run, name) for name in reported} == {name: getattr(record, name) for name in reported}

    bare = dataclasses.replace(
        record, org_id=None, session_id=None, holder=None, lease_expires_at=None, started_at=None
    )
    run = Run.from_proto(run_info(bare))
    assert (run.org_id, run.session_id, run.holder, run.lease_expires_at, run.started_at) == (None,) * 5


@pytest.mark.parametrize("org_id", ["acme", None])
def test_a_thread_change_comes_back_whole(org_id: str | None) -> None:
    change = ChangeEvent(
        id="5-1",
        type="item.added",
        thread_id="thr_1",
        item_id="msg_1",
        user_id="u-1",
        org_id=org_id,
        revision=3,
        at=AT,
        json=b'{"id":"msg_1"}',
    )
    assert thread_change_from_proto(thread_event_to_proto(change)) == change
