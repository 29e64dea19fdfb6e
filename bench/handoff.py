"""The human hand-off: how long an operator's reply takes to reach the user's open ChatKit stream.

Each of ``THREADS`` users asks for a person (``threads.create``, "I want to talk to
a human please", offline model): the agent escalates and the user's stream stays
open. An operator claims each escalation over HTTP, then operators reply with
``POST /api/operator/threads/{id}/messages``, one reply in flight at a time, in
turn over the threads, each waiting for the one before to reach its stream.

For each reply, from just before the POST is sent (this process's clock):

- the POST's own time to its 201 (the write acknowledged: edge, agent runner,
  thread store, Postgres and the change feed's append): the floor of the path;
- the reply's ``thread.item.done`` received on the user's open stream at the
  edge (the thread store's change feed, the agent runner's relay and run log,
  the edge's SSE);
- the same change received by a second watcher of the thread's change feed in
  this process (what the runner's relay waits for), splitting the delivery into
  the feed and the relay after it.

Every service is its own process (``bench.common``'s stack start-up, as
``bench.edge`` starts it); this process is the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx
from chatkit.types import ThreadsCreateReq

from bench.common import (
    STACK_ORG,
    bearer,
    bench_storage,
    edge_service,
    free_port,
    grpc_service,
    median,
    ms,
    pct,
    print_table,
    stack_env,
    stack_token,
    start_servers,
    wait_servers,
)
from services.thread_store.client import GrpcThreadStore
from switchboard.principal import Principal

THREADS = 8  # users, each with one thread and one open stream
REPLIES = 25  # timed replies per thread
WARMUP_REPLIES = 2  # per thread, before the timed ones
ARRIVAL_TIMEOUT = 10.0
ESCALATE_TEXT = "I want to talk to a human please"
WAITING_NOTICE = "A person from our team will reply here"
TALKING_NOTICE = "You are now talking with"
MARKER = re.compile(r"\[bench reply [0-9a-f]+\]")


def _progress(message: str) -> None:
    print(f"  .. {message}", flush=True)


class _Arrivals:
    """When texts first showed up in something followed (a stream, a change feed), by this process's clock."""

    def __init__(self) -> None:
        self._seen: list[tuple[str, float]] = []
        self._waiting: dict[str, asyncio.Future[float]] = {}
        self.ended = ""

    def expect(self, key: str) -> asyncio.Future[float]:
        """When the first text containing ``key`` arrived (already, or once it does)."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        arrived = next((at for text, at in self._seen if key in text), None)
        if arrived is not None:
            future.set_result(arrived)
        elif self.ended:
            future.set_exception(RuntimeError(self.ended))
        else:
            self._waiting[key] = future
        return future

    def note(self, text: str, at: float) -> None:
        """A text arrived at ``at``."""
        self._seen.append((text, at))
        for key in [k for k in self._waiting if k in text]:
            future = self._waiting.pop(key)
            if not future.done():
                future.set_result(at)

    def end(self, why: str) -> None:
        """Nothing more arrives: every wait fails with ``why``."""
        self.ended = why
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(RuntimeError(why))
        self._waiting.clear()


@dataclass
class _Conversation:
    """One user's thread: the open stream of their escalating message, and a second watcher of its feed."""

    user: Principal
    token: str
    operator_id: str
    operator_token: str
    thread_id: str = ""
    thread_known: asyncio.Event = field(default_factory=asyncio.Event)
    stream: _Arrivals = field(default_factory=_Arrivals)
    feed: _Arrivals = field(default_factory=_Arrivals)
    feed_live: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class _Reply:
    """One operator reply's times, in seconds from just before its POST was sent."""

    returned: float
    fed: float
    delivered: float


def _escalating_message() -> bytes:
    params = {
        "input": {
            "content": [{"type": "input_text", "text": ESCALATE_TEXT}],
            "attachments": [],
            "inference_options": {},
        }
    }
    return ThreadsCreateReq.model_validate({"params": params}).model_dump_json().encode()


def _shown_text(item: dict[str, Any]) -> str:
    """What the user sees of an item: a notice's title, a message's text."""
    if item.get("type") == "task":
        return str(item.get("task", {}).get("title") or "")
    return "".join(str(part.get("text", "")) for part in item.get("content", []) if isinstance(part, dict))


