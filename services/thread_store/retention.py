"""Retention: delete what a policy says is old, in small batches, except what is held.

Threads inactive (``updated_at``) for longer than their org's ``thread_days``
(else the deployment's ``SWITCHBOARD_RETENTION_THREAD_DAYS``) go with their
items, attachments (rows and bytes), finished runs, hot-cache entries (a
tombstone, as a user's delete leaves) and a ``thread.deleted`` change on the
feed, and a ``thread.deleted`` webhook enqueued in the same transaction.
Audit rows (``session_events``) older than ``audit_days`` (else
``SWITCHBOARD_RETENTION_AUDIT_DAYS``) go in batches. 0 keeps forever; a
legal hold on a thread or a user keeps everything of it, its sessions' audit
rows too.

Where it runs (decision): a background task of every thread_store replica,
since thread_store owns threads, items, attachments, the cache and the feed.
A session-level advisory lock lets one replica sweep at a time; each thread
is deleted in its own short transaction, rows locked with SKIP LOCKED and
re-checked (still untouched, not held) under the lock, with rests (below),
so requests never wait on a sweep (Postgres readers never wait on a
delete; writers of *that* thread would, for the one transaction). It also
sweeps session_api's audit rows, which live in the same database, so one
sweeper applies one policy.

How gently (decision): in small chunks, paced by a duty cycle. A thread's
items, then its runs, then its attachments go ``chunk`` (250) rows per
statement, each chunk in primary-key order from where the last one stopped (an
index range scan that starts past the rows this transaction already deleted,
instead of stepping over their dead tuples again), all in the thread's one
transaction: a reader sees the whole thread until the commit and nothing after
it, never half of it, and a sweep that fails midway leaves the whole thread.
Audit events go ``chunk`` rows per transaction. After each chunk the sweep
rests so that it works at most ``duty_cycle`` (0.05) of the time: having worked
w seconds since it last rested (its own code and its waits on Postgres alike),
it rests w x (1 - duty_cycle) / duty_cycle, at least ``pause_seconds``. So it
keeps a Postgres backend and its own event loop busy about 5% of the time, in
bursts of one chunk (a few milliseconds), and when the machine is busy its
chunks take longer and it rests longer by itself. The price: a sweep takes
about 1 / duty_cycle times its work (100,000 items: under a minute instead of
about 2 s), a thread's transaction lasts about its items / ``chunk`` x chunk
time / duty_cycle (a few tenths of a second for 1,000 items), and a write to a
thread being swept, which has been untouched for the whole retention, waits for
it and then finds the thread gone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
from prometheus_client import Counter, Histogram

from services.thread_store.cache import ThreadCache
from services.thread_store.feed import ChangeFeed
from switchboard.config import env_float, env_int
from switchboard.errors import InvalidArgument, NotFound
from switchboard.principal import MAX_ID_LENGTH
from switchboard.sql import Queries

log = logging.getLogger(__name__)

SWEEP_LOCK = 0x5357_5245_5445_4E  # pg advisory lock key: one replica sweeps at a time
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_CHUNK = 10_000
MAX_PAUSE_SECONDS = 60.0

DELETED = Counter(
    "switchboard_retention_deleted_total",
    "What retention sweeps deleted: threads, items, attachments, attachment_bytes, runs, audit_events.",
    ["kind"],
)
RESTED = Counter(
    "switchboard_retention_rest_seconds_total",
    "How long retention sweeps rested between chunks to keep to their duty cycle.",
)
SWEEP_SECONDS = Histogram(
    "switchboard_retention_sweep_seconds",
    "How long one retention sweep took.",
    buckets=(0.1, 1, 5, 30, 60, 300, 900, 3600),
)


@dataclass(frozen=True)
class RetentionConfig:
    """The deployment's retention.

    Attributes:
        thread_days: Delete threads inactive this long (0: keep forever), unless their org says otherwise.
        audit_days: Delete audit events older than this (0: keep forever), unless their org says otherwise.
        every_seconds: How often a replica tries to sweep (0: never; ``switchboard retention sweep`` still can).
        batch: Threads looked up per query.
        chunk: Rows deleted per statement: a thread's items (or runs) per statement of its
            transaction, audit events per transaction.
        duty_cycle: The most of the time the sweep works (0 < duty_cycle <= 1): after each chunk
            it rests (1 - duty_cycle) / duty_cycle times as long as it worked since it last rested.
        pause_seconds: The least it rests after a chunk.
    """

    thread_days: int = 0
    audit_days: int = 0
    every_seconds: float = 3600.0
    batch: int = 100
    chunk: int = 250
    duty_cycle: float = 0.05
    pause_seconds: float = 0.0

    def __post_init__(self) -> None:
        if not 1 <= self.chunk <= MAX_CHUNK:
            raise InvalidArgument(f"SWITCHBOARD_RETENTION_CHUNK must be 1 to {MAX_CHUNK} rows, not {self.chunk}")
        if not 0 < self.duty_cycle <= 1:
            raise InvalidArgument(
                f"SWITCHBOARD_RETENTION_DUTY_CYCLE must be above 0 and at most 1 (the most of the time a sweep"
                f" works, e.g. 0.05), not {self.duty_cycle}"
            )
        if not 0 <= self.pause_seconds <= MAX_PAUSE_SECONDS:
            raise InvalidArgument(
                f"SWITCHBOARD_RETENTION_PAUSE_SECONDS must be 0 to {MAX_PAUSE_SECONDS}, not {self.pause_seconds}"
            )

    @classmethod
    def from_env(cls) -> RetentionConfig:
        """Read ``SWITCHBOARD_RETENTION_*``."""
        return cls(
            thread_days=env_int("SWITCHBOARD_RETENTION_THREAD_DAYS", 0),
            audit_days=env_int("SWITCHBOARD_RETENTION_AUDIT_DAYS", 0),
            every_seconds=env_float("SWITCHBOARD_RETENTION_SWEEP_SECONDS", cls.every_seconds),
            batch=env_int("SWITCHBOARD_RETENTION_BATCH", cls.batch, minimum=1),
            chunk=env_int("SWITCHBOARD_RETENTION_CHUNK", cls.chunk, minimum=1),
            duty_cycle=env_float("SWITCHBOARD_RETENTION_DUTY_CYCLE", cls.duty_cycle),
            pause_seconds=env_float("SWITCHBOARD_RETENTION_PAUSE_SECONDS", cls.pause_seconds),
        )


class DutyCycle:
    """Rests so that work takes at most ``fraction`` of the time.

    ``rest()`` after each chunk of work sleeps the time worked since the last rest times
    ``(1 - fraction) / fraction`` (at least ``floor``): at 0.05, 19 times as long as it worked.

    Args:
        fraction: The most of the time spent working (0 < fraction <= 1).
        floor: The least rest, in seconds.

    Attributes:
        rested: Seconds rested so far.
    """

    def __init__(self, fraction: float, floor: float = 0.0) -> None:
        self._rest_per_work = (1 - fraction) / fraction
        self._floor = floor
        self._since = time.monotonic()
        self.rested = 0.0

    async def rest(self) -> None:
        """Rest in proportion to the work done since the last rest."""
        started = time.monotonic()
        await asyncio.sleep(max(self._floor, (started - self._since) * self._rest_per_work))
        self._since = time.monotonic()
        rested = self._since - started
        self.rested += rested
        RESTED.inc(rested)


@dataclass
class SweepReport:
    """What a sweep deleted (or, dry, would delete)."""

    dry_run: bool
    threads: list[str] = field(default_factory=list)
    items: int = 0
    attachments: int = 0
    attachment_bytes: int = 0
    runs: int = 0
    audit_events: int = 0
    skipped: int = 0  # threads that moved on (touched, held, locked) between finding and deleting
    seconds: float = 0.0  # how long the sweep took, rests included
    rested_seconds: float = 0.0  # how much of it was rest, to keep to the duty cycle

    def summary(self) -> str:
        """One line for people."""
        verb = "would delete" if self.dry_run else "deleted"
        text = f"{verb} {len(self.threads)} threads and {self.audit_events} audit events"
        if not self.dry_run:
            text += (
                f" ({self.items} items, {self.attachments} attachments of {self.attachment_bytes} bytes,"
                f" {self.runs} runs; {self.skipped} threads changed meanwhile and were kept)"
                f" in {self.seconds:.1f} s, {self.rested_seconds:.1f} s of it resting"
            )
        return text


@dataclass(frozen=True)
class LegalHold:
    """A hold on a thread or on a user."""

    id: int
    thread_id: str | None
    user_id: str | None
    reason: str
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class RetentionPolicy:
    """An org's retention (None: the deployment default; 0: keep forever)."""

    org_id: str
    thread_days: int | None
    audit_days: int | None


