"""800 users send one message each at the same moment: every one is answered, none errs, and no
thread is left refusing messages."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest

from tests.e2e.conftest import EVENTS, Stack, bearer, create_request, new_user

USERS = 800


async def _converse(http: httpx.AsyncClient, token: str) -> tuple[str | None, str]:
    """One user's first message: (thread id, "" or what went wrong)."""
    thread_id: str | None = None
    try:
        async with http.stream("POST", "/chatkit", content=create_request("hi"), headers=bearer(token)) as reply:
            if reply.status_code != 200:
                return None, f"HTTP {reply.status_code}: {(await reply.aread())[:200]!r}"
            answered = False
            async for line in reply.aiter_lines():
                if not line.startswith("data: "):
                    continue
                event = EVENTS.validate_json(line[len("data: ") :])
                if event.type == "thread.created":
                    thread_id = event.thread.id
                elif event.type == "error":
                    return thread_id, f"error event: {event.message}"
                elif event.type == "thread.item.done" and event.item.type == "assistant_message":
                    answered = True
            return thread_id, "" if answered else "the stream ended without an answer"
    except httpx.HTTPError as error:
        return thread_id, f"{type(error).__name__}: {error}"


@pytest.mark.timeout(300)  # about a minute here; a busy CI machine gets room, not a different verdict
async def test_eight_hundred_users_at_once_are_all_answered_and_no_thread_stays_busy(stack: Stack) -> None:
    users = [new_user() for _ in range(USERS)]
    tokens = [stack.token(user) for user in users]
    limits = httpx.Limits(max_connections=USERS + 10, max_keepalive_connections=USERS + 10)
    async with httpx.AsyncClient(base_url=stack.edge, timeout=120, limits=limits) as http:
        results = await asyncio.gather(*(_converse(http, token) for token in tokens))
    problems = [problem for _, problem in results if problem]
    assert not problems, f"{len(problems)} of {USERS} failed, e.g. {problems[:3]}"
    threads = [thread_id for thread_id, _ in results if thread_id]
    assert len(set(threads)) == USERS
    connection = await asyncpg.connect(stack.database_url)
    try:
        statuses = await connection.fetch(
            "SELECT status, count(*) AS n FROM runs WHERE user_id = ANY($1::text[]) GROUP BY status", users
        )
    finally:
        await connection.close()
    assert {row["status"]: row["n"] for row in statuses} == {"completed": USERS}  # none active, none failed
