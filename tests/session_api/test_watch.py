"""The live watch: changes made through one server instance reach watchers of another."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from services.session_api.client import SessionApiClient, SessionChange
from switchboard.errors import InvalidArgument, NotFound, PermissionDenied
from switchboard.principal import Principal
from tests.session_api.conftest import RunningSessionApi


async def started(changes: AsyncIterator[SessionChange]) -> SessionChange:
    first = await asyncio.wait_for(anext(changes), timeout=5)
    assert first.type == "watch.started"
    return first


async def next_change(changes: AsyncIterator[SessionChange]) -> SessionChange:
    return await asyncio.wait_for(anext(changes), timeout=5)


async def test_an_operator_watching_one_replica_sees_changes_made_through_another(
    session_api: RunningSessionApi, replica: RunningSessionApi, user: Principal, operator: Principal
) -> None:
    changes = replica.client.watch(operator, org=True)
    try:
        await started(changes)
        created = await session_api.client.create_session(user, agent_id="watched")
        change = await next_change(changes)
        assert change.type == "session.created"
        assert change.session is not None and change.escalation is None
        assert change.session.id == created.session.id
        assert change.session.agent_id == "watched"

        escalation = await session_api.client.open_escalation(user, created.session.id, thread_id="t", reason="hi")
        opened = await next_change(changes)
        assert (opened.type, opened.escalation.id) == ("escalation.opened", escalation.id)
        await session_api.client.claim_escalation(operator, escalation.id)
        claimed = await next_change(changes)
        assert (claimed.type, claimed.escalation.claimed_by) == ("escalation.claimed", operator.user_id)

        await session_api.client.cancel_session(user, created.session.id)
        cancelled = await next_change(changes)
        assert cancelled.type == "session.cancelled"
        assert cancelled.session.status == "cancelled"
    finally:
        await changes.aclose()


async def test_a_user_watch_sees_only_their_own_sessions(
    session_api: RunningSessionApi, replica: RunningSessionApi, user: Principal
) -> None:
    neighbour = Principal(user_id=f"n-{uuid.uuid4().hex[:6]}", org_id=user.org_id)
    changes = replica.client.watch(user)
    try:
        await started(changes)
        await session_api.client.create_session(neighbour)
        mine = await session_api.client.create_session(user)
        change = await next_change(changes)
        assert change.session.id == mine.session.id
    finally:
        await changes.aclose()


async def test_a_watch_resumes_after_the_id_it_was_given(
    session_api: RunningSessionApi, replica: RunningSessionApi, user: Principal
) -> None:
    changes = replica.client.watch(user)
    first = await started(changes)
    await changes.aclose()
    created = await session_api.client.create_session(user)
    await session_api.client.end_session(user, created.session.id)

    resumed = replica.client.watch(user, session_id=created.session.id, since=first.id)
    try:
        assert (await next_change(resumed)).type == "watch.started"
        assert [(await next_change(resumed)).type for _ in range(2)] == ["session.created", "session.ended"]
    finally:
        await resumed.aclose()


async def test_watching_is_refused_clearly_for_bad_requests(client: SessionApiClient, user: Principal) -> None:
    with pytest.raises(PermissionDenied):
        await anext(client.watch(user, org=True))
    with pytest.raises(InvalidArgument, match="since"):
        await anext(client.watch(user, since="not-an-id"))
    with pytest.raises(NotFound):
        await anext(client.watch(user, session_id="sess_of_someone_else"))
