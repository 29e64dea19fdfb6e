"""The edge's overhead: ChatKit requests through the HTTP edge versus ``ChatKitServer`` in one process.

- ``items.list`` of a 50-item thread and ``threads.list`` of 20 threads through
  the edge (HTTP, a bearer JWT checked by session_api and then cached, gRPC to
  the thread store, Redis hot) versus the SDK's ``ChatKitServer`` over an
  in-memory store, each behind FastAPI on uvicorn in a process of its own, both
  over HTTP with the same httpx client;
- the floor: ``GET /healthz`` on the edge plus an empty gRPC call (the thread
  store's health check), back to back in each iteration;
- time to the first streamed event of ``threads.add_user_message`` through the
  edge (offline model, no delay between deltas);
- 200 streams held open at once (offline model with 0.05 s between deltas, on a
  second runner and edge), each on a thread of its own;
- conversations at once (1, 200 and 1,000 new users, each doing
  ``threads.create``, offline model at the runner's default delay, on a third
  runner and edge): time to the first and to the last event, p50 and p99, and
  every error (a non-200, an ``error`` event, a stream without the assistant's
  ``thread.item.done``);
- joining a running answer from a second edge replica: how long after the
  original stream's client each event reaches the joiner (same process, same
  clock), and how long the join takes to its first replayed event;
- gRPC calls per request type, counted at runtime on an in-process copy of the
  stack (edge, agent runner, thread store and session_api in this process):
  a client interceptor on every channel opened in the process, the edge's
  apart, cross-checked against what the servers served
  (``switchboard_grpc_requests_total``).

Every service is its own process, as in production; this process is the client.
``python -m bench.edge --in-memory-chatkit PORT ...`` is the in-memory server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import itertools
import json
import logging
import math
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import grpc
import httpx
from chatkit.server import ChatKitServer, StreamingResult
from chatkit.store import NotFoundError, Store
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    Attachment,
    InferenceOptions,
    ItemsListReq,
    Page,
    ThreadItem,
    ThreadMetadata,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsGetByIdReq,
    ThreadsListReq,
    ThreadStreamEvent,
    UserMessageItem,
    UserMessageTextContent,
)
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from bench.common import (
    STACK_JWT_SECRET,
    STACK_ORG,
    Server,
    bearer,
    bench_storage,
    edge_service,
    free_port,
    grpc_channel,
    grpc_service,
    median,
    ms,
    pct,
    print_table,
    service_metadata,
    stack_env,
    stack_token,
    start_servers,
    wait_servers,
)
from services.agent_runner.models import ModelConfig
from services.thread_store.client import GrpcThreadStore
from switchboard.api.v1 import common_pb2
from switchboard.api.v1 import thread_store_pb2 as pb
from switchboard.api.v1.thread_store_pb2_grpc import ThreadStoreStub
from switchboard.grpc_client import AuthenticatedStub, LoopLocalChannels
from switchboard.grpc_runtime import CHANNEL_OPTIONS, GRPC_REQUESTS
from switchboard.principal import Principal

SAMPLES = 400  # sequential requests per path, in ROUNDS alternating rounds
ROUNDS = 4
WARMUP = 30
ITEMS = 50
THREADS = 20
FIRST_EVENT_SAMPLES = 30
STREAMS = 200
STREAM_USERS = 20
LOAD_DELAY = "0.05"
CONVERSATIONS = (1, 200, 1000)  # new users at once, each doing threads.create
SINGLE_ROUNDS = 20  # one conversation at a time, this many times
JOIN_COUNT = 2000  # "count to N": the answer a second replica joins
JOIN_AFTER_SECONDS = 1.0  # how far into the answer the joiner arrives
HOP_SAMPLES = 5  # second messages counted
HOP_GOAL = 4
TEXT_DELTA = '"type":"assistant_message.content_part.text_delta"'
ITEM_DONE = 'data: {"type":"thread.item.done"'
ASSISTANT = '"type":"assistant_message"'
THREAD_CREATED = 'data: {"type":"thread.created"'
ERROR_EVENT = 'data: {"type":"error"'
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


def _progress(message: str) -> None:
    print(f"  .. {message}", flush=True)


# -- what both servers hold -------------------------------------------------------


def _thread(thread_id: str, n: int) -> ThreadMetadata:
    return ThreadMetadata(id=thread_id, title=f"bench thread {n}", created_at=BASE_TIME + timedelta(minutes=n))


def _items(thread_id: str) -> list[ThreadItem]:
    """50 alternating user and assistant messages of about 500 bytes of JSON each."""
    items: list[ThreadItem] = []
    for i in range(ITEMS):
        at = BASE_TIME + timedelta(seconds=i)
        text = f"message {i:02d}: " + "the quick brown fox jumps over the lazy dog " * 8
        item_id = f"msg_{uuid.uuid4().hex[:12]}"
        if i % 2 == 0:
            items.append(
                UserMessageItem(
                    id=item_id,
                    thread_id=thread_id,
                    created_at=at,
                    content=[UserMessageTextContent(text=text)],
                    inference_options=InferenceOptions(),
                )
            )
        else:
            items.append(
                AssistantMessageItem(
                    id=item_id, thread_id=thread_id, created_at=at, content=[AssistantMessageContent(text=text)]
                )
            )
    return items


def _items_list(thread_id: str) -> bytes:
    return ItemsListReq.model_validate({"params": {"thread_id": thread_id, "limit": ITEMS}}).model_dump_json().encode()


def _threads_list() -> bytes:
    return ThreadsListReq.model_validate({"params": {"limit": THREADS}}).model_dump_json().encode()


def _threads_get(thread_id: str) -> bytes:
    return ThreadsGetByIdReq.model_validate({"params": {"thread_id": thread_id}}).model_dump_json().encode()


def _message_input(text: str) -> dict[str, Any]:
    return {"content": [{"type": "input_text", "text": text}], "attachments": [], "inference_options": {}}


def _add_message(thread_id: str, text: str = "hello") -> bytes:
    params = {"thread_id": thread_id, "input": _message_input(text)}
    return ThreadsAddUserMessageReq.model_validate({"params": params}).model_dump_json().encode()


def _create_thread(text: str = "hello") -> bytes:
    return ThreadsCreateReq.model_validate({"params": {"input": _message_input(text)}}).model_dump_json().encode()


# -- the in-memory ChatKit server (its own process) ----------------------------------


class InMemoryStore(Store[Any]):
    """A ChatKit ``Store`` in dicts: what the SDK costs with storage taken away."""

    def __init__(self) -> None:
        self.threads: dict[str, ThreadMetadata] = {}
        self.items: dict[str, list[ThreadItem]] = {}
        self.attachments: dict[str, Attachment] = {}

    async def load_thread(self, thread_id: str, context: Any) -> ThreadMetadata:
        if thread_id not in self.threads:
            raise NotFoundError(f"thread {thread_id} not found")
        return self.threads[thread_id].model_copy(deep=True)

    async def save_thread(self, thread: ThreadMetadata, context: Any) -> None:
        self.threads[thread.id] = thread.model_copy(deep=True)
        self.items.setdefault(thread.id, [])

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: Any
    ) -> Page[ThreadItem]:
        ordered = sorted(self.items.get(thread_id, []), key=lambda i: i.created_at, reverse=order == "desc")
        start = next((n + 1 for n, i in enumerate(ordered) if i.id == after), 0) if after else 0
        page = ordered[start : start + limit]
        has_more = start + limit < len(ordered)
        return Page(data=page, has_more=has_more, after=page[-1].id if has_more and page else None)

    async def save_attachment(self, attachment: Attachment, context: Any) -> None:
        self.attachments[attachment.id] = attachment

    async def load_attachment(self, attachment_id: str, context: Any) -> Attachment:
        if attachment_id not in self.attachments:
            raise NotFoundError(f"attachment {attachment_id} not found")
        return self.attachments[attachment_id]

    async def delete_attachment(self, attachment_id: str, context: Any) -> None:
        self.attachments.pop(attachment_id, None)

    async def load_threads(self, limit: int, after: str | None, order: str, context: Any) -> Page[ThreadMetadata]:
        ordered = sorted(self.threads.values(), key=lambda t: t.created_at, reverse=order == "desc")
        start = next((n + 1 for n, t in enumerate(ordered) if t.id == after), 0) if after else 0
        page = [t.model_copy(deep=True) for t in ordered[start : start + limit]]
        has_more = start + limit < len(ordered)
        return Page(data=page, has_more=has_more, after=page[-1].id if has_more and page else None)

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
        self.items.setdefault(thread_id, []).append(item.model_copy(deep=True))

    async def save_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
        items = self.items.setdefault(thread_id, [])
        for n, existing in enumerate(items):
            if existing.id == item.id:
                items[n] = item.model_copy(deep=True)
                return
        items.append(item.model_copy(deep=True))

    async def load_item(self, thread_id: str, item_id: str, context: Any) -> ThreadItem:
        for item in self.items.get(thread_id, []):
            if item.id == item_id:
                return item.model_copy(deep=True)
        raise NotFoundError(f"item {item_id} not found")

    async def delete_thread(self, thread_id: str, context: Any) -> None:
        self.threads.pop(thread_id, None)
        self.items.pop(thread_id, None)

    async def delete_thread_item(self, thread_id: str, item_id: str, context: Any) -> None:
        self.items[thread_id] = [i for i in self.items.get(thread_id, []) if i.id != item_id]


class SilentChatKitServer(ChatKitServer[Any]):
    """A ``ChatKitServer`` whose ``respond`` yields nothing."""

    async def respond(
        self, thread: ThreadMetadata, input_user_message: UserMessageItem | None, context: Any
    ) -> AsyncIterator[ThreadStreamEvent]:
        return
        yield


def serve_in_memory(port: int, thread_ids: Sequence[str]) -> None:
    """Serve ``POST /chatkit`` from ``SilentChatKitServer`` on uvicorn, as the edge is served."""
    import uvicorn

    store = InMemoryStore()
    for n, thread_id in enumerate(thread_ids):
        store.threads[thread_id] = _thread(thread_id, n)
        store.items[thread_id] = _items(thread_id) if n == 0 else []
    server = SilentChatKitServer(store)
    context = {"user_id": "bench"}
    app = FastAPI()

    @app.post("/chatkit")
    async def chatkit(request: Request) -> Response:
        result = await server.process(await request.body(), context)
        if isinstance(result, StreamingResult):
            return StreamingResponse(result, media_type="text/event-stream")
        return Response(result.json, media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, timeout_keep_alive=30)


# -- HTTP helpers -------------------------------------------------------------------


def _http(base_url: str, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """Every client of the bench has these settings (room for all the streams at once)."""
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=120,
        limits=httpx.Limits(max_connections=STREAMS + 50, max_keepalive_connections=STREAMS + 50),
        transport=transport,
    )


class _PooledTransport(httpx.AsyncBaseTransport):
    """Room for ``connections`` at once, in connection pools of about ``per_pool``, used in turn.

    httpcore's pool walks all of its connections whenever a request starts or
    ends, so one pool of 1,000 connections made this client the busiest process
    of the bench (49 of 68 CPU-seconds for 1,000 conversations, under cProfile)
    and its own queueing the largest part of the latencies measured. Pools of
    ~100 keep the client out of the figures; the client is still one
    ``httpx.AsyncClient``.
    """

    def __init__(self, connections: int, per_pool: int = 100) -> None:
        count = max(1, math.ceil(connections / per_pool))
        size = math.ceil(connections / count)
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        self._pools = [httpx.AsyncHTTPTransport(limits=limits) for _ in range(count)]
        self._turn = itertools.count()
        self.connections = count * size

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._pools[next(self._turn) % len(self._pools)].handle_async_request(request)

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


async def _post_ok(http: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> bytes:
    reply = await http.post("/chatkit", content=body, headers=headers)
    if reply.status_code != 200:
        raise RuntimeError(f"HTTP {reply.status_code}: {reply.text[:300]}")
    return reply.content


@dataclass
class _Stream:
    """One streamed request, timed from just before it was sent."""

    ok: bool = False
    first_data: float = math.nan
    first_delta: float = math.nan
    last_data: float = math.nan
    total: float = math.nan
    started_at: float = 0.0
    deltas: int = 0
    error: str = ""
    thread_id: str = ""


async def _stream(http: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> _Stream:
    out = _Stream(started_at=time.perf_counter())
    done = False
    try:
        async with http.stream("POST", "/chatkit", content=body, headers=headers) as reply:
            if reply.status_code != 200:
                out.error = f"HTTP {reply.status_code}: {(await reply.aread())[:200]!r}"
                return out
            async for line in reply.aiter_lines():
                if not line.startswith("data: "):
                    continue
                now = time.perf_counter() - out.started_at
                out.last_data = now
                if math.isnan(out.first_data):
                    out.first_data = now
                if TEXT_DELTA in line:
                    out.deltas += 1
                    if math.isnan(out.first_delta):
                        out.first_delta = now
                if line.startswith(ERROR_EVENT):
                    out.error = line[6:200]
                if line.startswith(THREAD_CREATED):
                    out.thread_id = str(json.loads(line[6:])["thread"]["id"])
                if line.startswith(ITEM_DONE) and ASSISTANT in line:
                    done = True
    except httpx.HTTPError as error:
        out.error = f"{type(error).__name__}: {error}"
    out.total = time.perf_counter() - out.started_at
    out.ok = done and not out.error
    return out


async def _session_api_calls(metrics_url: str, method: str) -> float:
    """``switchboard_grpc_requests_total`` of one session_api method, from its Prometheus endpoint."""
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(metrics_url)).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "switchboard_grpc_requests_total" and sample.labels.get("method", "").endswith(method)
    )


# -- the stack -------------------------------------------------------------------


@dataclass
class _Ports:
    thread_store: int = field(default_factory=free_port)
    session_api: int = field(default_factory=free_port)
    session_api_metrics: int = field(default_factory=free_port)
    runner: int = field(default_factory=free_port)
    load_runner: int = field(default_factory=free_port)
    edge: int = field(default_factory=free_port)
    load_edge: int = field(default_factory=free_port)
    in_memory: int = field(default_factory=free_port)
    turns_runner: int = field(default_factory=free_port)
    turns_edge: int = field(default_factory=free_port)
    join_edge: int = field(default_factory=free_port)


def _servers(ports: _Ports, thread_ids: list[str]) -> list[Server]:
    """Every server of this bench."""
    return [
        grpc_service("thread_store", "thread-store", ports.thread_store),
        grpc_service(
            "session_api",
            "session-api",
            ports.session_api,
            SWITCHBOARD_SESSION_API_METRICS_PORT=str(ports.session_api_metrics),
        ),
        grpc_service("agent_runner", "agent-runner", ports.runner, SWITCHBOARD_OFFLINE_DELAY="0"),
        grpc_service("load agent_runner", "agent-runner", ports.load_runner, SWITCHBOARD_OFFLINE_DELAY=LOAD_DELAY),
        edge_service("edge", ports.edge, ports.runner),
        edge_service("load edge", ports.load_edge, ports.load_runner),
        Server(
            "in-memory",
            [sys.executable, "-m", "bench.edge", "--in-memory-chatkit", str(ports.in_memory), *thread_ids],
            http_url=f"http://127.0.0.1:{ports.in_memory}",
        ),
        # Conversations at once and joins: the runner's own default delay, as `switchboard up` runs it;
        # two edge replicas in front of it (a stream on one, joined from the other).
        grpc_service("turns agent_runner", "agent-runner", ports.turns_runner, SWITCHBOARD_OFFLINE_DELAY=None),
        edge_service("turns edge", ports.turns_edge, ports.turns_runner),
        edge_service("join edge", ports.join_edge, ports.turns_runner),
    ]


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (Linux ``/proc``; NaN elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _threads_with_sessions(
    target_store: str, target_sessions: str, users: Sequence[Principal], n: int
) -> list[str]:
    """``n`` empty threads spread over ``users``, each in a chat session of its own (as the edge leaves them)."""
    from services.session_api.client import SessionApiClient

    store = GrpcThreadStore(target_store)
    sessions = SessionApiClient(target_sessions)
    ids = [f"thr_{uuid.uuid4().hex[:12]}" for _ in range(n)]
    gate = asyncio.Semaphore(16)

    async def one(k: int) -> None:
        principal = users[k % len(users)]
        async with gate:
            created = await sessions.create_session(principal, thread_id=ids[k])
            thread = ThreadMetadata(
                id=ids[k], created_at=datetime.now(UTC), metadata={"session_id": created.session.id}
            )
            await store.save_thread(thread, principal)

    try:
        await asyncio.gather(*(one(k) for k in range(n)))
    finally:
        await store.close()
        await sessions.close()
    return ids


# -- 1-3: request latency against the in-memory server and the floor -----------------


async def _interleaved(calls: dict[str, Callable[[], Awaitable[object]]]) -> dict[str, list[float]]:
    """Seconds per call of each path, sequentially, in alternating rounds after a warm-up."""
    for call in calls.values():
        for _ in range(WARMUP):
            await call()
    out: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(ROUNDS):
        for name, call in calls.items():
            for _ in range(SAMPLES // ROUNDS):
                started = time.perf_counter()
                await call()
                out[name].append(time.perf_counter() - started)
    return out


async def _measure_requests(ports: _Ports, thread_ids: list[str], user: Principal) -> None:
    """Print items.list and threads.list through the edge, the in-memory server and straight to the thread store."""
    headers = bearer(stack_token(user.user_id))
    store = GrpcThreadStore(f"127.0.0.1:{ports.thread_store}")
    try:
        for n, thread_id in enumerate(thread_ids):
            await store.save_thread(_thread(thread_id, n), user)
        for item in _items(thread_ids[0]):
            await store.add_thread_item(thread_ids[0], item, user)
    finally:
        await store.close()
    metrics_url = f"http://127.0.0.1:{ports.session_api_metrics}/metrics"
    async with (
        _http(f"http://127.0.0.1:{ports.edge}") as edge,
        _http(f"http://127.0.0.1:{ports.in_memory}") as memory,
        grpc_channel(f"127.0.0.1:{ports.thread_store}") as channel,
    ):
        health = health_pb2_grpc.HealthStub(channel)
        check = health_pb2.HealthCheckRequest(service="")
        thread_store = ThreadStoreStub(channel)
        principal = common_pb2.Principal(user_id=user.user_id, org_id=STACK_ORG)
        # The edge's own credentials: a service token acting for the user.
        as_user = service_metadata("thread_store", Principal(user_id=user.user_id, org_id=STACK_ORG))
        list_items = pb.ListItemsRequest(
            principal=principal, thread_id=thread_ids[0], limit=ITEMS, order=common_pb2.SORT_ORDER_DESC
        )
        list_threads = pb.ListThreadsRequest(principal=principal, limit=THREADS, order=common_pb2.SORT_ORDER_DESC)

        async def healthz() -> None:
            reply = await edge.get("/healthz")
            if reply.status_code != 200:
                raise RuntimeError(f"/healthz answered {reply.status_code}")

        async def floor() -> None:
            await healthz()
            await health.Check(check)

        items_body = _items_list(thread_ids[0])
        sizes = {}
        for path, http in (("edge", edge), ("in-memory", memory)):
            page = await _post_ok(http, items_body, headers)
            if page.count(b'"thread_id"') != ITEMS:
                raise RuntimeError(f"{path}: items.list did not return {ITEMS} items")
            sizes[path] = len(page)
        auth_before = await _session_api_calls(metrics_url, "/Authenticate")
        _progress(f"timing items.list, threads.list and the floor: {SAMPLES} sequential requests per path")
        results = await _interleaved(
            {
                "edge items.list": lambda: _post_ok(edge, items_body, headers),
                "in-memory items.list": lambda: _post_ok(memory, items_body, headers),
                "straight items.list": lambda: thread_store.ListItems(list_items, metadata=as_user),
                "edge threads.list": lambda: _post_ok(edge, _threads_list(), headers),
                "in-memory threads.list": lambda: _post_ok(memory, _threads_list(), headers),
                "straight threads.list": lambda: thread_store.ListThreads(list_threads, metadata=as_user),
                "healthz": healthz,
                "grpc": lambda: health.Check(check),
                "floor": floor,
            }
        )
        auth_calls = await _session_api_calls(metrics_url, "/Authenticate") - auth_before
    floor_p50 = median(results["floor"])
    summed_p50 = median(results["healthz"]) + median(results["grpc"])
    rows = []
    for kind, method in (("items.list", "ListItems"), ("threads.list", "ListThreads")):
        edge_s, memory_s, straight = (results[f"{path} {kind}"] for path in ("edge", "in-memory", "straight"))
        ratio = f"{median(edge_s) / median(memory_s):5.2f}x"
        rows.append((f"edge {kind}", ms(median(edge_s)), ms(pct(edge_s, 0.99)), ratio, _x(median(edge_s), floor_p50)))
        rows.append((f"in-memory ChatKitServer {kind}", ms(median(memory_s)), ms(pct(memory_s, 0.99)), "", ""))
        rows.append(
            (f"  thread store {method}, straight over gRPC", ms(median(straight)), ms(pct(straight, 0.99)), "", "")
        )
    for label, path in (
        ("GET /healthz on the edge", "healthz"),
        ("empty gRPC call (thread store health check)", "grpc"),
    ):
        rows.append((f"  {label}", ms(median(results[path])), ms(pct(results[path], 0.99)), "", ""))
    rows.append(("floor: the two p50s above, summed", ms(summed_p50), "", "", _x(summed_p50, floor_p50)))
    rows.append(
        ("floor: both back to back in each iteration", ms(floor_p50), ms(pct(results["floor"], 0.99)), "", "1.00x")
    )
    print_table(
        f"ChatKit requests over HTTP, {SAMPLES} sequential requests per path in {ROUNDS} alternating rounds"
        f" (items.list: {ITEMS} items, edge {sizes['edge']} B, in-memory {sizes['in-memory']} B;"
        f" threads.list: {THREADS} threads)",
        rows,
        ("path", "p50", "p99", "edge / in-memory", "vs floor"),
    )
    items_p50 = median(results["edge items.list"])
    print("\n  goal: edge items.list p50 within 1.5x of the floor")
    for label, value in (("both back to back", floor_p50), ("the two p50s summed", summed_p50)):
        verdict = "MET" if items_p50 <= 1.5 * value else "MISSED"
        print(f"    floor = {label:<22} -> {items_p50 / value:4.2f}x  {verdict}")
    http_share = items_p50 - median(results["straight items.list"])
    print(
        f"  the edge's share of items.list (edge p50 - straight ListItems p50): {http_share * 1000:.3f} ms;"
        f" GET /healthz: {median(results['healthz']) * 1000:.3f} ms"
    )
    print(
        f"  session_api Authenticate calls during the {2 * (SAMPLES + WARMUP)} timed ChatKit requests to the edge:"
        f" {auth_calls:.0f} (its Prometheus metrics: the edge's token cache held)"
    )


def _x(value: float, floor: float) -> str:
    return f"{value / floor:5.2f}x"


# -- 4: time to the first event ------------------------------------------------------


async def _measure_first_event(ports: _Ports, user: Principal, memory_threads: list[str]) -> None:
    """Print time to the first event; the in-memory server answers on its empty threads, in turn."""
    headers = bearer(stack_token(user.user_id))
    _progress(f"time to first event: {FIRST_EVENT_SAMPLES} add_user_message and threads.create streams each")
    ids = await _threads_with_sessions(
        f"127.0.0.1:{ports.thread_store}", f"127.0.0.1:{ports.session_api}", [user], FIRST_EVENT_SAMPLES + 3
    )
    results: dict[str, list[_Stream]] = {"add_user_message": [], "threads.create": [], "in-memory": []}
    async with _http(f"http://127.0.0.1:{ports.edge}") as edge, _http(f"http://127.0.0.1:{ports.in_memory}") as memory:
        for n, thread_id in enumerate(ids):
            measured = {
                "add_user_message": await _stream(edge, _add_message(thread_id), headers),
                "threads.create": await _stream(edge, _create_thread(), headers),
                "in-memory": await _stream(
                    memory, _add_message(memory_threads[1 + n % (len(memory_threads) - 1)]), headers
                ),
            }
            for name, stream in measured.items():
                if stream.error or (name != "in-memory" and not stream.ok):
                    raise RuntimeError(f"{name} stream failed: {stream.error or 'no assistant message'}")
                if n >= 3:  # the first three warm up
                    results[name].append(stream)
    rows = []
    labels = {
        "add_user_message": "edge threads.add_user_message (thread with its session)",
        "threads.create": "edge threads.create (new thread and session)",
        "in-memory": "in-memory ChatKitServer add_user_message (respond yields nothing)",
    }
    for name, streams in results.items():
        first = [s.first_data for s in streams]
        delta = [s.first_delta for s in streams if not math.isnan(s.first_delta)]
        total = [s.total for s in streams]
        rows.append(
            (
                labels[name],
                ms(median(first)),
                ms(pct(first, 0.99)),
                ms(median(delta)) if delta else "       -   ",
                ms(median(total)),
            )
        )
    print_table(
        f"Time to first streamed event, offline model with no delay, {FIRST_EVENT_SAMPLES} sequential streams each",
        rows,
        ("request", "first data: p50", "first data: p99", "first text delta p50", "whole stream p50"),
    )


# -- 5: many streams at once -----------------------------------------------------------


async def _measure_load(ports: _Ports, processes: dict[str, subprocess.Popen[bytes]]) -> None:
    """Print how 200 streams at once fare, and the CPU time each process spent on them."""
    users = [Principal(user_id=f"bench-load-{uuid.uuid4().hex[:8]}", org_id=STACK_ORG) for _ in range(STREAM_USERS)]
    ids = await _threads_with_sessions(
        f"127.0.0.1:{ports.thread_store}", f"127.0.0.1:{ports.session_api}", users, STREAMS
    )
    tokens = [stack_token(u.user_id) for u in users]
    _progress(f"opening {STREAMS} streams at once ({STREAM_USERS} users, a thread each, {LOAD_DELAY} s per delta)")
    async with _http(f"http://127.0.0.1:{ports.load_edge}") as edge:
        for token in tokens:  # the edge has each token cached, as a browser's would be
            await _post_ok(edge, _threads_list(), bearer(token))
        pids = {name: process.pid for name, process in processes.items()}
        cpu_before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
        client_before = time.process_time()
        started = time.perf_counter()
        streams = await asyncio.gather(
            *(_stream(edge, _add_message(ids[k]), bearer(tokens[k % STREAM_USERS])) for k in range(STREAMS))
        )
        wall = time.perf_counter() - started
        cpu = {name: _cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        cpu["this client"] = time.process_time() - client_before
    completed = [s for s in streams if s.ok]
    errors = Counter(s.error or "no assistant message" for s in streams if not s.ok)
    edges = sorted(
        [(s.started_at + s.first_data, 1) for s in completed] + [(s.started_at + s.total, -1) for s in completed]
    )
    open_now = peak = 0
    for _, change in edges:
        open_now += change
        peak = max(peak, open_now)
    print(f"\n{STREAMS} threads.add_user_message streams at once (offline model, {LOAD_DELAY} s between deltas)")
    print(f"  completed: {len(completed)}/{STREAMS}   wall: {wall:6.2f} s   open at once (peak): {peak}")
    if completed:
        deltas = median([float(s.deltas) for s in completed])
        floor = deltas * float(LOAD_DELAY)
        print(f"  one stream's own pace: {deltas:.0f} text deltas x {LOAD_DELAY} s = {floor:4.2f} s")
    for error, count in errors.most_common(3):
        print(f"  failed x{count}: {error}")
    if completed:
        rows = []
        for label, values in (
            ("first data: line", [s.first_data for s in completed]),
            ("first assistant text delta", [s.first_delta for s in completed if not math.isnan(s.first_delta)]),
            ("whole stream", [s.total for s in completed]),
        ):
            rows.append((label, ms(median(values)), ms(pct(values, 0.99)), ms(max(values))))
        print_table("  under that load", rows, ("time to", "p50", "p99", "max"))
    busy = sorted(((name, seconds) for name, seconds in cpu.items() if seconds >= 0.05), key=lambda x: -x[1])
    print(
        f"\n  CPU seconds spent during the burst ({os.cpu_count()} cores x {wall:4.2f} s = "
        f"{(os.cpu_count() or 1) * wall:4.1f} s available): " + ", ".join(f"{n} {s:4.1f}" for n, s in busy)
    )


# -- 6: conversations at once: time to the first and the last event ----------------------


def _turns_delay() -> float:
    """The offline model's delay between chunks when ``SWITCHBOARD_OFFLINE_DELAY`` is unset."""
    return float(ModelConfig.offline_chunk_delay)


