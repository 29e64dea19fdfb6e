"""The real stack as processes (``switchboard up`` on the test Postgres and Redis), and an HTTP client of its edge.

Requests are built with ``chatkit.types``; every streamed event is parsed with the
SDK's own ``ThreadStreamEvent`` type.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from chatkit.types import (
    InferenceOptions,
    ItemsListReq,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadStreamEvent,
    UserMessageInput,
    UserMessageTextContent,
)
from pydantic import TypeAdapter

from services.session_api.auth import mint_development_token
from switchboard.principal import Principal
from switchboard.service_auth import mint_service_token
from tests.conftest import INTERNAL_SECRET, free_port

JWT_SECRET = "e2e-test-secret-that-is-long-enough-for-hs256-0123456789"
EVENTS: TypeAdapter[ThreadStreamEvent] = TypeAdapter(ThreadStreamEvent)


@dataclass
class Stack:
    """A running ``switchboard up``."""

    process: subprocess.Popen[str]
    edge: str
    ports: dict[str, int]
    output: list[str]
    database_url: str
    redis_url: str

    def token(self, user_id: str, *, org_id: str | None = "e2e", ttl: int = 600, operator: bool = False) -> str:
        """A token of the identity provider for ``user_id``."""
        roles = ["operator"] if operator else None
        return mint_development_token(JWT_SECRET, user_id=user_id, org_id=org_id, roles=roles, ttl_seconds=ttl)


def service_metadata(
    audience: str, *, scopes: tuple[str, ...] = ("*",), principal: Principal | None = None
) -> tuple[tuple[str, str], ...]:
    """Call metadata of a service token of the suite's deployment (its internal key) for ``audience``:
    a service identity with ``scopes``, or acting for ``principal``."""
    token, _ = mint_service_token(
        INTERNAL_SECRET.encode(), audience=audience, service="e2e-tests", principal=principal, scopes=scopes
    )
    return (("authorization", f"Bearer {token}"),)


def start_stack(data_dir: Path, ports: dict[str, int], database_url: str, redis_url: str, **extra_env: str) -> Stack:
    """``switchboard up`` with the given ports, returning once it says it is up."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SWITCHBOARD_DATA_DIR=str(data_dir),
        SWITCHBOARD_JWT_SECRET=JWT_SECRET,
        SWITCHBOARD_MODEL="offline",
        SWITCHBOARD_OFFLINE_DELAY="0.005",
        SWITCHBOARD_EDGE_SESSION_AUTH_SECONDS="0",
        SWITCHBOARD_EDGE_MAX_BODY_BYTES="65536",
        SWITCHBOARD_MAX_ATTACHMENT_BYTES="100000",
        SWITCHBOARD_EDGE_RATE_PER_SECOND="50",
        SWITCHBOARD_EDGE_RATE_BURST="200",
        SWITCHBOARD_LOG_LEVEL="WARNING",
        **{f"SWITCHBOARD_{name.upper()}_PORT": str(port) for name, port in ports.items()},
    )
    env.pop("OPENAI_API_KEY", None)  # never the machine's key; a test may pass a fake server's
    env.pop("OPENAI_BASE_URL", None)
    env.update(extra_env)  # a test's own settings win
    proc = subprocess.Popen(
        [sys.executable, "-m", "switchboard.cli", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 90
    for line in proc.stdout:
        seen.append(line)
        if "Switchboard is up." in line:
            return Stack(proc, f"http://127.0.0.1:{ports['edge']}", ports, seen, database_url, redis_url)
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise AssertionError("switchboard up did not come up:\n" + "".join(seen))


def stop_stack(stack: Stack) -> str:
    """Ctrl-C, and the rest of its output."""
    stack.process.send_signal(signal.SIGINT)
    out, _ = stack.process.communicate(timeout=60)
    assert stack.process.returncode == 0, out
    return out


def stack_ports() -> dict[str, int]:
    """Free ports for every process of the stack."""
    return {name: free_port() for name in ("thread_store", "session_api", "agent_runner", "edge")}


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, database_url: str, redis_url: str) -> Iterator[Stack]:
    """One stack for the end-to-end tests."""
    running = start_stack(tmp_path_factory.mktemp("stack"), stack_ports(), database_url, redis_url)
    yield running
    stop_stack(running)


# The second edge refills a user's bucket so slowly (one request per 10 s) that
# whether a burst past its size is limited cannot depend on how fast this machine
# sends it.
SECOND_EDGE_RATE_PER_SECOND = 0.1
SECOND_EDGE_RATE_BURST = 30


@dataclass
class EdgeReplica:
    """A second ``switchboard edge`` on the same services as the stack's."""

    process: subprocess.Popen[str]
    url: str


def service_env(stack: Stack, **extra_env: str) -> dict[str, str]:
    """The environment of one more service process of ``stack`` (what ``up`` gives its children)."""
    env = dict(os.environ)
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)
    env.update(
        DATABASE_URL=stack.database_url,
        REDIS_URL=stack.redis_url,
        SWITCHBOARD_JWT_SECRET=JWT_SECRET,
        SWITCHBOARD_THREAD_STORE=f"127.0.0.1:{stack.ports['thread_store']}",
        SWITCHBOARD_SESSION_API=f"127.0.0.1:{stack.ports['session_api']}",
        SWITCHBOARD_AGENT_RUNNER=f"127.0.0.1:{stack.ports['agent_runner']}",
        SWITCHBOARD_EDGE_SESSION_AUTH_SECONDS="0",
        SWITCHBOARD_MODEL="offline",
        SWITCHBOARD_OFFLINE_DELAY="0.005",
        SWITCHBOARD_LOG_LEVEL="WARNING",
    )
    env.update(extra_env)
    return env


