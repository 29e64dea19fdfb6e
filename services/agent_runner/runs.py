"""Which runs are live, one per thread, and cancelling them from any replica.

Policy: a thread answers one message at a time. ``claim`` refuses a second
run on a thread that is still running with ``FailedPrecondition`` naming the
run, so the caller can cancel it or wait; two answers never interleave.

With Redis the claim is a key per thread (``SET NX`` with a lease), which holds
across replicas, and ``Cancel`` reaches the replica holding a run through a
pub/sub channel. Redis failing degrades to this replica's own bookkeeping: runs
still work and can be cancelled here, and the thread claim stays per replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from switchboard.errors import FailedPrecondition, NotFound
from switchboard.principal import Principal

log = logging.getLogger(__name__)

CANCEL_CHANNEL = "switchboard:agent_runner:cancel"
LEASE_SECONDS = 15 * 60


def thread_run_key(user_id: str, thread_id: str) -> str:
    """The key naming the run that holds a thread."""
    return f"chat:user:{{{user_id}}}:thread:{thread_id}:run"


def run_key(user_id: str, run_id: str) -> str:
    """The key saying a run is live (its value: the thread id)."""
    return f"chat:user:{{{user_id}}}:run:{run_id}"


@dataclass
class LiveRun:
    """A run this replica holds."""

    run_id: str
    user_id: str
    thread_id: str
    cancel: Callable[[], None]


class RunRegistry:
    """The live runs of this replica, and the claims and cancels shared through Redis.

    Args:
        redis: A client for keys and publishing, or None for one replica alone.
        subscriber: A client for the cancel channel (no short socket timeout).
    """

    def __init__(self, redis: aioredis.Redis | None, subscriber: aioredis.Redis | None = None) -> None:
        self._redis = redis
        self._subscriber = subscriber or redis
        self._runs: dict[str, LiveRun] = {}
        self._threads: dict[tuple[str, str], str] = {}
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        """Listen for cancels from other replicas (returns once subscribed, or after 2 s)."""
        if self._subscriber is None:
            return
        self._listener = asyncio.create_task(self._listen(), name="agent_runner-cancel-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), 2.0)

    async def close(self) -> None:
        """Stop listening and cancel every live run."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        for run in list(self._runs.values()):
            run.cancel()

    async def _listen(self) -> None:
        assert self._subscriber is not None
        delay = 0.5
        while True:
            pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CANCEL_CHANNEL)
                self._subscribed.set()
                delay = 0.5
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._on_cancel_message(message.get("data"))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as error:
                log.warning("cancel channel lost (%s); retrying in %.1f s", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _on_cancel_message(self, data: object) -> None:
        try:
            body = json.loads(data if isinstance(data, (str, bytes)) else "")
            run = self._runs.get(str(body["run_id"]))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed cancel message: %r", data)
            return
        if run is not None and run.user_id == body.get("user_id"):
            log.info("run %s cancelled from another replica", run.run_id)
            run.cancel()

    async def claim(self, run: LiveRun) -> None:
        """Hold the run's thread for it.

        Raises:
            FailedPrecondition: another run is answering in the thread.
        """
        key = (run.user_id, run.thread_id)
        holder = self._threads.get(key)
        if holder is None and self._redis is not None:
            try:
                claimed = await self._redis.set(
                    thread_run_key(run.user_id, run.thread_id), run.run_id, nx=True, ex=LEASE_SECONDS
                )
                if not claimed:
                    raw = await self._redis.get(thread_run_key(run.user_id, run.thread_id))
                    holder = raw.decode() if isinstance(raw, bytes) else (raw or "another run")
                else:
                    await self._redis.set(run_key(run.user_id, run.run_id), run.thread_id, ex=LEASE_SECONDS)
            except (RedisError, OSError) as error:
                log.warning("Redis unavailable for the thread claim (%s); claiming on this replica only", error)
        if holder is not None:
            raise FailedPrecondition(
                f"thread {run.thread_id!r} is still answering (run {holder}); cancel that run or wait for it to end"
            )
        self._threads[key] = run.run_id
        self._runs[run.run_id] = run

    async def release(self, run: LiveRun) -> None:
        """Free the run's thread."""
        self._runs.pop(run.run_id, None)
        if self._threads.get((run.user_id, run.thread_id)) == run.run_id:
            del self._threads[(run.user_id, run.thread_id)]
        if self._redis is None:
            return
        try:
            key = thread_run_key(run.user_id, run.thread_id)
            raw = await self._redis.get(key)
            if raw is not None and (raw.decode() if isinstance(raw, bytes) else raw) == run.run_id:
                await self._redis.delete(key)
            await self._redis.delete(run_key(run.user_id, run.run_id))
        except (RedisError, OSError) as error:
            log.warning("could not release run %s in Redis (%s); its lease expires on its own", run.run_id, error)

    async def cancel(self, principal: Principal, run_id: str) -> None:
        """Cancel a run of the principal's, here or on the replica holding it.

        Raises:
            NotFound: no live run of the principal has this id.
        """
        run = self._runs.get(run_id)
        if run is not None and run.user_id == principal.user_id:
            run.cancel()
            return
        if self._redis is not None:
            try:
                if await self._redis.exists(run_key(principal.user_id, run_id)):
                    body = json.dumps({"run_id": run_id, "user_id": principal.user_id})
                    await self._redis.publish(CANCEL_CHANNEL, body)
                    return
            except (RedisError, OSError) as error:
                log.warning("Redis unavailable to reach other replicas (%s)", error)
        raise NotFound(f"there is no running run {run_id!r}; it may have ended already")
