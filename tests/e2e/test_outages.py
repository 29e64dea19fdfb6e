"""Never a 5xx, never a lost word: the whole stack under load while its Postgres or its Redis goes away.

One ``switchboard up`` runs on a Postgres cluster and a redis-server that these tests own (the
machine's servers are never touched). Twenty users keep sending ChatKit messages (answered by
the offline model) and reading their conversations over HTTP while

- Redis is killed with SIGKILL and started again, empty, on the same port;
- Redis hangs (SIGSTOP) with its cache in memory, then resumes (SIGCONT) with that cache now stale;
- Postgres is stopped for 8 s and started again.

Postgres is stopped with ``pg_ctl stop -m fast``, not frozen with SIGSTOP: a fast stop is what a
restart or a fail-over does to the services. Their pooled connections are cut mid-query and new
ones are refused, so the stack has to turn those failures into 503s and then notice that every
pooled connection is dead and open new ones. A frozen server would only test how long a request
waits before it gives up.

Every reply is counted. A reply is 200, or 503 with ``Retry-After`` (Postgres down); a dropped
connection or any other 5xx fails the test. A write counts as acknowledged when its stream echoed
the user's message, or ended without an error after the assistant's message: each one must be
read back through the edge afterwards.

Two of the Postgres tests are expected failures, each naming the defect it shows; they run in
full, and the strict one turns into a failure as soon as its defect is fixed (then drop the mark).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psycopg
import pytest
from chatkit.types import ItemsListReq

from switchboard.migrate import apply_migrations
from tests.conftest import PrivateRedis, free_port
from tests.e2e.conftest import (
    EVENTS,
    Stack,
    add_message_request,
    bearer,
    create_request,
    new_user,
    stack_ports,
    start_stack,
)

USERS = 20
TURNS_PER_CONVERSATION = 3  # then the user starts another conversation: many threads to check
HIDDEN_TYPES = ("hidden_context_item", "sdk_hidden_context")
PG_OUTAGE_SECONDS = 8.0
# A message's stream must end within this (a queued message waits at most for a stale run's lease
# to run out); the client then cuts it, counts it as NEVER_ENDED and starts another conversation.
STREAM_END_SECONDS = 20.0
NEVER_ENDED = -1
REDIS_OUTAGE_SECONDS = 4.0
# After Postgres is back: the edge answers 200 again within this, and every thread answers a new
# message within this (a run whose end could not be recorded holds its thread until its 10 s lease
# runs out and a replica marks it interrupted).
PG_RECOVERY_SECONDS = 5.0
THREAD_RECOVERY_SECONDS = 25.0


class PrivatePostgres:
    """A Postgres cluster this module owns, on a TCP port, that it may stop and start again.

    pgserver (the embedded Postgres of ``make run``) creates the cluster and its permissions (a
    system user of its own when running as root); its ``pg_ctl`` then starts and stops it. The
    stack reaches it over TCP, as a deployment does (with a Unix socket, a stopped server raises
    FileNotFoundError, which the services do not map to UNAVAILABLE: every request is a 500).
    """

    def __init__(self, root: Path, port: int) -> None:
        import pgserver
        from pgserver._commands import POSTGRES_BIN_PATH

        self.pgdata = root / "pgdata"
        self.port = port
        self.server_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self.url = f"postgresql://postgres@127.0.0.1:{port}/switchboard"
        self._pg_ctl = str(POSTGRES_BIN_PATH / "pg_ctl")
        server = pgserver.get_server(self.pgdata, cleanup_mode=None)  # type: ignore[attr-defined]
        self._system_user: str | None = server.system_user
        self._run("-w", "-m", "fast", "stop")  # pgserver started it on a Unix socket only

    def start(self) -> None:
        """Start the server on 127.0.0.1:<port> (no Unix socket), returning once it accepts connections."""
        options = f"-h 127.0.0.1 -p {self.port} -k ''"
        self._run("-w", "-t", "60", "-o", options, "-l", str(self.pgdata / "log"), "start")

    def stop(self) -> None:
        """``pg_ctl stop -m fast``: sessions are terminated, new connections refused."""
        self._run("-w", "-m", "fast", "stop")

    @property
    def running(self) -> bool:
        """Whether a postmaster runs on the cluster."""
        return (self.pgdata / "postmaster.pid").exists()

    def _run(self, *args: str) -> None:
        # Output to files or nowhere: a postmaster that inherits a pipe keeps pg_ctl's reader waiting.
        with tempfile.TemporaryFile("w+") as out:
            done = subprocess.run(
                [self._pg_ctl, "-D", str(self.pgdata), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                user=self._system_user,
                timeout=90,
                check=False,
            )
            out.seek(0)
            assert done.returncode == 0, f"pg_ctl {' '.join(args)}: {out.read()}"


@pytest.fixture(scope="module")
def outage_postgres() -> Iterator[PrivatePostgres]:
    """A migrated Postgres these tests stop.

    Its directory is not under pytest's: every pytest session that starts on the machine makes
    ``pytest-of-<user>`` private again, and pg_ctl runs as pgserver's user when we are root.
    """
    root = Path(tempfile.mkdtemp(prefix="switchboard-outage-pg-"))
    try:
        server = PrivatePostgres(root, free_port())
        server.start()
        with psycopg.connect(server.server_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE switchboard")
        apply_migrations(server.url)
        yield server
        if server.running:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def outage_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    """A Redis these tests kill and freeze."""
    server = PrivateRedis(tmp_path_factory.mktemp("outage-redis"), free_port())
    server.start()
    yield server
    server.stop()


@dataclass
class RunningStack:
    """The stack, and everything its processes printed since it came up (read as it comes, so a
    burst of warnings during an outage never fills the pipe and blocks a service)."""

    stack: Stack
    output: list[str]

    def printed_since(self, mark: int) -> str:
        """What the stack printed after line ``mark``."""
        return "".join(self.output[mark:])


@pytest.fixture(scope="module")
def outage_stack(
    tmp_path_factory: pytest.TempPathFactory, outage_postgres: PrivatePostgres, outage_redis: PrivateRedis
) -> Iterator[RunningStack]:
    """``switchboard up`` on the servers these tests stop."""
    stack = start_stack(tmp_path_factory.mktemp("outage-stack"), stack_ports(), outage_postgres.url, outage_redis.url)
    output = list(stack.output)
    stdout = stack.process.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: output.extend(stdout), name="stack-output", daemon=True)
    reader.start()
    yield RunningStack(stack, output)
    if outage_redis.proc is None:
        outage_redis.start()
    if not outage_postgres.running:
        outage_postgres.start()
    stack.process.send_signal(signal.SIGINT)
    stack.process.wait(timeout=60)
    reader.join(timeout=10)
    assert stack.process.returncode == 0, "".join(output[-50:])


@pytest.fixture
async def outage_http(outage_stack: RunningStack) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=4 * USERS, max_keepalive_connections=4 * USERS)
    async with httpx.AsyncClient(base_url=outage_stack.stack.edge, timeout=30, limits=limits) as client:
        yield client


@pytest.fixture
async def direct_db(outage_postgres: PrivatePostgres) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own to the stack's database."""
    connection = await asyncpg.connect(outage_postgres.url)
    yield connection
    await connection.close()


