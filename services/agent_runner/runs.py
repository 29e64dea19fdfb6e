"""Durable runs: the ``runs`` table (who answers a thread), the run's event log, and the
signals between replicas.

- ``RunRepository``: Postgres is the truth. At most one run per thread is
  ``running`` (a partial unique index), so claims hold across replicas and when
  Redis is down. A replica holds its active runs under a lease it renews with
  one statement per heartbeat; any replica marks runs whose lease ran out
  ``interrupted``.
- ``RunLog``: every event of a run is appended to a Redis stream
  (``chat:user:{<user>}:run:<run_id>:log``, entry ids ``0-<seq>``) before a
  client sees it, so any replica can replay and follow it. Losing Redis loses
  the log, never the run: the run goes on and streams to its own client.
- ``RunSignals``: cancels and "a run ended" wake-ups over one pub/sub channel.
  They are hints that make things fast; the heartbeat reads cancel requests
  from Postgres and queued runs poll, so nothing depends on a message arriving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from switchboard.errors import FailedPrecondition, InvalidArgument, NotFound
from switchboard.pages import Page, make_page
from switchboard.redis_client import open_pubsub
from switchboard.sql import Queries
from switchboard.streams import Attempt, reconnecting

log = logging.getLogger(__name__)

QUERIES = Queries.load(Path(__file__).parent / "queries")
SIGNAL_CHANNEL = "switchboard:agent_runner:runs"
ACTIVE = frozenset({"queued", "running"})
WAITING = "waiting_approval"
TERMINAL = frozenset({"completed", "cancelled", "failed", "interrupted"})
MAX_RUN_PAGE = 100


def replica_id() -> str:
    """A name for this process that no other replica shares (host, pid, random)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A row of ``runs``."""

    id: str
    thread_id: str
    user_id: str
    org_id: str | None
    session_id: str | None
    agent_id: str
    status: str
    input_item_id: str
    error: str
    holder: str | None
    lease_expires_at: datetime | None
    cancel_requested: bool
    last_seq: int
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    approval: str | None = None  # the pending (or last) approval's JSON
    state: str | None = None  # the paused run (the Agents SDK's RunState), only while waiting

    @property
    def active(self) -> bool:
        """Queued or running."""
        return self.status in ACTIVE


def _record(row: Any) -> RunRecord:
    keys = set(row.keys())
    return RunRecord(**{name: row[name] for name in RunRecord.__slots__ if name in keys})


class RunRepository:
    """The ``runs`` table.

    Args:
        pool: Postgres.
        holder: This replica's name (``replica_id()``).
        lease_seconds: How long a lease lasts without a heartbeat.
    """

    def __init__(self, pool: asyncpg.Pool, *, holder: str, lease_seconds: float) -> None:
        self._pool = pool
        self.holder = holder
        self.lease_seconds = lease_seconds

    async def insert(
        self,
        *,
        run_id: str,
        thread_id: str,
        user_id: str,
        org_id: str | None,
        session_id: str | None,
        agent_id: str,
        input_item_id: str,
        queue: bool,
    ) -> RunRecord | None:
        """Register a run held by this replica.

        With ``queue`` the run is ``running`` when the thread is free, else
        ``queued``. Without it the run must start now: None when the thread is busy.
        """
        args = (run_id, thread_id, user_id, org_id, session_id, agent_id, self.holder)
        try:
            row = await self._pool.fetchrow(QUERIES.insert_run, *args, not queue, self.lease_seconds, input_item_id)
        except asyncpg.UniqueViolationError as error:
            if error.constraint_name == "runs_pkey":
                raise InvalidArgument(f"run id {run_id!r} is taken; leave run_id empty to get a new one") from None
            if not queue:
                return None
            row = await self._pool.fetchrow(QUERIES.insert_queued_run, *args, self.lease_seconds, input_item_id)
        return _record(row)

    async def try_start(self, run: RunRecord) -> RunRecord | None:
        """Start a queued run if its turn has come (None: not yet)."""
        try:
            row = await self._pool.fetchrow(QUERIES.start_queued_run, run.id, run.thread_id)
        except asyncpg.UniqueViolationError:
            return None  # another run of the thread started in the same instant
        return _record(row) if row is not None else None

    async def set_session(self, run_id: str, session_id: str) -> None:
        """Name the chat session a run belongs to (known once its thread is loaded)."""
        await self._pool.execute(QUERIES.set_session, run_id, session_id)

    async def finish(self, run_id: str, *, status: str, error: str, last_seq: int) -> RunRecord | None:
        """End an active run (None when it had ended already, e.g. reaped)."""
        row = await self._pool.fetchrow(QUERIES.finish_run, run_id, status, error, last_seq)
        return _record(row) if row is not None else None

    async def delete(self, run_id: str) -> None:
        """Forget a run that never began (its thread was not the caller's)."""
        await self._pool.execute(QUERIES.delete_run, run_id)

    async def pause(self, run_id: str, *, state: str, approval: str, last_seq: int, ttl_seconds: float) -> bool:
        """Park a running run until its approval is decided (False: it was not running any more)."""
        row = await self._pool.fetchrow(QUERIES.pause_run, run_id, state, approval, last_seq, ttl_seconds)
        return row is not None

    async def resume(self, *, thread_id: str, user_id: str, card_id: str) -> RunRecord | None:
        """Take the run waiting on this card (None: no run waits on it).

        Raises:
            FailedPrecondition: another run is answering in the thread.
        """
        try:
            row = await self._pool.fetchrow(
                QUERIES.resume_run, thread_id, user_id, card_id, self.holder, self.lease_seconds
            )
        except asyncpg.UniqueViolationError:
            raise FailedPrecondition("the conversation is answering; decide again when it is done") from None
        return _record(row) if row is not None else None

    async def run_of_card(
        self, *, thread_id: str, card_id: str, user_id: str, operator_org_id: str | None = None
    ) -> RunRecord | None:
        """The run a card belongs to, whatever its state: the user's (or, for an operator, the org's)."""
        row = await self._pool.fetchrow(QUERIES.run_of_card, thread_id, card_id, user_id, operator_org_id)
        return _record(row) if row is not None else None

    async def drop_waiting(self, *, thread_id: str, user_id: str, reason: str) -> list[RunRecord]:
        """End the thread's run waiting for approval (the user moved on)."""
        return [
            _record(row) for row in await self._pool.fetch(QUERIES.drop_waiting_in_thread, thread_id, user_id, reason)
        ]

    async def expire_waiting(self, reason: str) -> list[RunRecord]:
        """End runs whose approval waited past its time (a batch)."""
        return [_record(row) for row in await self._pool.fetch(QUERIES.expire_waiting, reason)]

    async def renew_leases(self, live: list[str]) -> dict[str, bool]:
        """Extend the lease of the active runs this replica holds and still executes (``live``):
        run id -> cancel requested. A run it holds but no longer executes (its end could not be
        recorded, Postgres being down) is left to expire, so the reaper frees its thread."""
        rows = await self._pool.fetch(QUERIES.renew_leases, self.holder, self.lease_seconds, live)
        return {row["id"]: row["cancel_requested"] for row in rows}

    async def reap_expired(self, error: str) -> list[RunRecord]:
        """Mark runs whose lease ran out ``interrupted`` (a batch)."""
        return [_record(row) for row in await self._pool.fetch(QUERIES.reap_expired_runs, error)]

    async def request_cancel(
        self,
        *,
        user_id: str,
        run_id: str | None = None,
        thread_id: str | None = None,
        session_id: str | None = None,
        operator_org_id: str | None = None,
    ) -> list[tuple[str, str | None, str]]:
        """Flag the user's matching active runs as cancelled (and, for an operator naming a session,
        that session's runs in their org): (run id, holder, the run's user) of each."""
        rows = await self._pool.fetch(QUERIES.request_cancel, user_id, run_id, thread_id, session_id, operator_org_id)
        return [(row["id"], row["holder"], row["user_id"]) for row in rows]

    async def set_attending(self, run_id: str) -> None:
        """The run waits for a person: a new message of the user ends it."""
        await self._pool.execute(QUERIES.set_attending, run_id)

    async def stop_attending(self, *, thread_id: str, user_id: str) -> list[tuple[str, str | None]]:
        """Flag the thread's runs that wait for a person as cancelled: (run id, holder) of each."""
        rows = await self._pool.fetch(QUERIES.stop_attending_runs, thread_id, user_id)
        return [(row["id"], row["holder"]) for row in rows]

    async def cancel_answering(self, *, thread_id: str, user_id: str) -> list[tuple[str, str | None]]:
        """Flag the thread's running agent answer as cancelled (not a run waiting for a person)."""
        rows = await self._pool.fetch(QUERIES.cancel_answering_runs, thread_id, user_id)
        return [(row["id"], row["holder"]) for row in rows]

    async def get(self, *, run_id: str, user_id: str, operator_org_id: str | None = None) -> RunRecord:
        """A run of the user (or, for an operator, of their org).

        Raises:
            NotFound: no such run for this caller.
        """
        row = await self._pool.fetchrow(QUERIES.get_run, run_id, user_id, operator_org_id)
        if row is None:
            raise NotFound(f"run {run_id!r} not found")
        return _record(row)

    async def active_in_thread(
        self, *, thread_id: str, user_id: str, operator_org_id: str | None = None
    ) -> RunRecord | None:
        """The thread's running run, else its oldest queued one."""
        row = await self._pool.fetchrow(QUERIES.active_run_of_thread, thread_id, user_id, operator_org_id)
        return _record(row) if row is not None else None

    async def list_for_thread(
        self, *, thread_id: str, user_id: str, operator_org_id: str | None, after: str | None, limit: int
    ) -> Page[RunRecord]:
        """A page of the thread's runs, newest first.

        Raises:
            InvalidArgument: ``after`` is not a run of this thread.
        """
        if after is not None and await self._pool.fetchval(QUERIES.run_exists_in_thread, after, thread_id) is None:
            raise InvalidArgument(f"after {after!r} is not a run of this thread")
        rows = await self._pool.fetch(QUERIES.list_runs, thread_id, user_id, operator_org_id, after, limit + 1)
        return make_page([_record(row) for row in rows], limit, lambda run: run.id)


def run_log_key(user_id: str, run_id: str) -> str:
    """The Redis stream of a run's events (hash-tagged by user, like every key of the user)."""
    return f"chat:user:{{{user_id}}}:run:{run_id}:log"


@dataclass(frozen=True)
class LogEntry:
    """One entry of a run's log: an event (``seq``, JSON) or the end marker (``end`` = final
    status, with an event to show at the end, if any)."""

    seq: int
    event_json: bytes = b""
    end: str = ""


class RunLog:
    """Runs' event logs in Redis streams.

    Args:
        redis: Appends (short timeouts).
        reader: Blocking reads of joiners (a client whose timeout outlasts ``block_ms``).
        max_entries: Entries kept per run (older ones are trimmed).
        ttl_seconds: How long a log is kept after its last append.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        reader: aioredis.Redis,
        *,
        max_entries: int = 20_000,
        ttl_seconds: int = 3600,
    ) -> None:
        self._redis = redis
        self._reader = reader
        self._max_entries = max_entries
        self._ttl = ttl_seconds

    async def append(
        self, user_id: str, run_id: str, events: list[tuple[int, bytes]], *, end: str = "", end_event: bytes = b""
    ) -> None:
        """Append events (and, with ``end``, the end marker after them) in one round trip.

        Events take the ids ``0-<seq>``; the end marker takes a time-based id,
        which sorts after every event id, so the reaper of a dead holder can end a
        log without knowing how far it got. ``end_event`` is an event joiners are
        shown at the end (the reaper's "interrupted" error).

        Raises:
            RedisError, OSError: Redis failed; the caller stops logging this run.
        """
        key = run_log_key(user_id, run_id)
        pipe = self._redis.pipeline(transaction=False)
        for seq, body in events:
            pipe.xadd(key, {"e": body}, id=f"0-{seq}", maxlen=self._max_entries, approximate=True)
        if end:
            fields: dict[str, str | bytes] = {"end": end}
            if end_event:
                fields["e"] = end_event
            pipe.xadd(key, fields)  # type: ignore[arg-type]
        pipe.expire(key, self._ttl)
        await pipe.execute()

    async def read(self, user_id: str, run_id: str, *, after: int, block_ms: int) -> list[LogEntry]:
        """Entries after sequence number ``after``, waiting up to ``block_ms`` for the first."""
        key = run_log_key(user_id, run_id)
        reply: Any = await self._reader.xread({key: f"0-{after}"}, count=500, block=block_ms)
        entries: list[LogEntry] = []
        for _stream, items in reply or []:
            for entry_id, fields in items:
                millis, _, seq = (entry_id.decode() if isinstance(entry_id, bytes) else entry_id).partition("-")
                end = fields.get(b"end")
                if end is not None:
                    entries.append(LogEntry(seq=0, end=end.decode(), event_json=fields.get(b"e", b"")))
                elif millis == "0":
                    entries.append(LogEntry(seq=int(seq), event_json=fields[b"e"]))
        return entries


class RunSignals:
    """Cancels and "a run of this thread ended" messages between replicas.

    Args:
        redis: Publishing (None: this replica alone).
        subscriber: The subscription (a client without a short socket timeout).
        on_cancel: Called with (run id, user id) of a cancel meant for a run here.
        on_ended: Called with the thread id of a run that ended anywhere.
    """

    def __init__(
        self,
        redis: aioredis.Redis | None,
        subscriber: aioredis.Redis | None,
        *,
        on_cancel: Callable[[str, str], None],
        on_ended: Callable[[str], None],
    ) -> None:
        self._redis = redis
        self._subscriber = subscriber
        self._on_cancel = on_cancel
        self._on_ended = on_ended
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        """Listen (returns once subscribed, or after 2 s)."""
        if self._subscriber is None:
            return
        self._listener = asyncio.create_task(self._listen(), name="agent_runner-run-signals")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), 2.0)

    async def close(self) -> None:
        """Stop listening."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener

    async def publish_cancel(self, run_id: str, user_id: str) -> None:
        """Ask the replica holding a run to stop it (best effort: the heartbeat also finds it)."""
        await self._publish({"kind": "cancel", "run_id": run_id, "user_id": user_id})

    async def publish_ended(self, thread_id: str) -> None:
        """Tell queued runs of a thread on other replicas that their turn may have come."""
        await self._publish({"kind": "ended", "thread_id": thread_id})

    async def _publish(self, body: dict[str, str]) -> None:
        if self._redis is None:
            return
        try:
            await self._redis.publish(SIGNAL_CHANNEL, json.dumps(body))
        except (RedisError, OSError) as error:
            log.warning("could not signal other replicas (%s); they find out by polling Postgres", error)

    async def _listen(self) -> None:
        subscriber = self._subscriber
        assert subscriber is not None

        async def follow(attempt: Attempt) -> None:
            pubsub = await open_pubsub(subscriber)
            try:
                await pubsub.subscribe(SIGNAL_CHANNEL)
                self._subscribed.set()
                attempt.live()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None:
                        self._dispatch(message.get("data"))
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

        await reconnecting(follow, name="run signal channel", retry_on=(RedisError, OSError))

    def _dispatch(self, data: object) -> None:
        try:
            body = json.loads(data if isinstance(data, (str, bytes)) else "")
            kind = body["kind"]
            if kind == "cancel":
                self._on_cancel(str(body["run_id"]), str(body["user_id"]))
            elif kind == "ended":
                self._on_ended(str(body["thread_id"]))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed run signal: %r", data)