def start_service(command: str, port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    """``switchboard <command> --port <port>`` as a process of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", "switchboard.cli", command, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def child_pid(stack: Stack, command: str) -> int:
    """The pid of the stack's child running ``switchboard <command>``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == stack.process.pid and command.encode() in cmdline:
            return int(entry.name)
    raise AssertionError(f"the stack has no {command} child")


def start_edge(stack: Stack, port: int, *, probe: str = "/readyz", **extra_env: str) -> EdgeReplica:
    """Another edge replica of ``stack``, returning once ``probe`` answers 200 (``/healthz`` for
    an edge whose services are meant to be down)."""
    proc = start_service("edge", port, service_env(stack, **extra_env))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the second edge exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}{probe}", timeout=2).status_code == 200:
                return EdgeReplica(proc, url)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("the second edge did not become ready in 60 s")


@contextmanager
def runner_behind_edge(stack: Stack, **runner_env: str) -> Iterator[EdgeReplica]:
    """One more agent runner of ``stack`` with its own settings, and an edge in front of it."""
    port = free_port()
    runner = start_service("agent-runner", port, service_env(stack, **runner_env))
    edge = start_edge(stack, free_port(), SWITCHBOARD_AGENT_RUNNER=f"127.0.0.1:{port}")
    try:
        yield edge
    finally:
        edge.process.terminate()
        runner.terminate()
        edge.process.wait(timeout=30)
        runner.wait(timeout=30)


@pytest.fixture(scope="session")
def second_edge(stack: Stack) -> Iterator[EdgeReplica]:
    """A second edge replica with its own rate and burst (``SECOND_EDGE_RATE_*``), which it applies to
    the user's bucket that every edge shares in Redis."""
    replica = start_edge(
        stack,
        free_port(),
        SWITCHBOARD_EDGE_RATE_PER_SECOND=str(SECOND_EDGE_RATE_PER_SECOND),
        SWITCHBOARD_EDGE_RATE_BURST=str(SECOND_EDGE_RATE_BURST),
    )
    yield replica
    replica.process.terminate()
    replica.process.wait(timeout=30)