async def _read_stream(http: httpx.AsyncClient, conversation: _Conversation) -> None:
    """POST the escalating message and note each item the user's stream shows, until it ends."""
    why = "the user's stream ended"
    try:
        headers = bearer(conversation.token)
        async with http.stream("POST", "/chatkit", content=_escalating_message(), headers=headers) as reply:
            if reply.status_code != 200:
                why = f"the user's stream answered HTTP {reply.status_code}: {(await reply.aread())[:200]!r}"
                return
            async for line in reply.aiter_lines():
                if not line.startswith("data: "):
                    continue
                now = time.perf_counter()
                event = json.loads(line[6:])
                if event["type"] == "thread.created":
                    conversation.thread_id = event["thread"]["id"]
                    conversation.thread_known.set()
                elif event["type"] == "thread.item.done":
                    conversation.stream.note(_shown_text(event["item"]), now)
                elif event["type"] == "error":
                    why = f"the user's stream had an error: {line[6:200]}"
    except Exception as error:  # whatever it was, the waits for the stream fail with it
        why = f"the user's stream failed: {type(error).__name__}: {error}"
    finally:
        conversation.stream.end(why)
        conversation.thread_known.set()


async def _follow_feed(store: GrpcThreadStore, conversation: _Conversation) -> None:
    """Follow the thread's change feed as its owner (as the agent runner's relay does), noting each item's JSON."""
    try:
        async for change in store.watch(conversation.user, thread_id=conversation.thread_id):
            now = time.perf_counter()
            if change.type == "watch.started":
                conversation.feed_live.set()
            elif change.type in ("item.added", "item.updated"):
                conversation.feed.note(change.json.decode(errors="replace"), now)
    finally:
        conversation.feed.end("the change feed watch ended")
        conversation.feed_live.set()


async def _until(future: asyncio.Future[float], what: str) -> float:
    try:
        return await asyncio.wait_for(future, ARRIVAL_TIMEOUT)
    except TimeoutError:
        raise RuntimeError(f"{what} did not arrive within {ARRIVAL_TIMEOUT:.0f} s") from None


async def _escalate_and_claim(http: httpx.AsyncClient, conversations: list[_Conversation]) -> None:
    """Each user's stream shows the waiting notice; an operator claims each escalation; the streams say so."""
    for c in conversations:
        await asyncio.wait_for(c.thread_known.wait(), ARRIVAL_TIMEOUT)
        if not c.thread_id:
            raise RuntimeError(f"the escalating stream never said which thread it created ({c.stream.ended})")
        await _until(c.stream.expect(WAITING_NOTICE), "the waiting notice")
    listed = await http.get(
        "/api/operator/escalations",
        params={"status": "open", "limit": 200},
        headers=bearer(conversations[0].operator_token),
    )
    if listed.status_code != 200:
        raise RuntimeError(f"listing escalations answered HTTP {listed.status_code}: {listed.text[:300]}")
    by_thread = {e["thread_id"]: e["id"] for e in listed.json()["data"]}
    for c in conversations:
        if c.thread_id not in by_thread:
            raise RuntimeError(f"thread {c.thread_id} has no open escalation")
        claimed = await http.post(
            f"/api/operator/escalations/{by_thread[c.thread_id]}/claim", headers=bearer(c.operator_token)
        )
        if claimed.status_code != 200 or claimed.json().get("handled_by") != "human":
            raise RuntimeError(f"claiming answered HTTP {claimed.status_code}: {claimed.text[:300]}")
        await _until(c.stream.expect(f"{TALKING_NOTICE} {c.operator_id}"), "the 'now talking with' notice")


async def _reply(http: httpx.AsyncClient, conversation: _Conversation, n: int) -> _Reply:
    """Post one operator reply; its times once the user's stream and the second watcher have it."""
    marker = f"[bench reply {uuid.uuid4().hex[:12]}]"
    delivered = conversation.stream.expect(marker)
    fed = conversation.feed.expect(marker)
    text = f"Reply {n} from the person handling this conversation. {marker}"
    headers = bearer(conversation.operator_token)
    path = f"/api/operator/threads/{conversation.thread_id}/messages"
    sent = time.perf_counter()
    answer = await http.post(path, json={"text": text}, headers=headers)
    returned = time.perf_counter()
    if answer.status_code != 201:
        raise RuntimeError(f"the operator's reply answered HTTP {answer.status_code}: {answer.text[:300]}")
    delivered_at = await _until(delivered, "a reply on the user's stream")
    fed_at = await _until(fed, "a reply on the change feed")
    return _Reply(returned=returned - sent, fed=fed_at - sent, delivered=delivered_at - sent)


async def _replies(http: httpx.AsyncClient, conversations: list[_Conversation]) -> list[_Reply]:
    """Warm-up replies, then ``REPLIES`` timed ones per thread, in turn over the threads, one at a time."""
    for n in range(WARMUP_REPLIES):
        for c in conversations:
            await _reply(http, c, n)
    total = REPLIES * len(conversations)
    _progress(f"timing {total} operator replies ({REPLIES} per thread, one at a time, in turn over the threads)")
    out: list[_Reply] = []
    for n in range(REPLIES):
        for c in conversations:
            out.append(await _reply(http, c, WARMUP_REPLIES + n))
        if len(out) % 50 == 0 or len(out) == total:
            _progress(f"{len(out)}/{total} replies delivered")
    return out


