"""The console's long-running network loops: they follow the services and never give up.

Each loop posts past-tense messages to the app and, when its service goes away,
reports "reconnecting", waits a short back-off and starts over: the session
feed reloads its snapshot after the watch is live again (so nothing is missed),
the thread feed resumes after the last change id it saw. The app runs each
loop in a named worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from textual.message import Message

from switchboard.errors import SwitchboardError, Unavailable
from tui.backend import SESSION_API, THREAD_STORE, ConsoleBackend, SignInFailed
from tui.messages import (
    ConnectionChanged,
    MetricsLoaded,
    SessionChanged,
    SignedIn,
    SnapshotLoaded,
    ThreadChanged,
    ThreadFeedResumed,
)

log = logging.getLogger(__name__)

Post = Callable[[Message], object]
# On first connect the thread feed replays this much history, so a change made
# while the watch was being set up is not missed (changes are idempotent upserts).
THREAD_FEED_REPLAY_MS = 5000


def backoff(attempt: int, *, first: float = 0.2, limit: float = 2.0) -> float:
    """Seconds to wait before reconnect ``attempt`` (1, 2, ...): doubling, capped."""
    return float(min(limit, first * 2 ** max(0, attempt - 1)))


def describe(error: BaseException) -> str:
    """One line about why a call failed."""
    if isinstance(error, SwitchboardError):
        return error.message
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


async def _lost(backend: ConsoleBackend, post: Post, service: str, error: BaseException, attempt: int) -> None:
    log.info("%s lost (attempt %d): %s", service, attempt, describe(error))
    post(ConnectionChanged(service, "reconnecting", describe(error), attempt))
    await backend.reset(service)
    await asyncio.sleep(backoff(attempt))


async def follow_sessions(backend: ConsoleBackend, post: Post, signed_in: asyncio.Event) -> None:
    """Sign in, then follow the org's sessions and escalations for as long as the app runs."""
    attempt = 0
    while True:
        try:
            if not signed_in.is_set():
                principal = await backend.sign_in()
                post(SignedIn(principal))
                signed_in.set()
            changes = backend.watch_sessions()
            try:
                await anext(changes)  # watch.started: live from here, so the snapshot misses nothing
                sessions = await backend.load_sessions()
                escalations = await backend.load_escalations()
                try:
                    activity = await backend.load_thread_activity()
                except SwitchboardError:
                    activity = {}  # thread_store's own loop reports it; activity fills in from the feed
                post(SnapshotLoaded(sessions, escalations, activity))
                post(ConnectionChanged(SESSION_API, "connected"))
                attempt = 0
                async for change in changes:
                    post(SessionChanged(change))
            finally:
                await changes.aclose()  # type: ignore[attr-defined]
            raise Unavailable("session_api ended the watch")
        except SignInFailed as error:
            post(ConnectionChanged(SESSION_API, "failed", error.message))
            return
        except asyncio.CancelledError:
            raise
        except Exception as error:
            attempt += 1
            await _lost(backend, post, SESSION_API, error, attempt)


async def follow_threads(backend: ConsoleBackend, post: Post, signed_in: asyncio.Event) -> None:
    """Follow the org's thread changes, resuming after the last one seen."""
    await signed_in.wait()
    since = f"{int(time.time() * 1000) - THREAD_FEED_REPLAY_MS}-0"
    attempt = 0
    while True:
        try:
            # A unary call first: the watch sends nothing until something changes,
            # and the status line should say "connected" as soon as it is.
            await backend.load_thread_activity()
            post(ConnectionChanged(THREAD_STORE, "connected"))
            if attempt:
                post(ThreadFeedResumed())
            attempt = 0
            changes = backend.watch_threads(since)
            try:
                async for change in changes:
                    since = change.id
                    post(ThreadChanged(change))
            finally:
                await changes.aclose()  # type: ignore[attr-defined]
            raise Unavailable("thread_store ended the change feed")
        except asyncio.CancelledError:
            raise
        except Exception as error:
            attempt += 1
            await _lost(backend, post, THREAD_STORE, error, attempt)


async def poll_metrics(backend: ConsoleBackend, post: Post, signed_in: asyncio.Event, interval: float) -> None:
    """Fetch the org's figures every ``interval`` seconds (a failure keeps the last ones)."""
    await signed_in.wait()
    while True:
        try:
            post(MetricsLoaded(await backend.load_metrics()))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.debug("metrics unavailable: %s", describe(error))
        await asyncio.sleep(interval)
