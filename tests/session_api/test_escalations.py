"""Escalations: opened, queued oldest first, claimed by exactly one operator, resolved; each step audited."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from services.session_api.client import Escalation, SessionApiClient
from switchboard.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from switchboard.principal import Principal


def another_operator(org: str | None) -> Principal:
    return Principal(user_id=f"op-{uuid.uuid4().hex[:8]}", org_id=org, roles=("operator",))


async def test_an_escalation_goes_from_open_to_claimed_to_resolved_with_each_step_recorded(
    client: SessionApiClient, user: Principal, operator: Principal
) -> None:
    session = (await client.create_session(user)).session
    opened = await client.open_escalation(user, session.id, thread_id="thr_help", reason="wants a human")
    assert opened.status == "open"
    assert (opened.user_id, opened.org_id, opened.opened_by) == (user.user_id, user.org_id, user.user_id)
    assert opened.claimed_at is None

    claimed = await client.claim_escalation(operator, opened.id)
    assert claimed.status == "claimed"
    assert claimed.claimed_by == operator.user_id
    assert claimed.claimed_at is not None and claimed.claimed_at >= opened.opened_at

    resolved = await client.resolve_escalation(operator, opened.id, resolution="refund issued")
    assert resolved.status == "resolved"
    assert (resolved.resolved_by, resolved.resolution) == (operator.user_id, "refund issued")
    assert resolved.resolved_at is not None and resolved.resolved_at >= claimed.claimed_at

    events = (await client.list_events(user, session.id)).items
    assert [(e.type, e.actor_user_id) for e in events] == [
        ("session_created", user.user_id),
        ("hitl_escalation", user.user_id),
        ("escalation_claimed", operator.user_id),
        ("escalation_resolved", operator.user_id),
    ]
    assert json.loads(events[1].payload_json) == {
        "escalation_id": opened.id,
        "thread_id": "thr_help",
        "reason": "wants a human",
    }
    assert "thr_help" in (await client.get_session(user, session.id)).thread_ids


async def test_two_operators_racing_to_claim_leave_exactly_one_winner(
    client: SessionApiClient, user: Principal
) -> None:
    session = (await client.create_session(user)).session
    escalation = await client.open_escalation(user, session.id, thread_id="thr", reason="race")
    operators = [another_operator(user.org_id) for _ in range(8)]
    results = await asyncio.gather(
        *(client.claim_escalation(op, escalation.id) for op in operators), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, Escalation)]
    losers = [r for r in results if isinstance(r, FailedPrecondition)]
    assert len(winners) == 1
    assert len(losers) == len(operators) - 1
    holder = winners[0].claimed_by
    assert all(f"already claimed by operator {holder}" in e.message for e in losers)
    assert (await client.get_escalation(user, escalation.id)).claimed_by == holder
    claims = await client.list_events(user, session.id, type="escalation_claimed")
    assert len(claims.items) == 1


async def test_claiming_again_as_the_holder_is_harmless(
    client: SessionApiClient, user: Principal, operator: Principal
) -> None:
    session = (await client.create_session(user)).session
    escalation = await client.open_escalation(user, session.id, thread_id="thr", reason="again")
    first = await client.claim_escalation(operator, escalation.id)
    second = await client.claim_escalation(operator, escalation.id)
    assert first == second


async def test_only_the_holder_resolves_and_only_after_claiming(
    client: SessionApiClient, user: Principal, operator: Principal
) -> None:
    session = (await client.create_session(user)).session
    escalation = await client.open_escalation(user, session.id, thread_id="thr", reason="order")
    with pytest.raises(FailedPrecondition, match="claim it before resolving"):
        await client.resolve_escalation(operator, escalation.id)
    await client.claim_escalation(operator, escalation.id)
    with pytest.raises(FailedPrecondition, match=f"claimed by operator {operator.user_id}"):
        await client.resolve_escalation(another_operator(user.org_id), escalation.id)
    await client.resolve_escalation(operator, escalation.id)
    with pytest.raises(FailedPrecondition, match="already resolved"):
        await client.resolve_escalation(operator, escalation.id)
    with pytest.raises(FailedPrecondition, match="already resolved"):
        await client.claim_escalation(another_operator(user.org_id), escalation.id)


async def test_users_cannot_claim_and_other_orgs_cannot_see(client: SessionApiClient, user: Principal) -> None:
    session = (await client.create_session(user)).session
    escalation = await client.open_escalation(user, session.id, thread_id="thr", reason="scope")
    with pytest.raises(PermissionDenied):
        await client.claim_escalation(user, escalation.id)
    outsider = another_operator(f"org-{uuid.uuid4().hex[:6]}")
    with pytest.raises(NotFound):
        await client.claim_escalation(outsider, escalation.id)
    with pytest.raises(NotFound):
        await client.get_escalation(outsider, escalation.id)
    assert (await client.list_escalations(outsider)).items == []


async def test_opening_while_one_is_pending_for_the_thread_returns_the_pending_one(
    client: SessionApiClient, user: Principal, operator: Principal
) -> None:
    session = (await client.create_session(user)).session
    first = await client.open_escalation(user, session.id, thread_id="thr", reason="first")
    again = await client.open_escalation(user, session.id, thread_id="thr", reason="second")
    assert again.id == first.id
    await client.claim_escalation(operator, first.id)
    await client.resolve_escalation(operator, first.id)
    fresh = await client.open_escalation(user, session.id, thread_id="thr", reason="third")
    assert fresh.id != first.id
    assert len((await client.list_events(user, session.id, type="hitl_escalation")).items) == 2


async def test_the_queue_lists_oldest_first_by_status(
    client: SessionApiClient, user: Principal, operator: Principal
) -> None:
    session = (await client.create_session(user)).session
    ids = [(await client.open_escalation(user, session.id, thread_id=f"thr_{n}", reason=f"r{n}")).id for n in range(4)]
    await client.claim_escalation(operator, ids[1])
    queue = await client.list_escalations(operator, status="open")
    assert [e.id for e in queue.items] == [ids[0], ids[2], ids[3]]
    page = await client.list_escalations(operator, limit=2)
    assert [e.id for e in page.items] == ids[:2]
    rest = await client.list_escalations(operator, limit=2, after=page.after)
    assert [e.id for e in rest.items] == ids[2:]
    mine = await client.list_escalations(user, status="claimed")
    assert [e.id for e in mine.items] == [ids[1]]


async def test_a_finished_session_cannot_be_escalated_and_a_reason_is_required(
    client: SessionApiClient, user: Principal
) -> None:
    session = (await client.create_session(user)).session
    with pytest.raises(InvalidArgument, match="reason is required"):
        await client.open_escalation(user, session.id, thread_id="thr", reason="")
    with pytest.raises(InvalidArgument, match="longer than 2000"):
        await client.open_escalation(user, session.id, thread_id="thr", reason="x" * 2001)
    await client.end_session(user, session.id)
    with pytest.raises(FailedPrecondition, match="ended"):
        await client.open_escalation(user, session.id, thread_id="thr", reason="too late")