# -- the load -------------------------------------------------------------------------------


@dataclass
class Reply:
    """One HTTP exchange: what the edge answered (0: the connection failed; NEVER_ENDED: a 200 stream
    that was still open after ``STREAM_END_SECONDS``)."""

    kind: str  # "send" (a message) or "read"
    status: int
    retry_after: bool
    at: float  # time.monotonic() of the answer
    detail: str = ""


@dataclass
class Conversation:
    """A thread of one user, and the items the edge acknowledged in it: id -> (type, text)."""

    thread_id: str
    turns: int = 0
    acknowledged: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass
class Participant:
    """A user of the load."""

    user_id: str
    token: str
    conversations: list[Conversation] = field(default_factory=list)


def _text(item: Any) -> str:
    return "".join(getattr(part, "text", "") for part in item.content)


class Load:
    """``USERS`` users, each sending a message and then reading, over and over, until stopped."""

    def __init__(self, http: httpx.AsyncClient, stack: Stack) -> None:
        self.http = http
        self.participants = [Participant(user, stack.token(user)) for user in (new_user() for _ in range(USERS))]
        self.replies: list[Reply] = []
        self.error_events: list[str] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._stop.clear()
        self._tasks = [
            asyncio.create_task(loop(p), name=f"{loop.__name__}-{p.user_id}")
            for p in self.participants
            for loop in (self._sender, self._reader)
        ]

    async def stop(self) -> None:
        """Stop; return once every request in flight has ended (a stream ends, or is cut and
        counted after ``STREAM_END_SECONDS``)."""
        self._stop.set()
        await asyncio.gather(*self._tasks)

    @property
    def conversations(self) -> list[tuple[Participant, Conversation]]:
        return [(p, c) for p in self.participants for c in p.conversations]

    def statuses(self, kind: str | None = None, *, since: float = 0.0, until: float = float("inf")) -> Counter[int]:
        """HTTP statuses of the replies (of one kind) answered in [since, until)."""
        return Counter(r.status for r in self.replies if (kind is None or r.kind == kind) and since <= r.at < until)

    def acknowledged_writes(self) -> int:
        return sum(len(c.acknowledged) for _, c in self.conversations)

    async def _sender(self, participant: Participant) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            sent = await self._send(participant, f"note {n} from {participant.user_id}")
            # A client backs off a little after a refusal (less than Retry-After, to see the recovery).
            await asyncio.sleep(0.05 if sent else 0.2)

    async def _reader(self, participant: Participant) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            read = await self._read(participant, n)
            await asyncio.sleep(0.3 if read else 0.5)

    def _record(self, kind: str, status: int, headers: httpx.Headers | None, detail: str = "") -> None:
        retry_after = headers is not None and "retry-after" in headers
        self.replies.append(Reply(kind, status, retry_after, time.monotonic(), detail))

    async def _send(self, participant: Participant, text: str) -> bool:
        current = participant.conversations[-1] if participant.conversations else None
        if current is None or current.turns >= TURNS_PER_CONVERSATION:
            current = None
            body = create_request(text)
        else:
            body = add_message_request(current.thread_id, text)
        events = []
        try:
            async with (
                asyncio.timeout(STREAM_END_SECONDS),
                self.http.stream("POST", "/chatkit", content=body, headers=bearer(participant.token)) as reply,
            ):
                if reply.status_code != 200:
                    detail = (await reply.aread()).decode(errors="replace")[:300]
                    self._record("send", reply.status_code, reply.headers, detail)
                    return False
                headers = reply.headers
                async for line in reply.aiter_lines():
                    if line.startswith("data: "):
                        events.append(EVENTS.validate_json(line[len("data: ") :]))
        except httpx.HTTPError as error:
            self._record("send", 0, None, f"{type(error).__name__}: {error}")
            return False
        except TimeoutError:
            where = current.thread_id if current else "a new thread"
            last = [e.type for e in events[-3:]]
            self._record("send", NEVER_ENDED, None, f"{where}: no end after {STREAM_END_SECONDS:.0f} s, last {last}")
            if current is not None:
                current.turns = TURNS_PER_CONVERSATION  # the user gives up on this conversation
            return False
        self._record("send", 200, headers)
        if current is None:
            created = [e for e in events if e.type == "thread.created"]
            assert created, f"a 200 threads.create stream without thread.created: {events}"
            current = Conversation(created[0].thread.id)
            participant.conversations.append(current)
        current.turns += 1
        errors = [e.message or "" for e in events if e.type == "error"]
        self.error_events.extend(errors)
        for event in events:
            if event.type != "thread.item.done":
                continue
            item = event.item
            # The echo comes after the message is saved; the answer's done event after the answer is.
            if item.type == "user_message" or (item.type == "assistant_message" and not errors):
                current.acknowledged[item.id] = (item.type, _text(item))
        return not errors

    async def _read(self, participant: Participant, n: int) -> bool:
        current = participant.conversations[-1] if participant.conversations else None
        headers = bearer(participant.token)
        try:
            if current is None or n % 3 == 0:
                reply = await self.http.get("/api/conversations", params={"limit": 20}, headers=headers)
            elif n % 3 == 1:
                reply = await self.http.get(f"/api/conversations/{current.thread_id}/messages", headers=headers)
            else:
                request = ItemsListReq.model_validate({"params": {"thread_id": current.thread_id, "limit": 50}})
                reply = await self.http.post("/chatkit", content=request.model_dump_json(), headers=headers)
        except httpx.HTTPError as error:
            self._record("read", 0, None, f"{type(error).__name__}: {error}")
            return False
        self._record("read", reply.status_code, reply.headers, "" if reply.status_code == 200 else reply.text[:300])
        return reply.status_code == 200


