"""The whole stack stopped and started again: every thread and item is still there."""

from __future__ import annotations

from pathlib import Path

import httpx
from chatkit.types import ItemsListReq

from tests.e2e.conftest import (
    assistant_text,
    create_request,
    new_user,
    post_json,
    stack_ports,
    start_stack,
    stop_stack,
    stream_events,
)


async def test_after_a_restart_the_thread_and_all_its_items_are_there(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    ports = stack_ports()
    user = new_user()
    stack = start_stack(tmp_path, ports, database_url, redis_url)
    try:
        async with httpx.AsyncClient(base_url=stack.edge, timeout=30) as http:
            token = stack.token(user)
            events = await stream_events(http, token, create_request("add task water the plants"))
            thread_id = events[0].thread.id  # type: ignore[union-attr]
            assert assistant_text(events)
            request = ItemsListReq(params={"thread_id": thread_id, "order": "asc", "limit": 100})  # type: ignore[arg-type]
            before = (await post_json(http, token, request)).json()["data"]
    finally:
        out = stop_stack(stack)
    assert "stopped; data is kept" in out

    stack = start_stack(tmp_path, ports, database_url, redis_url)
    try:
        async with httpx.AsyncClient(base_url=stack.edge, timeout=30) as http:
            after = (await post_json(http, stack.token(user), request)).json()["data"]
    finally:
        stop_stack(stack)
    assert len(before) >= 3  # the message, the tool item, the answer
    assert after == before
