"""A run this replica executes: its events numbered, logged, then fanned out.

Events go through one writer per run: whatever is ready is taken together
(waiting at most ``LINGER_SECONDS``), adjacent text deltas of one content part
merge, each event gets the next sequence number, the batch is appended to the
run's log in Redis in one round trip, and only then reaches the subscribers
(the ``Run`` caller, local joiners). A run keeps every event it produced in
memory while it lives, so a local subscriber can start from any sequence number
even when Redis is down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from chatkit.types import (
    AssistantMessageContentPartTextDelta,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemUpdatedEvent,
    ThreadStreamEvent,
)
from redis.exceptions import RedisError

from services.agent_runner.client import EVENT_ADAPTER
from services.agent_runner.runs import RunLog, RunRecord
from switchboard.principal import Principal

log = logging.getLogger(__name__)

MAX_BATCH = 256
# How long the writer waits for more ready events after a text delta before it
# logs and sends a batch. Far below what a reader notices (a frame is 16 ms),
# long enough that a fast model's deltas go out merged instead of one round trip
# each. Any other event is sent at once: nothing would merge with it.
LINGER_SECONDS = 0.002

Batch = list[tuple[int, bytes]]


def event_json(event: ThreadStreamEvent) -> bytes:
    """The SDK's JSON of an event, exactly as ``ChatKitServer`` writes it to clients."""
    return event.model_dump_json(by_alias=True, exclude_none=True, context={"exclude_metadata": True}).encode()


def _mergeable(event: ThreadStreamEvent | None) -> bool:
    """Whether the next event may merge with this one (a text delta): only then is it worth waiting for."""
    return isinstance(event, ThreadItemUpdatedEvent) and isinstance(event.update, AssistantMessageContentPartTextDelta)


def coalesce_deltas(events: list[ThreadStreamEvent]) -> list[ThreadStreamEvent]:
    """Merge adjacent text deltas of the same content part into one delta.

    Order and text are kept exactly: only consecutive deltas of one item's part
    merge, so the client assembles the same message from fewer events.
    """
    merged: list[ThreadStreamEvent] = []
    for event in events:
        previous = merged[-1] if merged else None
        if (
            isinstance(event, ThreadItemUpdatedEvent)
            and isinstance(event.update, AssistantMessageContentPartTextDelta)
            and isinstance(previous, ThreadItemUpdatedEvent)
            and isinstance(previous.update, AssistantMessageContentPartTextDelta)
            and previous.item_id == event.item_id
            and previous.update.content_index == event.update.content_index
        ):
            delta = previous.update.delta + event.update.delta
            update = AssistantMessageContentPartTextDelta(content_index=event.update.content_index, delta=delta)
            merged[-1] = ThreadItemUpdatedEvent(item_id=event.item_id, update=update)
        else:
            merged.append(event)
    return merged


class Subscription:
    """The batches of one run for one reader, from a sequence number on; ends when the run does."""

    def __init__(self, run: LiveRun, after: int) -> None:
        self._run = run
        self._queue: asyncio.Queue[Batch | None] = asyncio.Queue()
        backlog = [entry for entry in run.history if entry[0] > after]
        if backlog:
            self._queue.put_nowait(backlog)
        if run.finished:
            self._queue.put_nowait(None)

    def push(self, batch: Batch | None) -> None:
        self._queue.put_nowait(batch)

    async def batches(self) -> AsyncIterator[Batch]:
        """Each ready batch (batches waiting together are joined into one)."""
        while True:
            batch = await self._queue.get()
            if batch is None:
                return
            joined = list(batch)
            while not self._queue.empty():
                more = self._queue.get_nowait()
                if more is None:
                    yield joined
                    return
                joined.extend(more)
            yield joined

    def close(self) -> None:
        """Stop receiving (the run goes on)."""
        self._run.unsubscribe(self)