@contextlib.asynccontextmanager
async def running(load: Load) -> AsyncIterator[Load]:
    load.start()
    try:
        yield load
    finally:
        await load.stop()


# -- checks ---------------------------------------------------------------------------------


async def edge_items(http: httpx.AsyncClient, token: str, thread_id: str) -> list[dict[str, Any]]:
    """Every item of a thread as the edge serves it (REST, oldest first, all pages)."""
    items: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100, **({"after": after} if after else {})}
        reply = await http.get(f"/api/conversations/{thread_id}/messages", params=params, headers=bearer(token))
        assert reply.status_code == 200, f"{thread_id}: {reply.status_code} {reply.text}"
        page = reply.json()
        items.extend(page["data"])
        if not page["has_more"]:
            return items
        after = page["after"]


async def stored_items(db: asyncpg.Connection, thread_id: str) -> list[dict[str, Any]]:
    """Every visible item of a thread as Postgres has it, in the edge's order."""
    rows = await db.fetch(
        "SELECT data::text AS data FROM thread_items WHERE thread_id = $1 AND type <> ALL($2::text[])"
        ' ORDER BY created_at, id COLLATE "C"',
        thread_id,
        list(HIDDEN_TYPES),
    )
    return [json.loads(row["data"]) for row in rows]


def _item_text(item: dict[str, Any]) -> str:
    return "".join(part.get("text", "") for part in item.get("content", []))


