"""Two replicas of every service on one Postgres and one Redis, and what must hold across them.

Replica A and replica B are each a whole ``switchboard up`` (edge, thread_store,
session_api, agent_runner as processes) on the same database and the same Redis
(a single server, or a Redis Cluster): edge A talks only to A's services and
edge B only to B's, so whatever crosses from A to B crosses through Postgres and
Redis, as between pods. The scenarios are shared by the replica suite
(``test_replicas.py``) and the Redis Cluster suite (``test_redis_cluster.py``).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import free_port
from tests.e2e.conftest import (
    EdgeReplica,
    Stack,
    add_message_request,
    bearer,
    create_request,
    escalated,
    new_thread,
    new_user,
    post_json,
    stack_ports,
    start_edge,
    start_stack,
    stop_stack,
    stream_events,
    thread_messages,
    two_open_streams,
)
from tui.backend import GrpcConsoleBackend
from tui.data import SessionChange, ThreadChange

# The limiting edges refill one request per 10 s: whether a burst past the bucket is refused
# cannot depend on how fast this machine sends it.
LIMIT_RATE_PER_SECOND = 0.1
LIMIT_BURST = 10


@dataclass
class Replica:
    """One replica of every service, its stack's output, and its thread store's metrics port."""

    stack: Stack
    metrics_port: int

    @property
    def edge(self) -> str:
        """The edge's URL."""
        return self.stack.edge

    def target(self, service: str) -> str:
        """``host:port`` of one of its gRPC services."""
        return f"127.0.0.1:{self.stack.ports[service]}"


@dataclass
class Pair:
    """Replicas A and B."""

    a: Replica
    b: Replica
    outputs: list[str] = field(default_factory=list)


@contextmanager
def two_replicas(tmp: Path, database_url: str, redis_url: str) -> Iterator[Pair]:
    """Start replicas A and B side by side (in parallel: each is a few processes), stop both after."""

    def start(name: str) -> Replica:
        metrics_port = free_port()
        stack = start_stack(
            tmp / name,
            stack_ports(),
            database_url,
            redis_url,
            SWITCHBOARD_THREAD_STORE_METRICS_PORT=str(metrics_port),
        )
        return Replica(stack, metrics_port)

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(start, name) for name in ("a", "b")]
        started = [f.result() for f in futures]  # a failure raises here, after both tried
    pair = Pair(started[0], started[1])
    try:
        yield pair
    finally:
        for replica in (pair.a, pair.b):
            pair.outputs.append("".join(replica.stack.output) + stop_stack(replica.stack))


@contextmanager
def limiting_edges(pair: Pair, **env: str) -> Iterator[tuple[EdgeReplica, EdgeReplica]]:
    """One more edge on A's services and one on B's, both with a small bucket (``LIMIT_*``)."""
    settings = {
        "SWITCHBOARD_EDGE_RATE_PER_SECOND": str(LIMIT_RATE_PER_SECOND),
        "SWITCHBOARD_EDGE_RATE_BURST": str(LIMIT_BURST),
        **env,
    }
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(start_edge, replica.stack, free_port(), **settings) for replica in (pair.a, pair.b)]
    edges = [f.result() for f in futures if f.exception() is None]
    try:
        assert len(edges) == 2, [f.exception() for f in futures]
        yield edges[0], edges[1]
    finally:
        for edge in edges:
            edge.process.terminate()
        for edge in edges:
            edge.process.wait(timeout=30)


