"""A conversation that outlives its client secret: refreshed secrets keep it going (a stack whose
client secrets live 10 s, with no leeway); a cancelled session cannot refresh; another user's is 404."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import (
    Stack,
    add_message_request,
    assistant_text,
    bearer,
    create_request,
    new_user,
    stack_ports,
    start_stack,
    stop_stack,
    stream_events,
    thread_messages,
)

TTL = 10


@pytest.fixture(scope="module")
def short_lived(tmp_path_factory: pytest.TempPathFactory, database_url: str, redis_url: str) -> Iterator[Stack]:
    stack = start_stack(
        tmp_path_factory.mktemp("short-secrets"),
        stack_ports(),
        database_url,
        redis_url,
        SWITCHBOARD_SESSION_TOKEN_TTL_SECONDS=str(TTL),
        SWITCHBOARD_JWT_LEEWAY_SECONDS="0",
    )
    yield stack
    stop_stack(stack)


async def _turn(http: httpx.AsyncClient, secret: str, thread_id: str, text: str) -> str:
    events = await stream_events(http, secret, add_message_request(thread_id, text))
    assert not [e for e in events if e.type == "error"], events
    return assistant_text(events)


async def test_a_conversation_longer_than_a_client_secret_keeps_working_with_refreshed_ones(
    short_lived: Stack,
) -> None:
    user = new_user()
    async with httpx.AsyncClient(base_url=short_lived.edge, timeout=30) as http:
        created = await http.post("/chatkit/sessions", json={}, headers=bearer(short_lived.token(user)))
        assert created.status_code == 200, created.text
        session_id = created.json()["session"]["id"]
        first = created.json()["client_secret"]["token"]
        started = time.monotonic()
        events = await stream_events(http, first, create_request("add buy milk"))
        thread_id = events[0].thread.id  # type: ignore[union-attr]
        assert assistant_text(events)

        # Late in its life (as ChatKit's getClientSecret does), the current secret buys a new one.
        await asyncio.sleep(max(0.0, TTL / 2 - (time.monotonic() - started)))
        refreshed = await http.post(f"/chatkit/sessions/{session_id}/refresh", headers=bearer(first))
        assert refreshed.status_code == 200, refreshed.text
        second = refreshed.json()["token"]
        assert second != first
        # Past the first secret's lifetime: it is refused, the refreshed one carries on.
        await asyncio.sleep(max(0.0, TTL + 1.0 - (time.monotonic() - started)))
        refused = await http.post("/chatkit", content=add_message_request(thread_id, "hi"), headers=bearer(first))
        assert refused.status_code == 401
        assert await _turn(http, second, thread_id, "list my tasks")
        third = (await http.post(f"/chatkit/sessions/{session_id}/refresh", headers=bearer(second))).json()["token"]
        assert await _turn(http, third, thread_id, "thanks")
        messages = await thread_messages(http, third, thread_id)
        assert [t for t, _ in messages].count("user_message") == 3  # one conversation throughout

        # Another user's session is not theirs to refresh.
        other = await http.post(
            f"/chatkit/sessions/{session_id}/refresh", headers=bearer(short_lived.token(new_user()))
        )
        assert other.status_code == 404, other.text

        # Cancelled: the secret dies with the session, and the user's own token cannot refresh it either.
        cancelled = await http.post(f"/chatkit/sessions/{session_id}/cancel", headers=bearer(third))
        assert cancelled.status_code == 200, cancelled.text
        dead = await http.post(f"/chatkit/sessions/{session_id}/refresh", headers=bearer(third))
        assert dead.status_code == 401
        again = await http.post(f"/chatkit/sessions/{session_id}/refresh", headers=bearer(short_lived.token(user)))
        assert again.status_code == 409, again.text
        assert "start a new session" in again.text