async def lost_writes(http: httpx.AsyncClient, load: Load) -> list[str]:
    """The acknowledged items that a read through the edge does not show (as they were acknowledged)."""
    lost: list[str] = []
    for participant, conversation in load.conversations:
        shown = {
            i["id"]: (i["type"], _item_text(i))
            for i in await edge_items(http, participant.token, conversation.thread_id)
        }
        for item_id, (kind, text) in conversation.acknowledged.items():
            if shown.get(item_id) != (kind, text):
                lost.append(f"{conversation.thread_id}/{item_id} {kind} {text[:40]!r}: shown {shown.get(item_id)!r}")
    return lost


async def stale_reads(http: httpx.AsyncClient, db: asyncpg.Connection, load: Load) -> list[str]:
    """The threads whose read through the edge differs from what Postgres has."""
    stale: list[str] = []
    for participant, conversation in load.conversations:
        served = await edge_items(http, participant.token, conversation.thread_id)
        stored = await stored_items(db, conversation.thread_id)
        if served != stored:
            stale.append(
                f"{conversation.thread_id}: edge {[i['id'] for i in served]} postgres {[i['id'] for i in stored]}"
            )
    return stale


async def answers_a_new_message(http: httpx.AsyncClient, token: str, thread_id: str, within: float) -> str:
    """Send the thread a message, retrying 503s, and read the answer: "" or what went wrong."""
    body = add_message_request(thread_id, "are you still there?")
    try:
        async with asyncio.timeout(within):
            while True:
                async with http.stream("POST", "/chatkit", content=body, headers=bearer(token)) as reply:
                    if reply.status_code == 503:
                        await reply.aread()
                        await asyncio.sleep(0.2)
                        continue
                    if reply.status_code != 200:
                        return f"HTTP {reply.status_code}: {(await reply.aread())[:200]!r}"
                    events = [
                        EVENTS.validate_json(line[len("data: ") :])
                        async for line in reply.aiter_lines()
                        if line.startswith("data: ")
                    ]
                break
    except TimeoutError:
        return f"no answer within {within:.0f} s"
    errors = [e.message for e in events if e.type == "error"]
    if errors:
        return f"error events {errors}"
    if not any(e.type == "thread.item.done" and e.item.type == "assistant_message" for e in events):
        return "the stream ended without an answer"
    return ""


