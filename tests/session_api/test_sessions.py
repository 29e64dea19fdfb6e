"""Session lifecycle through a real server: create, refresh, cancel, end; who sees what."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from services.session_api.client import SessionApiClient
from switchboard.api.v1 import session_api_pb2 as pb
from switchboard.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from switchboard.principal import Principal
from switchboard.proto_convert import principal_to_proto
from tests.session_api.conftest import RunningSessionApi


async def test_a_new_session_is_active_and_its_client_secret_authenticates_as_the_user(
    client: SessionApiClient, user: Principal
) -> None:
    created = await client.create_session(
        user, channel="voice", agent_id="support", metadata_json=b'{"page": "/pricing"}', thread_id="thr_1"
    )
    session = created.session
    assert session.status == "active"
    assert (session.user_id, session.org_id, session.channel, session.agent_id) == (
        user.user_id,
        user.org_id,
        "voice",
        "support",
    )
    assert json.loads(session.metadata_json) == {"page": "/pricing"}
    assert list(session.thread_ids) == ["thr_1"]
    assert session.ended_at is None

    reply = await client.authenticate(created.client_secret.token)
    assert reply.kind == "session"
    assert reply.principal.user_id == user.user_id
    assert reply.principal.org_id == user.org_id
    assert reply.principal.session_id == session.id
    assert reply.expires_at == created.client_secret.expires_at


async def test_a_session_created_without_a_channel_is_web_and_a_named_channel_is_kept(
    client: SessionApiClient, user: Principal
) -> None:
    # The raw request, with no channel at all: the server's default, not the client's.
    unnamed = await client.stub.CreateSession(pb.CreateSessionRequest(principal=principal_to_proto(user)))
    assert unnamed.session.channel == "web"
    voice = await client.create_session(user, channel="voice")
    assert voice.session.channel == "voice"
    assert (await client.get_session(user, voice.session.id)).channel == "voice"


async def test_refreshing_gives_a_new_working_secret(client: SessionApiClient, user: Principal) -> None:
    created = await client.create_session(user)
    refreshed = await client.refresh_session(user, created.session.id)
    assert refreshed.token != created.client_secret.token
    assert (await client.authenticate(refreshed.token)).principal.session_id == created.session.id


async def test_cancelling_kills_every_client_secret_of_the_session(client: SessionApiClient, user: Principal) -> None:
    created = await client.create_session(user)
    refreshed = await client.refresh_session(user, created.session.id)
    await client.authenticate(created.client_secret.token)  # now in the verification cache

    cancelled = await client.cancel_session(user, created.session.id, reason="changed my mind")
    assert cancelled.status == "cancelled"
    assert cancelled.ended_at is not None
    for token in (created.client_secret.token, refreshed.token):
        with pytest.raises(Unauthenticated):
            await client.authenticate(token)
    with pytest.raises(FailedPrecondition, match="cancelled"):
        await client.refresh_session(user, created.session.id)
    with pytest.raises(FailedPrecondition, match="already cancelled"):
        await client.cancel_session(user, created.session.id)
    events = await client.list_events(user, created.session.id)
    assert [e.type for e in events.items] == ["session_created", "cancel"]
    assert json.loads(events.items[-1].payload_json)["reason"] == "changed my mind"


async def test_cancelling_on_one_replica_kills_the_secret_on_another(
    session_api: RunningSessionApi, replica: RunningSessionApi, user: Principal
) -> None:
    created = await session_api.client.create_session(user)
    token = created.client_secret.token
    assert (await replica.client.authenticate(token)).principal.session_id == created.session.id

    await session_api.client.cancel_session(user, created.session.id)
    # The revocation travels through Redis pub/sub; the replica's status cache TTL is 5 s, so
    # passing well within it shows the message (not the TTL) did the work.
    for _ in range(50):
        try:
            await replica.client.authenticate(token)
        except Unauthenticated:
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the replica still accepts the cancelled session's secret after 1 s")


async def test_ending_a_session_kills_its_secret_and_cannot_be_repeated(
    client: SessionApiClient, user: Principal
) -> None:
    created = await client.create_session(user)
    ended = await client.end_session(user, created.session.id)
    assert ended.status == "ended"
    with pytest.raises(Unauthenticated):
        await client.authenticate(created.client_secret.token)
    with pytest.raises(FailedPrecondition, match="already ended"):
        await client.end_session(user, created.session.id)
    with pytest.raises(FailedPrecondition, match="already ended"):
        await client.cancel_session(user, created.session.id)


async def test_another_users_session_is_not_found(client: SessionApiClient, user: Principal) -> None:
    created = await client.create_session(user)
    stranger = Principal(user_id=f"stranger-{uuid.uuid4().hex[:6]}", org_id=user.org_id)
    for call in (
        client.get_session(stranger, created.session.id),
        client.cancel_session(stranger, created.session.id),
        client.end_session(stranger, created.session.id),
        client.refresh_session(stranger, created.session.id),
        client.record_event(stranger, created.session.id, type="button_click"),
        client.list_events(stranger, created.session.id),
        client.open_escalation(stranger, created.session.id, thread_id="t", reason="help"),
    ):
        with pytest.raises(NotFound):
            await call
    assert (await client.list_sessions(stranger)).items == []
    assert (await client.get_session(user, created.session.id)).status == "active"


async def test_operators_see_their_orgs_sessions_and_no_other(
    client: SessionApiClient, user: Principal, operator: Principal
) -> None:
    mine = await client.create_session(user)
    other_org_user = Principal(user_id=f"u-{uuid.uuid4().hex[:6]}", org_id=f"org-{uuid.uuid4().hex[:6]}")
    theirs = await client.create_session(other_org_user)

    assert (await client.get_session(operator, mine.session.id)).user_id == user.user_id
    with pytest.raises(NotFound):
        await client.get_session(operator, theirs.session.id)
    listed = await client.list_sessions(operator, org_wide=True)
    assert [s.id for s in listed.items] == [mine.session.id]
    by_user = await client.list_sessions(operator, org_wide=True, user_id=user.user_id)
    assert [s.id for s in by_user.items] == [mine.session.id]
    # An operator may cancel a session of the org, but not refresh the user's secret.
    with pytest.raises(PermissionDenied):
        await client.refresh_session(operator, mine.session.id)
    assert (await client.cancel_session(operator, mine.session.id)).status == "cancelled"


async def test_org_wide_listing_is_for_operators(client: SessionApiClient, user: Principal) -> None:
    with pytest.raises(PermissionDenied):
        await client.list_sessions(user, org_wide=True)
    with pytest.raises(InvalidArgument):
        await client.list_sessions(user, user_id="someone-else")


async def test_sessions_list_newest_first_by_status_in_pages(client: SessionApiClient, user: Principal) -> None:
    ids = [(await client.create_session(user)).session.id for _ in range(5)]
    await client.end_session(user, ids[1])
    first = await client.list_sessions(user, limit=2)
    assert [s.id for s in first.items] == [ids[4], ids[3]]
    assert first.has_more
    second = await client.list_sessions(user, limit=2, after=first.after)
    assert [s.id for s in second.items] == [ids[2], ids[1]]
    rest = await client.list_sessions(user, limit=2, after=second.after)
    assert [s.id for s in rest.items] == [ids[0]]
    assert not rest.has_more
    ended = await client.list_sessions(user, status="ended")
    assert [s.id for s in ended.items] == [ids[1]]
    active = await client.list_sessions(user, status="active")
    assert ids[1] not in [s.id for s in active.items]


async def test_threads_are_attached_once_and_only_to_active_sessions(client: SessionApiClient, user: Principal) -> None:
    created = await client.create_session(user, thread_id="thr_a")
    await client.attach_thread(user, created.session.id, "thr_b")
    again = await client.attach_thread(user, created.session.id, "thr_a")
    assert list(again.thread_ids) == ["thr_a", "thr_b"]
    await client.end_session(user, created.session.id)
    with pytest.raises(FailedPrecondition):
        await client.attach_thread(user, created.session.id, "thr_c")


async def test_a_session_status_that_cannot_be_read_is_unavailable_not_internal() -> None:
    from services.session_api.liveness import SessionLiveness
    from switchboard.errors import Unavailable

    async def database_down(_session_id: str) -> None:
        raise ConnectionRefusedError("postgres is down")

    liveness = SessionLiveness(database_down)
    with pytest.raises(Unavailable):
        await liveness.is_active("sess_x")
    liveness.mark_finished("sess_x")
    assert await liveness.is_active("sess_x") is False