@pytest.fixture
async def http_b(second_edge: EdgeReplica) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the second edge replica."""
    async with httpx.AsyncClient(base_url=second_edge.url, timeout=30) as client:
        yield client


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the edge."""
    async with httpx.AsyncClient(base_url=stack.edge, timeout=30) as client:
        yield client


def new_user() -> str:
    """A user id of its own per test."""
    return f"e2e-{uuid.uuid4().hex[:10]}"


def bearer(token: str) -> dict[str, str]:
    """The Authorization header."""
    return {"Authorization": f"Bearer {token}"}


def message_input(text: str, attachments: list[str] | None = None) -> UserMessageInput:
    """A user's text message (with the ids of uploaded attachments)."""
    return UserMessageInput(
        content=[UserMessageTextContent(text=text)],
        attachments=attachments or [],
        inference_options=InferenceOptions(),
    )


def create_request(text: str, attachments: list[str] | None = None) -> bytes:
    """``threads.create`` with a first message."""
    return (
        ThreadsCreateReq.model_validate({"params": {"input": message_input(text, attachments)}})
        .model_dump_json()
        .encode()
    )


def add_message_request(thread_id: str, text: str, attachments: list[str] | None = None) -> bytes:
    """``threads.add_user_message``."""
    return (
        ThreadsAddUserMessageReq.model_validate(
            {"params": {"thread_id": thread_id, "input": message_input(text, attachments)}}
        )
        .model_dump_json()
        .encode()
    )


async def upload_attachment(
    http: httpx.AsyncClient, token: str, name: str, mime_type: str, content: bytes | None
) -> str:
    """``attachments.create`` then the upload of ``content`` (None: never uploaded); the attachment's id."""
    create = {
        "type": "attachments.create",
        "params": {"name": name, "size": len(content or b""), "mime_type": mime_type},
    }
    reply = await http.post("/chatkit", content=json.dumps(create).encode(), headers=bearer(token))
    assert reply.status_code == 200, reply.text
    attachment_id: str = reply.json()["id"]
    if content is not None:
        upload = await http.post(f"/chatkit/attachments/{attachment_id}/upload", content=content, headers=bearer(token))
        assert upload.status_code == 200, upload.text
    return attachment_id


@dataclass
class SseEvent:
    """One Server-Sent Event of the edge: its id (None for events outside the run's log) and the ChatKit event."""

    id: str | None
    event: ThreadStreamEvent


async def read_sse(reply: httpx.Response) -> AsyncIterator[SseEvent]:
    """The events of an SSE response, as they arrive."""
    event_id: str | None = None
    async for line in reply.aiter_lines():
        if line.startswith("id: "):
            event_id = line[len("id: ") :]
        elif line.startswith("data: "):
            yield SseEvent(event_id, EVENTS.validate_json(line[len("data: ") :]))
            event_id = None


async def stream_events(
    http: httpx.AsyncClient, token: str, body: bytes, *, until: Callable[[ThreadStreamEvent], bool] | None = None
) -> list[ThreadStreamEvent]:
    """POST a streaming ChatKit request and parse every SSE event with the SDK's type (up to the
    first that ``until`` accepts: a stream that waits for a person stays open for minutes)."""
    events: list[ThreadStreamEvent] = []
    async with http.stream("POST", "/chatkit", content=body, headers=bearer(token)) as reply:
        assert reply.status_code == 200, (await reply.aread()).decode()
        assert reply.headers["content-type"].startswith("text/event-stream")
        async for line in reply.aiter_lines():
            if line.startswith("data: "):
                events.append(EVENTS.validate_json(line[len("data: ") :]))
                if until is not None and until(events[-1]):
                    break
    return events


def escalated(event: ThreadStreamEvent) -> bool:
    """The notice that the conversation now waits for a person."""
    return (
        event.type == "thread.item.done"
        and event.item.type == "task"
        and "A person from our team" in (event.item.task.title or "")  # type: ignore[union-attr]
    )