async def threads_that_do_not_answer(http: httpx.AsyncClient, load: Load, *, within: float) -> tuple[list[str], float]:
    """Send every thread of the load a new message at once: the threads that did not answer it
    (and why), and the seconds until the last one was answered."""
    started = time.monotonic()
    outcomes = await asyncio.gather(
        *(answers_a_new_message(http, p.token, c.thread_id, within) for p, c in load.conversations)
    )
    took = time.monotonic() - started
    return [f"{c.thread_id}: {why}" for why, (_, c) in zip(outcomes, load.conversations, strict=True) if why], took


async def active_runs(db: asyncpg.Connection, load: Load) -> list[str]:
    """The load's runs still queued or running (none should be, once every stream has ended)."""
    rows = await db.fetch(
        "SELECT id, thread_id, status, holder, lease_expires_at FROM runs"
        " WHERE user_id = ANY($1::text[]) AND status IN ('queued', 'running') ORDER BY created_at",
        [p.user_id for p in load.participants],
    )
    return [f"{r['id']} of {r['thread_id']}: {r['status']}, lease until {r['lease_expires_at']}" for r in rows]


def failed_replies(load: Load, allowed: set[int]) -> list[str]:
    """Replies with a status outside ``allowed`` (0: the connection failed; -1: the stream never
    ended), and 503s that did not say when to retry."""
    problems = []
    bad = [r for r in load.replies if r.status not in allowed]
    for status, count in sorted(Counter(r.status for r in bad).items()):
        examples = [r.detail for r in bad if r.status == status][:2]
        problems.append(f"{count} replies with status {status}, e.g. {examples}")
    unannounced = [r for r in load.replies if r.status == 503 and not r.retry_after]
    if unannounced:
        problems.append(f"{len(unannounced)} 503s without Retry-After, e.g. {[r.detail for r in unannounced[:2]]}")
    return problems


def unexpected_errors(printed: str) -> list[str]:
    """The services' "unexpected error" log lines, each with the first exception of its traceback."""
    lines = printed.splitlines()
    found = []
    for at, line in enumerate(lines):
        if "unexpected error" in line:
            cause = next((x for x in lines[at + 1 :] if x and not x.startswith((" ", "Traceback"))), "")
            found.append(f"{line[24:]} <- {cause}")
    return found


def report(name: str, load: Load, **figures: object) -> None:
    """Print what a test observed (shown with ``pytest -s``, and in the report of a failure)."""
    print(
        f"\n{name}: {len(load.replies)} requests {dict(sorted(load.statuses().items()))}"
        f" (sends {dict(sorted(load.statuses('send').items()))}, reads {dict(sorted(load.statuses('read').items()))}),"
        f" {len(load.conversations)} threads, {load.acknowledged_writes()} acknowledged writes,"
        f" {len(load.error_events)} error events; " + ", ".join(f"{k}: {v}" for k, v in figures.items())
    )


def problems_of(**found: list[str]) -> str:
    """The problems found, a few of each kind."""
    return "\n".join(f"{kind} ({len(items)}): {items[:3]}" for kind, items in found.items() if items)


# -- the tests ------------------------------------------------------------------------------