def _days(value: int | None, name: str) -> int | None:
    if value is not None and not 0 <= value <= 36_500:
        raise InvalidArgument(f"{name} must be 0 (keep forever) to 36500 days, or unset for the default")
    return value


def _id(value: str | None, name: str) -> str | None:
    if value is not None and (not value or len(value) > MAX_ID_LENGTH or "\x00" in value):
        raise InvalidArgument(f"{name} must be 1 to {MAX_ID_LENGTH} characters")
    return value


class RetentionSweeper:
    """Sweeps threads and audit events; manages policies and legal holds.

    Args:
        pool: Postgres.
        queries: thread_store's named queries.
        config: The deployment's retention.
        cache: The hot cache to clean (None: no Redis).
        feed: The change feed to tell (None: no Redis).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        queries: Queries,
        config: RetentionConfig,
        *,
        cache: ThreadCache | None = None,
        feed: ChangeFeed | None = None,
    ) -> None:
        self._pool = pool
        self._q = queries
        self._config = config
        self._cache = cache
        self._feed = feed

    # -- policies and holds ---------------------------------------------------------

    async def set_policy(self, *, org_id: str, thread_days: int | None, audit_days: int | None) -> RetentionPolicy:
        """Set an org's retention."""
        row = await self._pool.fetchrow(
            self._q.retention_set_policy,
            _id(org_id, "org_id"),
            _days(thread_days, "thread_days"),
            _days(audit_days, "audit_days"),
        )
        return RetentionPolicy(org_id=row["org_id"], thread_days=row["thread_days"], audit_days=row["audit_days"])

    async def list_policies(self) -> list[RetentionPolicy]:
        """Every org's retention."""
        rows = await self._pool.fetch(self._q.retention_list_policies)
        return [RetentionPolicy(r["org_id"], r["thread_days"], r["audit_days"]) for r in rows]

    async def hold(self, *, thread_id: str | None, user_id: str | None, reason: str, created_by: str) -> None:
        """Put a thread or a user on legal hold (again is no error)."""
        if (thread_id is None) == (user_id is None):
            raise InvalidArgument("hold either a thread or a user")
        await self._pool.fetchrow(
            self._q.retention_add_hold, _id(thread_id, "thread_id"), _id(user_id, "user_id"), reason, created_by
        )

    async def release(self, *, thread_id: str | None, user_id: str | None) -> None:
        """Lift a hold.

        Raises:
            NotFound: there is no such hold.
        """
        if (thread_id is None) == (user_id is None):
            raise InvalidArgument("release either a thread or a user")
        if not await self._pool.fetch(self._q.retention_release_hold, thread_id, user_id):
            raise NotFound("no such legal hold; `switchboard retention holds` lists them")

    async def list_holds(self) -> list[LegalHold]:
        """Every legal hold, oldest first."""
        rows = await self._pool.fetch(self._q.retention_list_holds)
        return [
            LegalHold(r["id"], r["thread_id"], r["user_id"], r["reason"], r["created_by"], r["created_at"])
            for r in rows
        ]

    # -- sweeping -------------------------------------------------------------------

    async def sweep(self, *, dry_run: bool = False, now: datetime | None = None) -> SweepReport:
        """Delete (or, dry, list) what is past retention now."""
        now = now or datetime.now(UTC)
        report = SweepReport(dry_run=dry_run)
        started = time.perf_counter()
        pace = DutyCycle(self._config.duty_cycle, self._config.pause_seconds)
        await self._sweep_threads(now, report, pace)
        await self._sweep_audit(now, report, pace)
        report.seconds = time.perf_counter() - started
        report.rested_seconds = pace.rested
        if not dry_run:
            SWEEP_SECONDS.observe(report.seconds)
        return report

    async def _min_days(self, default: int, kind: str) -> int | None:
        value: int | None = await self._pool.fetchval(self._q.retention_min_days, default, kind)
        return value

    async def _sweep_threads(self, now: datetime, report: SweepReport, pace: DutyCycle) -> None:
        min_days = await self._min_days(self._config.thread_days, "thread")
        if min_days is None:
            return
        cursor: tuple[datetime, str] = (EPOCH, "")
        while True:
            rows = await self._pool.fetch(
                self._q.retention_thread_candidates,
                now,
                self._config.thread_days,
                self._config.batch,
                min_days,
                *cursor,
            )
            if not rows:
                return
            cursor = (rows[-1]["updated_at"], rows[-1]["id"])
            for row in rows:
                if report.dry_run:
                    report.threads.append(row["id"])
                    continue
                await self._delete_thread(row, report, pace)
                await pace.rest()

    async def _delete_thread(self, candidate: asyncpg.Record, report: SweepReport, pace: DutyCycle) -> None:
        """Delete one thread in one transaction: its items, runs and attachments ``chunk`` rows per statement
        with rests between (others see the whole thread until the commit: see the module's docstring)."""
        async with self._pool.acquire() as conn, conn.transaction():
            thread = await conn.fetchrow(self._q.retention_lock_thread, candidate["id"], candidate["updated_at"])
            if thread is None:
                report.skipped += 1
                return
            items, _ = await self._delete_in_chunks(conn, self._q.retention_delete_items_chunk, thread["id"], pace)
            runs, _ = await self._delete_in_chunks(conn, self._q.retention_delete_runs_chunk, thread["id"], pace)
            attachments, n_bytes = await self._delete_in_chunks(
                conn, self._q.retention_delete_attachments_chunk, thread["id"], pace
            )
            await conn.execute(self._q.retention_delete_thread, thread["id"])
            data = {
                "thread_id": thread["id"],
                "user_id": thread["user_id"],
                "org_id": thread["org_id"],
                "reason": "retention",
                "last_activity_at": thread["updated_at"].isoformat(),
                "items": items,
                "attachments": attachments,
            }
            await conn.execute(self._q.retention_thread_deleted_event, thread["org_id"], thread["id"], json.dumps(data))
        report.threads.append(thread["id"])
        report.items += items
        report.attachments += attachments
        report.attachment_bytes += n_bytes
        report.runs += runs
        for kind, n in (("threads", 1), ("items", items), ("attachments", attachments)):
            DELETED.labels(kind).inc(n)
        DELETED.labels("attachment_bytes").inc(n_bytes)
        DELETED.labels("runs").inc(runs)
        # After the commit, as a user's delete does: a tombstone in the cache, and the change on the feed.
        if self._cache is not None:
            await self._cache.forget(user_id=thread["user_id"], thread_id=thread["id"])
        if self._feed is not None:
            await self._feed.publish(
                type="thread.deleted",
                user_id=thread["user_id"],
                org_id=thread["org_id"],
                thread_id=thread["id"],
                revision=thread["revision"],
            )

    async def _delete_in_chunks(
        self, conn: asyncpg.Connection, query: str, thread_id: str, pace: DutyCycle
    ) -> tuple[int, int]:
        """Run a chunk query ($1: the thread, $2: after this key, $3: at most this many rows) until a chunk
        comes back short, resting after each full one. How many rows went, and their bytes."""
        rows, n_bytes, after = 0, 0, ""
        while True:
            deleted = await conn.fetchrow(query, thread_id, after, self._config.chunk)
            rows += deleted["deleted"]
            n_bytes += deleted["bytes"]
            if deleted["deleted"] < self._config.chunk:
                return rows, n_bytes
            after = deleted["last"]
            await pace.rest()

    async def _sweep_audit(self, now: datetime, report: SweepReport, pace: DutyCycle) -> None:
        min_days = await self._min_days(self._config.audit_days, "audit")
        if min_days is None:
            return
        if report.dry_run:
            report.audit_events = await self._pool.fetchval(
                self._q.retention_audit_count, now, self._config.audit_days, min_days
            )
            return
        while True:
            async with self._pool.acquire() as conn, conn.transaction():
                # The audit trail's trigger lets this transaction, and only it, delete.
                await conn.execute("SET LOCAL switchboard.retention_sweep = 'on'")
                deleted: int = await conn.fetchval(
                    self._q.retention_audit_delete, now, self._config.audit_days, min_days, self._config.chunk
                )
            report.audit_events += deleted
            DELETED.labels("audit_events").inc(deleted)
            if deleted < self._config.chunk:
                return
            await pace.rest()

    # -- the periodic task ----------------------------------------------------------

    async def sweep_if_first(self) -> SweepReport | None:
        """Sweep unless another replica is sweeping now (a session advisory lock decides)."""
        async with self._pool.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", SWEEP_LOCK):
                return None
            try:
                return await self.sweep()
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", SWEEP_LOCK)

    async def run_forever(self) -> None:
        """Sweep every ``every_seconds`` (the first after one interval); errors are logged and retried next time."""
        while True:
            await asyncio.sleep(self._config.every_seconds)
            try:
                report = await self.sweep_if_first()
            except Exception as error:  # a sweep that fails is tried again next interval
                log.warning("retention: sweep failed (%s); trying again in %ss", error, self._config.every_seconds)
                continue
            if report is not None and (report.threads or report.audit_events):
                log.info("retention: %s", report.summary())