@contextlib.asynccontextmanager
async def _open_conversations(
    http: httpx.AsyncClient, store: GrpcThreadStore, conversations: list[_Conversation]
) -> AsyncIterator[None]:
    """Each user's escalating stream, read in the background, and a watcher of its thread's feed."""
    tasks = [asyncio.create_task(_read_stream(http, c)) for c in conversations]
    try:
        for c in conversations:
            await asyncio.wait_for(c.thread_known.wait(), ARRIVAL_TIMEOUT)
            if c.thread_id:
                tasks.append(asyncio.create_task(_follow_feed(store, c)))
                await asyncio.wait_for(c.feed_live.wait(), ARRIVAL_TIMEOUT)
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _row(label: str, values: list[float]) -> tuple[str, ...]:
    return (label, str(len(values)), ms(median(values)), ms(pct(values, 0.9)), ms(pct(values, 0.99)), ms(max(values)))


def _print(replies: list[_Reply], threads: int) -> None:
    returned = [r.returned for r in replies]
    delivered = [r.delivered for r in replies]
    fed = [r.fed for r in replies]
    relayed = [r.delivered - r.fed for r in replies]
    after_ack = [r.delivered - r.returned for r in replies]
    print_table(
        f"Operator reply -> the user's open ChatKit stream ({len(replies)} replies over {threads} threads and"
        f" streams, one at a time; every service its own process; times from just before the POST is sent)",
        [
            _row("POST /api/operator/threads/{id}/messages -> 201 (the write's floor)", returned),
            _row("POST sent -> the reply's thread.item.done on the user's open stream", delivered),
            _row("  POST sent -> the change at a second feed watcher (this process)", fed),
            _row("  change at that watcher -> the user's stream (relay: runner, run log, edge)", relayed),
            _row("POST returned (201) -> the reply on the user's stream", after_ack),
        ],
        ("path", "n", "p50", "p90", "p99", "max"),
    )
    early = sum(1 for value in after_ack if value < 0)
    print(
        f"\n  delivery / POST: p50 {median(delivered) / median(returned):4.2f}x"
        f" ({median(delivered) * 1000:.2f} / {median(returned) * 1000:.2f} ms),"
        f" p99 {pct(delivered, 0.99) / pct(returned, 0.99):4.2f}x"
    )
    print(
        f"  the user sees a reply {median(after_ack) * 1000:.2f} ms (p50) after the operator's 201;"
        f" {early}/{len(replies)} arrived before the 201"
    )
    print(f"  ({date.today().isoformat()}, {os.cpu_count()}-core machine)")


async def main() -> None:
    """Run the benchmark and print its table."""
    started = time.perf_counter()
    ports = {name: free_port() for name in ("thread_store", "session_api", "runner", "edge")}
    servers = [
        grpc_service("thread_store", "thread-store", ports["thread_store"]),
        grpc_service("session_api", "session-api", ports["session_api"]),
        grpc_service("agent_runner", "agent-runner", ports["runner"], SWITCHBOARD_OFFLINE_DELAY="0"),
        edge_service("edge", ports["edge"], ports["runner"]),
    ]
    conversations = []
    for k in range(THREADS):
        user = Principal(user_id=f"bench-handoff-{k}-{uuid.uuid4().hex[:8]}", org_id=STACK_ORG)
        operator_id = f"op-bench-{k}-{uuid.uuid4().hex[:6]}"
        conversations.append(
            _Conversation(user, stack_token(user.user_id), operator_id, stack_token(operator_id, operator=True))
        )
    with bench_storage() as (database_url, redis_url), contextlib.ExitStack() as stack:
        _progress("starting thread_store, session_api, an agent runner (offline model, no delay) and an edge")
        env = stack_env(database_url, redis_url, thread_store=ports["thread_store"], session_api=ports["session_api"])
        processes = start_servers(stack, servers, env)
        await wait_servers(servers, processes)
        _progress(f"{THREADS} users ask for a person; an operator claims each escalation")
        limits = httpx.Limits(max_connections=2 * THREADS + 10, max_keepalive_connections=2 * THREADS + 10)
        store = GrpcThreadStore(f"127.0.0.1:{ports['thread_store']}")
        try:
            async with (
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['edge']}", timeout=30, limits=limits) as http,
                _open_conversations(http, store, conversations),
            ):
                await _escalate_and_claim(http, conversations)
                replies = await _replies(http, conversations)
        finally:
            await store.close()
    _print(replies, THREADS)
    print(f"\n  (the whole run took {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    asyncio.run(main())