@pytest.mark.timeout(120)
async def test_redis_killed_under_load_fails_no_request_loses_no_write_and_leaves_no_thread_stuck(
    outage_stack: RunningStack,
    outage_redis: PrivateRedis,
    outage_http: httpx.AsyncClient,
    direct_db: asyncpg.Connection,
) -> None:
    load = Load(outage_http, outage_stack.stack)
    async with running(load):
        await asyncio.sleep(3)  # threads are created, answered and cached
        assert outage_redis.proc is not None
        os.kill(outage_redis.proc.pid, signal.SIGKILL)
        outage_redis.proc.wait()
        outage_redis.proc = None
        killed = time.monotonic()
        await asyncio.sleep(REDIS_OUTAGE_SECONDS)
        await asyncio.to_thread(outage_redis.start)  # the same port, empty
        back = time.monotonic()
        await asyncio.sleep(3)  # writes and reads with Redis back
    during = load.statuses(since=killed, until=back)
    failed = failed_replies(load, {200})
    stale = await stale_reads(outage_http, direct_db, load)
    lost = await lost_writes(outage_http, load)
    stuck, took = await threads_that_do_not_answer(outage_http, load, within=THREAD_RECOVERY_SECONDS)
    active = await active_runs(direct_db, load)
    report("Redis SIGKILL", load, **{"while down": dict(during), "every thread answered again in (s)": round(took, 1)})
    assert sum(during.values()) >= 2 * USERS, f"too little load while Redis was down: {during}"
    assert not (failed or load.error_events or stale or lost or stuck or active), problems_of(
        failed=failed, error_events=load.error_events, stale=stale, lost=lost, stuck=stuck, active_runs=active
    )


@pytest.mark.timeout(120)
async def test_redis_hung_under_load_fails_no_request_loses_no_write_and_serves_no_stale_read_after(
    outage_stack: RunningStack,
    outage_redis: PrivateRedis,
    outage_http: httpx.AsyncClient,
    direct_db: asyncpg.Connection,
) -> None:
    load = Load(outage_http, outage_stack.stack)
    assert outage_redis.proc is not None
    pid = outage_redis.proc.pid
    async with running(load):
        await asyncio.sleep(3)  # threads are created, answered and cached
        os.kill(pid, signal.SIGSTOP)  # Redis hangs, keeping a cache that the writes below make stale
        hung = time.monotonic()
        try:
            await asyncio.sleep(REDIS_OUTAGE_SECONDS)
        finally:
            os.kill(pid, signal.SIGCONT)
        resumed = time.monotonic()
        await asyncio.sleep(3)  # writes and reads with Redis back
    during = load.statuses(since=hung, until=resumed)
    failed = failed_replies(load, {200})
    # Right away, past the cache's breaker cool-down, and after one more message to every thread.
    stale = await stale_reads(outage_http, direct_db, load)
    await asyncio.sleep(1.5)
    stale += await stale_reads(outage_http, direct_db, load)
    lost = await lost_writes(outage_http, load)
    stuck, took = await threads_that_do_not_answer(outage_http, load, within=THREAD_RECOVERY_SECONDS)
    stale += await stale_reads(outage_http, direct_db, load)
    active = await active_runs(direct_db, load)
    report("Redis SIGSTOP", load, **{"while hung": dict(during), "every thread answered again in (s)": round(took, 1)})
    assert sum(during.values()) >= 2 * USERS, f"too little load while Redis hung: {during}"
    assert not (failed or load.error_events or stale or lost or stuck or active), problems_of(
        failed=failed, error_events=load.error_events, stale=stale, lost=lost, stuck=stuck, active_runs=active
    )


@dataclass
class PostgresOutage:
    """What the load saw while Postgres was stopped for ``PG_OUTAGE_SECONDS`` (shared by the tests below)."""

    load: Load
    stopped: float
    back: float
    printed: str  # what the stack printed meanwhile
    lost: list[str]
    stale: list[str]

    @property
    def during(self) -> Counter[int]:
        return self.load.statuses(since=self.stopped, until=self.back)


