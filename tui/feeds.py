"""The console's long-running network loops: they follow the services and never give up.

Each loop posts past-tense messages to the app and, when its service goes away,
reports "reconnecting" and starts over after the shared back-off
(``switchboard.streams.reconnecting``). Both watches begin with a
``watch.started`` marker: from it on every change arrives, so each loop then
reloads what the console shows of its service and follows the watch, with no
gap and nothing replayed. The session feed reloads sessions and escalations;
the thread feed reloads open transcripts and thread activity, and resumes after
the last change id it saw. The app runs each loop in a named worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from textual.message import Message

from switchboard.errors import SwitchboardError, Unavailable
from switchboard.streams import WATCH_STARTED, Attempt, Lost, reconnecting
from tui.backend import SESSION_API, THREAD_STORE, ConsoleBackend, SignInFailed
from tui.data import SessionChange, ThreadChange
from tui.messages import (
    ConnectionChanged,
    LastMessagesLoaded,
    MetricsLoaded,
    SessionChanged,
    SignedIn,
    SnapshotLoaded,
    ThreadChanged,
    ThreadFeedResumed,
    ThreadsLoaded,
)

log = logging.getLogger(__name__)

Post = Callable[[Message], object]


def describe(error: BaseException) -> str:
    """One line about why a call failed."""
    if isinstance(error, SwitchboardError):
        return error.message
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _on_lost(backend: ConsoleBackend, post: Post, service: str) -> Callable[[Lost], Awaitable[None]]:
    async def report(lost: Lost) -> None:
        post(ConnectionChanged(service, "reconnecting", describe(lost.error), lost.failures))
        await backend.reset(service)

    return report


async def _started(changes: AsyncIterator[SessionChange | ThreadChange], service: str) -> str:
    """Wait for a watch's ``watch.started`` marker; returns its id (where the watch reads from)."""
    first = await anext(changes)
    if first.type != WATCH_STARTED:
        raise Unavailable(f"{service} sent {first.type!r} before watch.started")
    return first.id


async def _follow(backend: ConsoleBackend, post: Post, name: str, follow: Callable[[Attempt], Awaitable[None]]) -> None:
    """Follow a service's feed, reconnecting, until the operator token is refused or expires for good
    (``SignInFailed``); then say so in the service's status. A watch started with a valid token
    would otherwise go on after it expired."""
    running = asyncio.ensure_future(
        reconnecting(
            follow, name=name, retry_on=(Exception,), fatal=(SignInFailed,), on_lost=_on_lost(backend, post, name)
        )
    )
    expiry = asyncio.ensure_future(backend.token_expired())
    try:
        done, _ = await asyncio.wait({running, expiry}, return_when=asyncio.FIRST_COMPLETED)
        (running if running in done else expiry).result()
    except SignInFailed as error:
        post(ConnectionChanged(name, "failed", error.message))
    finally:
        for task in (running, expiry):
            task.cancel()
        await asyncio.gather(running, expiry, return_exceptions=True)


async def follow_sessions(backend: ConsoleBackend, post: Post, signed_in: asyncio.Event) -> None:
    """Sign in, then follow the org's sessions and escalations for as long as the app runs."""

    async def follow(attempt: Attempt) -> None:
        if not signed_in.is_set():
            principal = await backend.sign_in()
            post(SignedIn(principal))
            signed_in.set()
        changes = backend.watch_sessions()
        try:
            await _started(changes, SESSION_API)  # live from here, so the snapshot misses nothing
            sessions = await backend.load_sessions()
            escalations = await backend.load_escalations()
            try:
                threads = await backend.load_threads()
            except SwitchboardError:
                threads = []  # thread_store's own loop reports it and loads them when it is back
            post(SnapshotLoaded(sessions, escalations, threads))
            post(ConnectionChanged(SESSION_API, "connected"))
            attempt.live()
            async for change in changes:
                post(SessionChanged(change))
        finally:
            await changes.aclose()  # type: ignore[attr-defined]
        raise Unavailable("session_api ended the watch")

    await _follow(backend, post, SESSION_API, follow)


async def follow_threads(backend: ConsoleBackend, post: Post, signed_in: asyncio.Event) -> None:
    """Follow the org's thread changes from when the watch starts, resuming after the last one seen."""
    await signed_in.wait()
    since = ""  # the first watch starts at "now"; its marker says which change id that is

    async def follow(attempt: Attempt) -> None:
        nonlocal since
        changes = backend.watch_threads(since)
        try:
            since = await _started(changes, THREAD_STORE)
            # Live from the marker on: reload what the console shows of the threads,
            # and every later change follows on the watch.
            post(ThreadFeedResumed())
            post(ThreadsLoaded(await backend.load_threads()))
            post(ConnectionChanged(THREAD_STORE, "connected"))
            attempt.live()
            async for change in changes:
                since = change.id
                post(ThreadChanged(change))
        finally:
            await changes.aclose()  # type: ignore[attr-defined]
        raise Unavailable("thread_store ended the change feed")

    await _follow(backend, post, THREAD_STORE, follow)


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


LAST_MESSAGES_AT_ONCE = 200  # threads read per round; the feed keeps every thread current once read


async def load_last_messages(backend: ConsoleBackend, post: Post, missing: Callable[[int], list[str]]) -> None:
    """Read the newest message of the threads that lack one, most recently active first, a round at a time.

    A failure is logged and ends the load: the next snapshot (after a reconnect) starts it again,
    and the change feed fills in every thread that speaks meanwhile.
    """
    asked: set[str] = set()
    while thread_ids := [t for t in missing(LAST_MESSAGES_AT_ONCE + len(asked)) if t not in asked]:
        thread_ids = thread_ids[:LAST_MESSAGES_AT_ONCE]
        asked.update(thread_ids)
        try:
            messages = await backend.load_last_messages(thread_ids)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning("could not read the last messages of %d threads: %s", len(thread_ids), describe(error))
            return
        post(LastMessagesLoaded(messages))
