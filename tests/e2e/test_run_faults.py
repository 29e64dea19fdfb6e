"""Runs under faults, on a stack of their own with a Redis of its own: the agent runner killed
with SIGKILL mid-answer, and Redis stopped mid-answer."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.conftest import PrivateRedis, free_port
from tests.e2e.conftest import (
    Stack,
    add_message_request,
    assistant_text,
    bearer,
    child_pid,
    create_request,
    new_user,
    read_sse,
    read_until_text,
    stack_ports,
    start_stack,
    stop_stack,
    stream_events,
    thread_messages,
)


@pytest.fixture(scope="module")
def fault_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    """A Redis these tests may stop."""
    server = PrivateRedis(tmp_path_factory.mktemp("fault-redis"), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fault_stack(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, fault_redis: PrivateRedis
) -> Iterator[Stack]:
    """A stack whose processes these tests kill."""
    running = start_stack(tmp_path_factory.mktemp("fault-stack"), stack_ports(), database_url, fault_redis.url)
    yield running
    stop_stack(running)


@pytest.fixture
async def fault_http(fault_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fault_stack.edge, timeout=30) as client:
        yield client


async def test_a_killed_agent_runner_ends_the_stream_with_an_error_keeps_the_partial_and_the_thread_recovers(
    fault_stack: Stack, fault_http: httpx.AsyncClient
) -> None:
    http = fault_http
    token = fault_stack.token(new_user())
    created = await stream_events(http, token, create_request("hi"))
    thread_id = created[0].thread.id  # type: ignore[union-attr]
    async with http.stream(
        "POST", "/chatkit", content=add_message_request(thread_id, "count to 5000"), headers=bearer(token)
    ) as reply:
        events = read_sse(reply)
        await read_until_text(events, " 1200 ")  # about two seconds of answer: partial saves have happened
        os.kill(child_pid(fault_stack, "agent-runner"), signal.SIGKILL)
        killed = time.monotonic()
        rest = [sse.event async for sse in events]
        error_after = time.monotonic() - killed
    errors = [e for e in rest if e.type == "error"]
    assert errors and "went away" in (errors[0].message or "")  # type: ignore[union-attr]
    assert error_after < 2.0, f"the client learned of the crash after {error_after:.2f} s"

    saved = await thread_messages(http, token, thread_id)
    assert saved[-1][0] == "assistant_message"
    assert "Counting to 5000: 1 2 3" in saved[-1][1] and not saved[-1][1].endswith("5000.")  # the partial is kept

    # The restarted runner (``up`` restarts it) takes the thread once the dead run's lease runs out.
    answered = False
    while time.monotonic() - killed < 20 and not answered:
        async with http.stream(
            "POST", "/chatkit", content=add_message_request(thread_id, "list tasks"), headers=bearer(token)
        ) as reply:
            if reply.status_code == 503:  # the runner is still restarting
                await reply.aread()
                await asyncio.sleep(0.2)
                continue
            assert reply.status_code == 200, (await reply.aread()).decode()
            after = [sse.event async for sse in read_sse(reply)]
            answered = any(e.type == "thread.item.done" and e.item.type == "assistant_message" for e in after)  # type: ignore[union-attr]
    recovered = time.monotonic() - killed
    assert answered and recovered < 20, f"the thread answered again {recovered:.1f} s after the crash"
    runs = (await http.get(f"/api/threads/{thread_id}/runs", headers=bearer(token))).json()["data"]
    statuses = [r["status"] for r in runs]
    assert statuses[0] == "completed" and "interrupted" in statuses


async def test_with_redis_stopped_mid_answer_the_run_finishes_streams_and_new_runs_still_start(
    fault_stack: Stack, fault_http: httpx.AsyncClient, fault_redis: PrivateRedis
) -> None:
    http = fault_http
    token = fault_stack.token(new_user())
    created = await stream_events(http, token, create_request("hi"))
    thread_id = created[0].thread.id  # type: ignore[union-attr]
    try:
        async with http.stream(
            "POST", "/chatkit", content=add_message_request(thread_id, "count to 1500"), headers=bearer(token)
        ) as reply:
            events = read_sse(reply)
            await read_until_text(events, " 100 ")
            fault_redis.stop()
            rest = [sse.event async for sse in events]
        done = [e for e in rest if e.type == "thread.item.done" and e.item.type == "assistant_message"]  # type: ignore[union-attr]
        assert done and done[-1].item.content[0].text.endswith("1500.")  # type: ignore[union-attr]
        assert not [e for e in rest if e.type == "error"]
        saved = await thread_messages(http, token, thread_id)
        assert saved[-1] == ("assistant_message", "Counting to 1500: " + " ".join(map(str, range(1, 1501))) + ".")
        # Claims live in Postgres: with Redis still down, the thread answers the next message.
        again = await asyncio.wait_for(stream_events(http, token, add_message_request(thread_id, "list tasks")), 30)
        assert [e for e in again if e.type == "thread.item.done" and e.item.type == "assistant_message"]  # type: ignore[union-attr]
        runs = (await http.get(f"/api/threads/{thread_id}/runs", headers=bearer(token))).json()["data"]
        assert [r["status"] for r in runs] == ["completed", "completed", "completed"]
    finally:
        if fault_redis.proc is None:
            fault_redis.start()


async def test_an_approval_card_survives_a_killed_agent_runner_and_the_click_works_after_the_restart(
    fault_stack: Stack, fault_http: httpx.AsyncClient
) -> None:
    http = fault_http
    token = fault_stack.token(new_user())
    created = await stream_events(http, token, create_request("add renew the lease"))
    thread_id = created[0].thread.id  # type: ignore[union-attr]
    task_id = re.search(r"id `(task_[0-9a-f]+)`", assistant_text(created)).group(1)  # type: ignore[union-attr]
    asked = await stream_events(http, token, add_message_request(thread_id, f"delete task {task_id}"))
    card = next(e.item for e in asked if e.type == "thread.item.done" and e.item.type == "widget")  # type: ignore[union-attr]
    os.kill(child_pid(fault_stack, "agent-runner"), signal.SIGKILL)  # the only runner: every runner
    click = {
        "type": "threads.custom_action",
        "params": {
            "thread_id": thread_id,
            "item_id": card.id,
            "action": {"type": "switchboard.approval.approve", "payload": {}},
        },
    }
    deadline = time.monotonic() + 30
    while True:  # until `up` has restarted the runner
        reply = await http.post("/chatkit", json=click, headers=bearer(token))
        if reply.status_code != 503 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert reply.status_code == 200, reply.text
    assert f"Deleted task `{task_id}`" in reply.text
    listed = await stream_events(http, token, add_message_request(thread_id, "list tasks"))
    assert "no open tasks" in assistant_text(listed)