class LiveRun:
    """A run executing on this replica.

    Args:
        record: Its row in ``runs``.
        principal: Who it answers for (with the chat session resolved).
        log: Where its events are appended, or None without Redis.
    """

    def __init__(self, record: RunRecord, principal: Principal, log: RunLog | None) -> None:
        self.record = record
        self.run_id = record.id
        self.thread_id = record.thread_id
        self.principal = principal
        self.status = record.status
        self.history: Batch = []
        self.shown: set[str] = set()  # ids of the items this run showed (a hand-off relays the others)
        self.escalated = False  # the agent handed the thread to a person during this run
        self.finished = False
        self.ending = False
        self.decided_by = ""  # who clicked the card this run resumes from (the user, or an operator)
        self.paused: tuple[str, Any] | None = None  # (snapshot, pending approval) of a run waiting for a person
        self.final_status = ""
        self.stop_reason: str | None = None
        self.registered_at = time.monotonic()
        self._log = log
        self._log_ok = log is not None
        self._seq = 0
        self._subscribers: set[Subscription] = set()
        self._inbox: asyncio.Queue[ThreadStreamEvent | None] = asyncio.Queue()
        self._stopped = asyncio.Event()
        self._writer = asyncio.create_task(self._write(), name=f"run-writer-{record.id}")
        self.task: asyncio.Task[None] | None = None

    # -- control ---------------------------------------------------------------

    def stop(self, reason: str) -> None:
        """Stop the run (``cancelled`` by a user, ``interrupted`` by shutdown or a lost lease)."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stopped.set()

    @property
    def stopping(self) -> bool:
        """Whether the run was asked to stop."""
        return self._stopped.is_set()

    async def wait_stopped(self) -> None:
        """Return once the run is asked to stop."""
        await self._stopped.wait()

    # -- events ------------------------------------------------------------------

    def emit(self, event: ThreadStreamEvent) -> None:
        """Send an event to the log and every subscriber, in order."""
        if isinstance(event, (ThreadItemDoneEvent, ThreadItemAddedEvent)):
            self.shown.add(event.item.id)
        self._inbox.put_nowait(event)

    async def flush(self) -> int:
        """Write every pending event (nothing may be emitted after); the last sequence number."""
        self._inbox.put_nowait(None)
        await self._writer
        return self._seq

    async def end(self, status: str, *, end_event: ThreadStreamEvent | None = None) -> None:
        """End the log with ``status`` and every subscriber's stream (after ``flush``)."""
        self.final_status = status
        if self._log is not None and self._log_ok:
            try:
                body = event_json(end_event) if end_event is not None else b""
                await self._log.append(self.principal.user_id, self.run_id, [], end=status, end_event=body)
            except (RedisError, OSError) as error:
                log.warning("could not end the log of run %s (%s)", self.run_id, error)
        self.finished = True
        for subscriber in list(self._subscribers):
            subscriber.push(None)

    def subscribe(self, after: int = 0) -> Subscription:
        """Follow the run's events after sequence number ``after`` (0: from its start)."""
        subscription = Subscription(self, after)
        if not self.finished:
            self._subscribers.add(subscription)
        return subscription

    async def events(self, after: int = 0) -> AsyncIterator[ThreadStreamEvent]:
        """The run's events parsed back (in-process readers: tests and the bench)."""
        subscription = self.subscribe(after)
        try:
            async for batch in subscription.batches():
                for _seq, body in batch:
                    yield EVENT_ADAPTER.validate_json(body)
        finally:
            subscription.close()

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    async def _write(self) -> None:
        loop = asyncio.get_running_loop()
        done = False
        while not done:
            batch = [await self._inbox.get()]
            deadline = loop.time() + LINGER_SECONDS
            while batch[-1] is not None and len(batch) < MAX_BATCH:
                if self._inbox.empty():
                    if not _mergeable(batch[-1]):
                        break  # only text deltas merge: anything else (an operator's reply) goes at once
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        batch.append(await asyncio.wait_for(self._inbox.get(), remaining))
                    except TimeoutError:
                        break
                else:
                    batch.append(self._inbox.get_nowait())
            if batch[-1] is None:
                batch.pop()
                done = True
            events = coalesce_deltas([e for e in batch if e is not None])
            if not events:
                continue
            numbered: Batch = []
            for event in events:
                self._seq += 1
                numbered.append((self._seq, event_json(event)))
            await self._append(numbered)
            self.history.extend(numbered)
            for subscriber in list(self._subscribers):
                subscriber.push(numbered)

    async def _append(self, numbered: Batch) -> None:
        if self._log is None or not self._log_ok:
            return
        try:
            await self._log.append(self.principal.user_id, self.run_id, numbered)
        except (RedisError, OSError) as error:
            # The run goes on and streams to its own client; joiners of other
            # replicas are told the live log is incomplete.
            self._log_ok = False
            log.warning("run %s: event log unavailable (%s); the run goes on without it", self.run_id, error)