@pytest.fixture(scope="module")
async def postgres_outage(outage_stack: RunningStack, outage_postgres: PrivatePostgres) -> PostgresOutage:
    """Twenty users under load; ``pg_ctl stop -m fast``; 8 s later ``pg_ctl start``; 6 s more of load."""
    limits = httpx.Limits(max_connections=4 * USERS, max_keepalive_connections=4 * USERS)
    async with httpx.AsyncClient(base_url=outage_stack.stack.edge, timeout=30, limits=limits) as http:
        load = Load(http, outage_stack.stack)
        mark = len(outage_stack.output)
        async with running(load):
            await asyncio.sleep(3)
            await asyncio.to_thread(outage_postgres.stop)
            stopped = time.monotonic()
            await asyncio.sleep(PG_OUTAGE_SECONDS)
            await asyncio.to_thread(outage_postgres.start)
            back = time.monotonic()
            await asyncio.sleep(6)  # the stack finds Postgres again under the same load
        lost = await lost_writes(http, load)
        db = await asyncpg.connect(outage_postgres.url)
        try:
            stale = await stale_reads(http, db, load)
        finally:
            await db.close()
    outage = PostgresOutage(load, stopped, back, outage_stack.printed_since(mark), lost, stale)
    refused = [r.at for r in load.replies if r.status == 503]
    report(
        "Postgres pg_ctl stop -m fast",
        load,
        **{
            "while down": dict(outage.during),
            "last 503 after the restart (s)": round(max(refused, default=back) - back, 2),
            "services restarted by up": outage.printed.count("exited with code"),
        },
    )
    return outage


@pytest.mark.timeout(120)
async def test_postgres_stopped_for_eight_seconds_under_load_answers_503_with_retry_after_and_recovers_at_once(
    postgres_outage: PostgresOutage,
) -> None:
    outage = postgres_outage
    refused = [r for r in outage.load.replies if r.status == 503]
    assert outage.during[503] > 0, f"Postgres was down and nothing was refused: {outage.during}"
    assert all(r.retry_after for r in refused), [r.detail for r in refused if not r.retry_after][:3]
    last_503 = max(r.at for r in refused) - outage.back
    assert last_503 < PG_RECOVERY_SECONDS, f"503s went on {last_503:.1f} s after Postgres came back"
    served_after = outage.load.statuses(since=outage.back + PG_RECOVERY_SECONDS)
    assert served_after[200] >= 2 * USERS, f"the load was not served again: {served_after}"


async def test_postgres_stopped_under_load_loses_no_acknowledged_write_and_reads_equal_postgres_after(
    postgres_outage: PostgresOutage,
) -> None:
    outage = postgres_outage
    assert outage.load.acknowledged_writes() >= 5 * USERS
    assert not outage.lost, f"{len(outage.lost)} of {outage.load.acknowledged_writes()} lost: {outage.lost[:5]}"
    assert not outage.stale, f"{len(outage.stale)} reads differ from Postgres: {outage.stale[:3]}"


async def test_postgres_stopped_under_load_never_answers_500_or_another_5xx(postgres_outage: PostgresOutage) -> None:
    outage = postgres_outage
    five_hundreds = [r for r in outage.load.replies if r.status >= 500 and r.status != 503]
    cut = [r for r in outage.load.replies if r.status == 0]
    assert not (five_hundreds or cut), problems_of(
        five_hundreds=[f"{r.kind} {r.status} {r.detail}" for r in five_hundreds],
        connections_failed=[r.detail for r in cut],
        unexpected_errors=unexpected_errors(outage.printed),
    )


@pytest.mark.timeout(120)
async def test_after_postgres_returns_every_thread_answers_a_new_message_and_no_run_stays_active(
    postgres_outage: PostgresOutage, outage_postgres: PrivatePostgres, outage_http: httpx.AsyncClient
) -> None:
    load = postgres_outage.load
    never_ended = [r.detail for r in load.replies if r.status == NEVER_ENDED]
    stuck, took = await threads_that_do_not_answer(outage_http, load, within=THREAD_RECOVERY_SECONDS)
    db = await asyncpg.connect(outage_postgres.url)
    try:
        active = await active_runs(db, load)
    finally:
        await db.close()
    print(f"\nafter Postgres returned: every thread answered again in {took:.1f} s; {len(stuck)} did not")
    assert not (never_ended or stuck or active), problems_of(
        streams_never_ended=never_ended, threads_not_answering=stuck, active_runs=active
    )