async def post_json(http: httpx.AsyncClient, token: str, body: Any) -> httpx.Response:
    """POST a non-streaming ChatKit request (a model or raw bytes)."""
    content = body if isinstance(body, bytes) else body.model_dump_json().encode()
    return await http.post("/chatkit", content=content, headers=bearer(token))


def assistant_text(events: list[ThreadStreamEvent]) -> str:
    """The text of the finished assistant messages."""
    return "".join(
        c.text
        for e in events
        if e.type == "thread.item.done" and e.item.type == "assistant_message"
        for c in e.item.content  # type: ignore[union-attr]
    )


async def thread_messages(http: httpx.AsyncClient, token: str, thread_id: str) -> list[tuple[str, str]]:
    """The thread's messages as a reload shows them: (type, text), oldest first."""
    request = ItemsListReq.model_validate({"params": {"thread_id": thread_id, "order": "asc", "limit": 100}})
    reply = await post_json(http, token, request)
    assert reply.status_code == 200, reply.text
    return [
        (i["type"], " ".join(c.get("text", "") for c in i["content"]))
        for i in reply.json()["data"]
        if i["type"] in ("user_message", "assistant_message")
    ]


async def read_until_text(events: AsyncIterator[SseEvent], containing: str) -> list[SseEvent]:
    """Read a stream until the answer's streamed text contains ``containing``; the events read."""
    seen: list[SseEvent] = []
    text = ""
    async for sse in events:
        seen.append(sse)
        event = sse.event
        if event.type == "thread.item.updated" and event.update.type == "assistant_message.content_part.text_delta":  # type: ignore[union-attr]
            text += event.update.delta  # type: ignore[union-attr]
            if containing in text:
                return seen
    raise AssertionError(f"the stream ended before {containing!r}")


# -- long answers, joined from another edge --------------------------------------------------

LONG = "count to 3000"  # about 1,000 deltas at 5 ms with the offline model: several seconds of answer


async def new_thread(http: httpx.AsyncClient, token: str) -> str:
    """A thread with one answered message; its id."""
    events = await stream_events(http, token, create_request("hi"))
    return events[0].thread.id  # type: ignore[union-attr]


async def drain(events: AsyncIterator[SseEvent]) -> list[SseEvent]:
    """Every remaining event of a stream."""
    return [sse async for sse in events]


async def answering(
    client: httpx.AsyncClient, token: str, thread_id: str, text: str = LONG, *, until: str = "Counting to 3000: 1 2 3"
) -> asyncio.Task[list[SseEvent]]:
    """Send a message and read its answer's stream until ``until`` shows; the task returned reads the
    rest (its result: every event of the stream). Raises what the stream raised before that point."""
    started = asyncio.Event()

    async def read() -> list[SseEvent]:
        async with client.stream(
            "POST", "/chatkit", content=add_message_request(thread_id, text), headers=bearer(token)
        ) as reply:
            events = read_sse(reply)
            seen = await read_until_text(events, until)
            started.set()
            return seen + await drain(events)

    task = asyncio.create_task(read())
    waiting = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if not started.is_set():
        await task  # it ended before the answer started: its error (or the stream that ended early)
        raise AssertionError(f"the answer ended before {until!r} showed")
    return task


async def two_open_streams(
    http_a: httpx.AsyncClient, http_b: httpx.AsyncClient, token: str, thread_id: str
) -> tuple[asyncio.Task[list[SseEvent]], asyncio.Task[list[SseEvent]]]:
    """A long answer's own stream through ``http_a`` and a stream joined through ``http_b``, both
    reading (the joiner is following live when this returns)."""
    own = await answering(http_a, token, thread_id)

    async def joined() -> list[SseEvent]:
        async with http_b.stream("GET", f"/chatkit/threads/{thread_id}/stream", headers=bearer(token)) as reply:
            assert reply.status_code == 200, (await reply.aread()).decode()
            return await drain(read_sse(reply))

    tasks = (own, asyncio.create_task(joined()))
    await asyncio.sleep(0.3)  # the joiner is following live
    return tasks