def _failure(stream: _Stream) -> str:
    """Why a conversation counts as an error ('' when it does not)."""
    if stream.error:
        return stream.error
    if not stream.ok:
        return "the stream ended without the assistant's thread.item.done"
    return ""


def _cpu_line(before: dict[str, float], pids: dict[str, int], wall: float) -> str:
    spent = {name: _cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    busy = sorted(((n, s) for n, s in spent.items() if s >= 0.05), key=lambda x: -x[1])
    cores = os.cpu_count() or 1
    return f"CPU seconds ({cores} cores x {wall:5.2f} s = {cores * wall:5.1f} s available): " + ", ".join(
        f"{n} {s:4.1f}" for n, s in busy
    )


async def _measure_conversations(ports: _Ports, processes: dict[str, subprocess.Popen[bytes]]) -> None:
    """Print time to the first and the last event of new conversations, 1, 200 and 1,000 at once."""
    pids = {name: process.pid for name, process in processes.items() if name != "in-memory"}
    delay = _turns_delay()
    results: list[tuple[int, int, list[_Stream], float, str]] = []
    transport = _PooledTransport(max(CONVERSATIONS) + 50)
    async with _http(f"http://127.0.0.1:{ports.turns_edge}", transport) as edge:
        for n in CONVERSATIONS:
            rounds = SINGLE_ROUNDS if n == 1 else 1
            what = f"{rounds} conversations, one at a time" if n == 1 else f"{n} conversations at once"
            _progress(f"{what}: each a new user's threads.create ('hi'), offline model, {delay} s per chunk")
            streams: list[_Stream] = []
            cpu_before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
            client_before = time.process_time()
            wall = 0.0
            for _ in range(rounds):
                # Each conversation is its own user: the edge's per-user rate limit sees one request each.
                tokens = [stack_token(f"bench-conv-{uuid.uuid4().hex[:12]}") for _ in range(n)]
                started = time.perf_counter()
                streams += await asyncio.gather(*(_stream(edge, _create_thread("hi"), bearer(t)) for t in tokens))
                wall += time.perf_counter() - started
            cpu = _cpu_line(cpu_before, pids, wall)
            cpu += f", this client {time.process_time() - client_before:4.1f}"
            results.append((n, rounds, streams, wall, cpu))
            failed = sum(1 for s in streams if _failure(s))
            _progress(f"{len(streams) - failed}/{len(streams)} completed in {wall:5.2f} s, {failed} errors")
    single = [s for s in results[0][2] if not _failure(s)]
    base_first = median([s.first_data for s in single]) if single else math.nan
    base_last = median([s.last_data for s in single]) if single else math.nan
    rows = []
    for n, rounds, streams, wall, _cpu in results:
        good = [s for s in streams if not _failure(s)]
        first = [s.first_data for s in good]
        last = [s.last_data for s in good]
        label = f"1 (x{rounds}, one at a time)" if n == 1 else f"{n:,} at once"
        if good:
            cells = (
                ms(median(first)),
                ms(pct(first, 0.99)),
                ms(median(last)),
                ms(pct(last, 0.99)),
                f"{median(first) / base_first:6.1f}x",
                f"{median(last) / base_last:6.1f}x",
            )
        else:
            cells = ("-",) * 6
        rows.append((label, f"{len(good)}/{len(streams)}", str(len(streams) - len(good)), *cells, f"{wall:6.2f} s"))
    print_table(
        f"New conversations (threads.create 'hi', each its own user; offline model, {delay} s between chunks"
        f" of 3 words; one agent runner and one edge; one httpx.AsyncClient with room for"
        f" {transport.connections:,} connections; latencies of the completed streams, from just before"
        f" the request was sent)",
        rows,
        (
            "conversations",
            "completed",
            "errors",
            "first event p50",
            "first event p99",
            "last event p50",
            "last event p99",
            "first p50 vs 1",
            "last p50 vs 1",
            "wall",
        ),
    )
    total_errors = sum(1 for _, _, streams, _, _ in results for s in streams if _failure(s))
    print(f"\n  goal: 0 errors -> {total_errors} {'MET' if total_errors == 0 else 'MISSED'}")
    for n, _rounds, streams, _wall, cpu in results:
        print(f"  {n:>5,}: {cpu}")
        for error, count in Counter(_failure(s) for s in streams if _failure(s)).most_common(4):
            print(f"         failed x{count}: {error[:220]}")


# -- 7: joining a running answer from another edge replica ---------------------------------


@dataclass
class _Timeline:
    """When each event of one SSE stream arrived, by its ``id:`` (this process's clock)."""

    sent_at: float = 0.0
    head_at: float = math.nan
    first_data_at: float = math.nan
    status: int = 0
    arrivals: dict[str, float] = field(default_factory=dict)
    thread_id: str = ""
    assistant_done: bool = False
    error: str = ""


async def _follow(reply: httpx.Response, timeline: _Timeline, thread_known: asyncio.Event | None = None) -> None:
    """Read an SSE stream to its end, noting when each event id arrived."""
    timeline.head_at = time.perf_counter()
    timeline.status = reply.status_code
    if reply.status_code != 200:
        timeline.error = f"HTTP {reply.status_code}: {(await reply.aread())[:200]!r}"
        return
    async for line in reply.aiter_lines():
        now = time.perf_counter()
        if line.startswith("id: "):
            timeline.arrivals.setdefault(line[4:], now)
        elif line.startswith("data: "):
            if math.isnan(timeline.first_data_at):
                timeline.first_data_at = now
            if line.startswith(THREAD_CREATED):
                timeline.thread_id = str(json.loads(line[6:])["thread"]["id"])
                if thread_known is not None:
                    thread_known.set()
            elif line.startswith(ERROR_EVENT):
                timeline.error = line[6:200]
            elif line.startswith(ITEM_DONE) and ASSISTANT in line:
                timeline.assistant_done = True


async def _measure_join(ports: _Ports) -> None:
    """Print how far behind the original stream a joiner on a second edge replica receives each event."""
    delay = _turns_delay()
    user_id = f"bench-join-{uuid.uuid4().hex[:8]}"
    headers = bearer(stack_token(user_id))
    own, joined = _Timeline(), _Timeline()
    thread_known = asyncio.Event()
    _progress(
        f"joining 'count to {JOIN_COUNT}' ({delay} s per chunk) on a second edge replica,"
        f" {JOIN_AFTER_SECONDS:.0f} s after the answer started"
    )
    async with (
        _http(f"http://127.0.0.1:{ports.turns_edge}") as edge_a,
        _http(f"http://127.0.0.1:{ports.join_edge}") as edge_b,
    ):
        for http in (edge_a, edge_b):  # each replica has the token cached, as a browser's tab would
            await _post_ok(http, _threads_list(), headers)

        async def original() -> None:
            own.sent_at = time.perf_counter()
            body = _create_thread(f"count to {JOIN_COUNT}")
            async with edge_a.stream("POST", "/chatkit", content=body, headers=headers) as reply:
                await _follow(reply, own, thread_known)
            thread_known.set()  # also when it failed: the joiner must not wait forever

        async def joiner() -> None:
            await thread_known.wait()
            if not own.thread_id:
                joined.error = "the original stream never said which thread it created"
                return
            await asyncio.sleep(max(0.0, own.first_data_at + JOIN_AFTER_SECONDS - time.perf_counter()))
            joined.sent_at = time.perf_counter()
            async with edge_b.stream("GET", f"/chatkit/threads/{own.thread_id}/stream", headers=headers) as reply:
                await _follow(reply, joined)

        await asyncio.gather(original(), joiner())
    for name, timeline in (("original stream (edge A)", own), ("joiner (edge B)", joined)):
        if timeline.error or not timeline.assistant_done:
            print(f"\n  join: the {name} failed: {timeline.error or 'no assistant thread.item.done'}")
    common = [event_id for event_id in joined.arrivals if event_id in own.arrivals]
    if not common:
        print("\n  join: the joiner received no event the original stream received; nothing to compare")
        return
    lag = {event_id: joined.arrivals[event_id] - own.arrivals[event_id] for event_id in common}
    replayed = [lag[i] for i in common if own.arrivals[i] < joined.sent_at]
    live = [lag[i] for i in common if own.arrivals[i] >= joined.sent_at]
    missing = [i for i in own.arrivals if i not in joined.arrivals]
    rows = [
        (label, str(len(values)), ms(median(values)), ms(pct(values, 0.99)), ms(max(values)))
        for label, values in (
            ("all events", list(lag.values())),
            ("  live (reached the original after the join request)", live),
            ("  replayed (reached the original before it)", replayed),
        )
        if values
    ]
    print_table(
        f"Joining a running answer from a second edge replica ('count to {JOIN_COUNT}', offline model,"
        f" {delay} s between chunks; edge A streams it, edge B joins {JOIN_AFTER_SECONDS:.0f} s in without"
        " Last-Event-ID; both edges on one agent runner; both clients in this process)",
        rows,
        ("per-event lag: joiner received minus original received", "events", "p50", "p99", "max"),
    )
    print(
        f"\n  join request -> response head {ms(joined.head_at - joined.sent_at).strip()},"
        f" -> first replayed event {ms(joined.first_data_at - joined.sent_at).strip()}"
        f" ({len(replayed)} events replayed, then {len(live)} live)"
    )
    print(
        f"  events with ids: original {len(own.arrivals)}, joiner {len(joined.arrivals)},"
        f" of the original's missing on the joiner {len(missing)}"
    )
    if live:
        print(
            f"  live lag p50 is {median(live) / delay:4.2f}x the {delay * 1000:.0f} ms between chunks"
            f" (p99 {pct(live, 0.99) / delay:4.2f}x)"
        )


# -- 8: gRPC calls per request, counted --------------------------------------------------


class _CallLog:
    """The edge's outgoing calls, in order."""

    def __init__(self) -> None:
        self.methods: list[str] = []

    def add(self, details: Any) -> None:
        method = details.method
        self.methods.append(method.decode() if isinstance(method, bytes) else str(method))


class _UnaryCalls(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    def __init__(self, log: _CallLog) -> None:
        self._log = log

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        self._log.add(client_call_details)
        return await continuation(client_call_details, request)


class _StreamCalls(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    # grpc.aio files an interceptor under one call kind only: one class per kind.
    def __init__(self, log: _CallLog) -> None:
        self._log = log

    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        self._log.add(client_call_details)
        return await continuation(client_call_details, request)


class _LoggedChannels(LoopLocalChannels[Any]):
    """A client's channel with the call log's interceptors (the bench runs one event loop)."""

    def __init__(self, original: LoopLocalChannels[Any], make_stub: Callable[[grpc.aio.Channel], Any], log: _CallLog):
        super().__init__(original.target, make_stub, audience=original.audience, credentials=original.credentials)
        self._stub_of = make_stub
        self._interceptors: list[Any] = [_UnaryCalls(log), _StreamCalls(log)]
        self._opened: tuple[grpc.aio.Channel, Any] | None = None

    def stub(self) -> Any:
        if self._opened is None:
            channel = grpc.aio.insecure_channel(self.target, options=CHANNEL_OPTIONS, interceptors=self._interceptors)
            stub = self._stub_of(channel)
            self._opened = (
                channel,
                AuthenticatedStub(stub, self.credentials),
            )
        return self._opened[1]

    def channel(self) -> grpc.aio.Channel:
        self.stub()
        assert self._opened is not None
        return self._opened[0]

    async def close(self) -> None:
        if self._opened is not None:
            await self._opened[0].close(None)
            self._opened = None


def _served_calls() -> Counter[str]:
    """Every call the in-process servers have answered, by method."""
    out: Counter[str] = Counter()
    for family in GRPC_REQUESTS.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                out[sample.labels["method"]] += int(sample.value)
    return out


def _short(method: str) -> str:
    service, _, name = method.strip("/").rpartition("/")
    return f"{service.rsplit('.', 1)[-1]}.{name}"


def _describe(calls: Counter[str]) -> str:
    return ", ".join(_short(m) + (f" x{n}" if n > 1 else "") for m, n in sorted(calls.items())) or "-"


@contextlib.contextmanager
def _every_channel_logged(log: _CallLog) -> Iterator[None]:
    """Every ``grpc.aio`` channel this process opens meanwhile carries the log's interceptors.

    The in-process stack's clients (the edge's and the agent runner's, and whatever
    they build later) open their channels lazily through ``grpc.aio.insecure_channel``,
    so this sees every call any of them makes without a hook in their code.
    """
    original = grpc.aio.insecure_channel

    def logged(
        target: str, options: Any = None, compression: Any = None, interceptors: Sequence[Any] | None = None
    ) -> grpc.aio.Channel:
        chained = [*(interceptors or ()), _UnaryCalls(log), _StreamCalls(log)]
        return original(target, options=options, compression=compression, interceptors=chained)

    with mock.patch.object(grpc.aio, "insecure_channel", logged):
        yield


@dataclass
class _Hops:
    """The gRPC calls one request caused."""

    label: str
    from_edge: list[str]  # in order
    by_others: Counter[str]  # every other client in the process (the agent runner)
    served: Counter[str]  # what the servers answered

    @property
    def total(self) -> int:
        return len(self.from_edge) + self.by_others.total()


async def _count_hops(database_url: str, redis_url: str) -> None:
    """Print the gRPC calls each request type makes, counted on an in-process copy of the stack."""
    from services.agent_runner.models import EnvModels
    from services.agent_runner.server import AgentRunnerConfig, build_agent_runner
    from services.edge.app import Edge, create_app
    from services.edge.config import EdgeConfig
    from services.session_api.auth import AuthConfig
    from services.session_api.server import SessionApiConfig, build_session_api
    from services.thread_store.server import ThreadStoreConfig, build_thread_store
    from switchboard.api.v1.agent_runner_pb2_grpc import AgentRunnerStub
    from switchboard.api.v1.session_api_pb2_grpc import SessionApiStub

    _progress("counting gRPC calls per request on an in-process copy of the stack")
    if not logging.getLogger().handlers:
        # As the services' own processes log; otherwise the MCP SDK installs an INFO handler here.
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    everything = _CallLog()
    with _every_channel_logged(everything):
        ts_server, _ = await build_thread_store(ThreadStoreConfig(database_url=database_url, redis_url=redis_url))
        sa_server, _ = await build_session_api(
            SessionApiConfig(
                database_url=database_url, redis_url=redis_url, auth=AuthConfig(jwt_secret=STACK_JWT_SECRET)
            )
        )
        ts = f"127.0.0.1:{await ts_server.start('127.0.0.1', 0)}"
        sa = f"127.0.0.1:{await sa_server.start('127.0.0.1', 0)}"
        models = EnvModels(ModelConfig(default="offline", api_key=None, base_url=None, offline_chunk_delay=0))
        ar_server, _ = await build_agent_runner(
            AgentRunnerConfig(
                database_url=database_url, redis_url=redis_url, thread_store_target=ts, session_api_target=sa
            ),
            models=models,
        )
        ar = f"127.0.0.1:{await ar_server.start('127.0.0.1', 0)}"
        config = EdgeConfig(thread_store=ts, session_api=sa, agent_runner=ar, rate_per_second=1e6, rate_burst=1_000_000)
        edge = Edge(config)
        log = _CallLog()
        edge.store._channels = _LoggedChannels(edge.store._channels, ThreadStoreStub, log)
        edge.sessions._channels = _LoggedChannels(edge.sessions._channels, SessionApiStub, log)
        edge.runner._channels = _LoggedChannels(edge.runner._channels, AgentRunnerStub, log)
        app = create_app(config, edge=edge)
        user = Principal(user_id=f"bench-hops-{uuid.uuid4().hex[:8]}", org_id=STACK_ORG)
        headers = bearer(stack_token(user.user_id))
        counted: list[_Hops] = []
        second: list[_Hops] = []
        try:
            async with _http("http://edge", transport=httpx.ASGITransport(app=app)) as http:
                setup = GrpcThreadStore(ts)
                thread_id = f"thr_{uuid.uuid4().hex[:12]}"
                await setup.save_thread(_thread(thread_id, 0), user)
                for item in _items(thread_id):
                    await setup.add_thread_item(thread_id, item, user)
                await setup.close()

                async def count(label: str, send: Callable[[], Awaitable[object]], into: list[_Hops]) -> None:
                    first, first_all, served_before = len(log.methods), len(everything.methods), _served_calls()
                    await send()
                    await asyncio.sleep(0.3)  # anything the runner does after the stream ends
                    from_edge = log.methods[first:]
                    by_others = Counter(everything.methods[first_all:]) - Counter(from_edge)
                    into.append(_Hops(label, from_edge, by_others, _served_calls() - served_before))

                async def stream(body: bytes) -> _Stream:
                    result = await _stream(http, body, headers)
                    if not result.ok:
                        raise RuntimeError(f"the stream failed: {result.error or 'no assistant message'}")
                    return result

                await count(
                    "items.list (first use of a token)",
                    lambda: _post_ok(http, _items_list(thread_id), headers),
                    counted,
                )
                await count("items.list", lambda: _post_ok(http, _items_list(thread_id), headers), counted)
                await count("threads.list", lambda: _post_ok(http, _threads_list(), headers), counted)
                await count("threads.get_by_id", lambda: _post_ok(http, _threads_get(thread_id), headers), counted)
                await count("threads.create (new thread)", lambda: stream(_create_thread()), counted)
                await count(
                    "threads.add_user_message (thread without a session)",
                    lambda: stream(_add_message(thread_id)),
                    counted,
                )
                await count(
                    "threads.add_user_message (thread with its session)",
                    lambda: stream(_add_message(thread_id)),
                    counted,
                )
                for _ in range(HOP_SAMPLES):
                    created = await stream(_create_thread("hi"))
                    await count(
                        "threads.add_user_message (second message of a new thread)",
                        functools.partial(stream, _add_message(created.thread_id, "hello again")),
                        second,
                    )
        finally:
            await edge.close()
            await ar_server.stop(grace=0)
            await sa_server.stop(grace=0)
            await ts_server.stop(grace=0)
    typical = sorted(second, key=lambda h: h.total)[len(second) // 2]
    shown = [*counted, dataclasses.replace(typical, label=f"{typical.label}, median of {len(second)}")]
    print_table(
        "gRPC calls per request, counted at runtime on an in-process copy of the stack (client side: an"
        " interceptor on every channel the process opens, the edge's apart; server side: every service's"
        " switchboard_grpc_requests_total)",
        [
            (
                h.label,
                str(len(h.from_edge)),
                str(h.by_others.total()),
                str(h.total),
                str(h.served.total()) + ("" if h.served.total() == h.total else "  (differs!)"),
            )
            for h in shown
        ],
        ("request", "from the edge", "by the agent runner", "total", "served"),
    )
    print("\n  the calls (the edge's in order | the runner's by method):")
    for h in shown:
        print(f"    {h.label}: {', '.join(_short(m) for m in h.from_edge)} | {_describe(h.by_others)}")
    totals = [float(h.total) for h in second]
    n = median(totals)
    verdict = "MET" if n <= HOP_GOAL else "MISSED"
    print(f"\ngRPC calls per add_user_message: {n:.0f} (goal <= {HOP_GOAL})")
    print(
        f"  {verdict}: {n / HOP_GOAL:4.2f}x the goal; median of {len(second)} second messages in threads"
        f" made by threads.create (min {min(totals):.0f}, max {max(totals):.0f}); edge {len(typical.from_edge)}"
        f" + agent runner {typical.by_others.total()}; the servers served {typical.served.total()}"
    )


# -- the run -----------------------------------------------------------------------------


async def main() -> None:
    """Run the benchmark and print its tables."""
    started = time.perf_counter()
    thread_ids = [f"thr_{uuid.uuid4().hex[:12]}" for _ in range(THREADS)]
    user = Principal(user_id=f"bench-{uuid.uuid4().hex[:8]}", org_id=STACK_ORG)
    with bench_storage() as (database_url, redis_url):
        with contextlib.ExitStack() as stack:
            ports = _Ports()
            _progress("starting thread_store, session_api, three agent runners, four edges and the in-memory server")
            servers = _servers(ports, thread_ids)
            env = stack_env(database_url, redis_url, thread_store=ports.thread_store, session_api=ports.session_api)
            processes = start_servers(stack, servers, env)
            await wait_servers(servers, processes)
            await _measure_requests(ports, thread_ids, user)
            await _measure_first_event(ports, user, thread_ids)
            await _measure_load(ports, processes)
            await _measure_conversations(ports, processes)
            await _measure_join(ports)
        await _count_hops(database_url, redis_url)
    print(f"\n  (the whole run took {time.perf_counter() - started:.0f} s)")


def _serve_main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.edge")
    parser.add_argument("--in-memory-chatkit", type=int, metavar="PORT", required=True)
    parser.add_argument("thread_ids", nargs="+")
    args = parser.parse_args(argv)
    serve_in_memory(args.in_memory_chatkit, args.thread_ids)


if __name__ == "__main__":
    if "--in-memory-chatkit" in sys.argv:
        _serve_main(sys.argv[1:])
    else:
        asyncio.run(main())