# -- helpers -------------------------------------------------------------------------------


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``predicate`` holds (polled every 20 ms); fails after ``timeout``."""
    began = time.monotonic()
    while not predicate():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - began


def cache_hits(replica: Replica) -> float:
    """The thread store's cache hits of item pages (its Prometheus counter)."""
    text = httpx.get(f"http://127.0.0.1:{replica.metrics_port}/metrics", timeout=5).text
    match = re.search(r'^switchboard_thread_cache_lookups_total\{kind="items",result="hit"\} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def rate_limit_shared(edge: EdgeReplica) -> float:
    """The edge's ``switchboard_edge_rate_limit_shared`` gauge (1: through Redis)."""
    text = httpx.get(f"{edge.url}/metrics", timeout=5).text
    match = re.search(r"^switchboard_edge_rate_limit_shared (\S+)$", text, re.M)
    assert match is not None, "the edge has no switchboard_edge_rate_limit_shared gauge"
    return float(match.group(1))


# -- scenarios -------------------------------------------------------------------------------


async def conversation_on_a_is_joined_and_cancelled_on_b(pair: Pair) -> None:
    """An answer streaming from edge A (runner A) is joined through edge B (runner B follows A's
    run log in Redis) and cancelled through edge B: both streams end, the partial is kept."""
    token = pair.a.stack.token(new_user())
    async with (
        httpx.AsyncClient(base_url=pair.a.edge, timeout=30) as http_a,
        httpx.AsyncClient(base_url=pair.b.edge, timeout=30) as http_b,
    ):
        thread_id = await new_thread(http_a, token)
        tasks = await two_open_streams(http_a, http_b, token, thread_id)
        assert not tasks[0].done() and not tasks[1].done()
        began = time.monotonic()
        reply = await http_b.post(f"/chatkit/threads/{thread_id}/cancel", headers=bearer(token))
        assert reply.status_code == 200 and len(reply.json()["cancelled"]) == 1, reply.text
        own_events, joined_events = await asyncio.wait_for(asyncio.gather(*tasks), 10)
        elapsed = time.monotonic() - began
        assert elapsed < 2.0, f"the streams ended {elapsed:.2f} s after the cancel through the other edge"

        texts = await thread_messages(http_b, token, thread_id)
        partial = texts[-1][1]
        assert texts[-1][0] == "assistant_message" and "Counting to 3000: 1 2 3" in partial
        assert not partial.endswith("3000.")
        for events in (own_events, joined_events):
            done = [
                s.event
                for s in events
                if s.event.type == "thread.item.done" and s.event.item.type == "assistant_message"  # type: ignore[union-attr]
            ]
            assert done[-1].item.content[0].text == partial  # type: ignore[union-attr]
        ids = [int(s.id.rpartition(":")[2]) for s in joined_events if s.id]
        assert ids and ids == sorted(set(ids))  # the joiner on B saw each event of A's run once, in order
        runs = (await http_b.get(f"/api/threads/{thread_id}/runs", headers=bearer(token))).json()["data"]
        assert runs[0]["status"] == "cancelled"


async def write_on_a_is_read_on_b_without_a_stale_read(pair: Pair) -> None:
    """Every write through thread_store A (a rename, a turn's items) is what the very next read
    through thread_store B returns, with the hot cache on and serving B's reads."""
    token = pair.a.stack.token(new_user())
    async with (
        httpx.AsyncClient(base_url=pair.a.edge, timeout=30) as http_a,
        httpx.AsyncClient(base_url=pair.b.edge, timeout=30) as http_b,
    ):
        thread_id = await new_thread(http_a, token)
        await thread_messages(http_b, token, thread_id)  # B's read fills the shared cache
        hits_before = cache_hits(pair.b)
        for n in range(12):
            title = f"title {n}"
            update = {"type": "threads.update", "params": {"thread_id": thread_id, "title": title}}
            assert (await post_json(http_a, token, json.dumps(update).encode())).status_code == 200
            read = {"type": "threads.get_by_id", "params": {"thread_id": thread_id}}
            got = await post_json(http_b, token, json.dumps(read).encode())
            assert got.status_code == 200 and got.json()["title"] == title, (n, got.text)
        for n in range(3):
            text = f"note {n} {uuid.uuid4().hex[:6]}"
            await stream_events(http_a, token, add_message_request(thread_id, text))
            texts = await thread_messages(http_b, token, thread_id)
            assert ("user_message", text) in texts, (n, texts)
            assert texts[-1][0] == "assistant_message"  # the answer A saved is read on B at once
        assert cache_hits(pair.b) > hits_before  # B served those reads from the shared cache


async def console_on_b_sees_what_happens_on_a(pair: Pair) -> None:
    """An operator console connected to B's session_api and thread_store gets a session, an
    escalation and thread changes made through edge A live, and takes the conversation over
    through B; the user reads the operator's reply through A."""
    org = f"org-{uuid.uuid4().hex[:8]}"
    user = new_user()
    console = GrpcConsoleBackend(
        token=pair.b.stack.token(f"op-{uuid.uuid4().hex[:6]}", org_id=org, operator=True),
        session_api=pair.b.target("session_api"),
        thread_store=pair.b.target("thread_store"),
        agent_runner=pair.b.target("agent_runner"),
        timeout=5.0,
    )
    sessions: list[SessionChange] = []
    threads: list[ThreadChange] = []

    async def follow(changes: AsyncIterator[SessionChange] | AsyncIterator[ThreadChange], into: list) -> None:  # type: ignore[type-arg]
        async for change in changes:
            into.append(change)

    await console.sign_in()
    watchers = [
        asyncio.create_task(follow(console.watch_sessions(), sessions)),
        asyncio.create_task(follow(console.watch_threads(""), threads)),
    ]
    try:
        await wait_until(lambda: bool(sessions) and bool(threads), 10, "both watches on B start")
        assert sessions[0].type == "watch.started" and threads[0].type == "watch.started"
        async with httpx.AsyncClient(base_url=pair.a.edge, timeout=30) as http_a:
            reply = await http_a.post(
                "/chatkit/sessions", json={"agent_id": "triage"}, headers=bearer(pair.a.stack.token(user, org_id=org))
            )
            assert reply.status_code == 200, reply.text
            session_id = reply.json()["session"]["id"]
            secret = reply.json()["client_secret"]["token"]
            await wait_until(
                lambda: any(c.session is not None and c.session.id == session_id for c in sessions),
                5,
                "the session created through A reaches B's watch",
            )
            events = await stream_events(
                http_a, secret, create_request("I want to talk to a human please"), until=escalated
            )
            thread_id = events[0].thread.id  # type: ignore[union-attr]

            def escalation() -> str | None:
                for change in sessions:
                    if change.escalation is not None and change.escalation.thread_id == thread_id:
                        return change.escalation.id
                return None

            await wait_until(lambda: escalation() is not None, 5, "the escalation through A reaches B's watch")
            await wait_until(
                lambda: any(c.thread_id == thread_id and c.type.startswith("item.") for c in threads),
                5,
                "the thread's items written through A reach B's change feed",
            )
            escalation_id = escalation()
            assert escalation_id is not None
            held = await console.claim(escalation_id)
            assert held.kind == "human"
            await console.reply(thread_id, "Hello from replica B")
            texts = await thread_messages(http_a, secret, thread_id)
            assert texts[-1] == ("assistant_message", "Hello from replica B")
    finally:
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        await console.close()


async def burst(edges: tuple[EdgeReplica, EdgeReplica], token: str, per_edge: int) -> tuple[list[int], float]:
    """``per_edge`` requests of one user at each edge at once: the statuses, and the seconds taken."""
    async with (
        httpx.AsyncClient(base_url=edges[0].url, timeout=30) as one,
        httpx.AsyncClient(base_url=edges[1].url, timeout=30) as two,
    ):
        began = time.monotonic()
        replies = await asyncio.gather(
            *(client.get("/api/conversations", headers=bearer(token)) for client in (one, two) for _ in range(per_edge))
        )
        elapsed = time.monotonic() - began
    for reply in replies:
        if reply.status_code == 429:
            assert int(reply.headers["Retry-After"]) >= 1
            assert reply.json()["error"]["code"] == "rate_limited"
    return [r.status_code for r in replies], elapsed


async def rate_limit_holds_across_edges(pair: Pair, edges: tuple[EdgeReplica, EdgeReplica]) -> None:
    """One user's burst split over two edges (A's and B's) gets one bucket, not one per edge."""
    codes, elapsed = await burst(edges, pair.a.stack.token(new_user()), LIMIT_BURST)
    refilled = int(elapsed * LIMIT_RATE_PER_SECOND) + 1
    assert set(codes) <= {200, 429}, codes
    assert LIMIT_BURST <= codes.count(200) <= LIMIT_BURST + refilled, (codes, elapsed)  # per edge: 2 x the burst
    assert rate_limit_shared(edges[0]) == 1.0 and rate_limit_shared(edges[1]) == 1.0  # through Redis, no fallback


Scenario = Callable[[Pair], Awaitable[None]]
