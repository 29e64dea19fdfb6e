"""How responsive the console stays: 2,000 live sessions and a 5,000-item transcript, beside 500 and 1,000.

The console runs headless (``App.run_test``) over a backend that serves
generated data from memory, so the figures are the console's own (state,
widgets, layout and a screen refresh), not the network's. Each figure is the
median of repeated runs, timed from handing the app the data or change to the
app being idle again with the screen refreshed (``pilot.pause()``; its own
round trip is printed as "idle round trip"). One change costs a repaint of the
visible rows (``DataTable`` redraws them after any cell update); changes that
arrive together share one repaint, as the burst figure shows. Each figure is
measured at both sizes in one run and printed side by side with their ratio:
the goal is that the large sizes stay within the figures of the small ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    CustomTask,
    InferenceOptions,
    TaskItem,
    ThreadItem,
    UserMessageItem,
    UserMessageTextContent,
)
from textual.pilot import Pilot

from bench.common import median, ms, pct, print_table
from services.agent_runner.client import Handoff
from switchboard.principal import Principal
from tui.app import ConsoleApp
from tui.backend import SESSION_API, THREAD_STORE
from tui.data import (
    EscalationInfo,
    HostedConversation,
    LastMessage,
    MetricsSnapshot,
    RunInfo,
    SessionChange,
    SessionInfo,
    ThreadChange,
    ThreadSummary,
)
from tui.messages import LastMessagesLoaded, SessionChanged, SnapshotLoaded
from tui.screens.conversation import ConversationScreen

SIZES = ((500, 1000), (2000, 5000))  # (sessions, transcript items): today's figures, then the goal's
ROUNDS = 15
UPDATES = 100
START = datetime(2026, 1, 1, tzinfo=UTC)


def _sessions(n: int) -> list[SessionInfo]:
    return [
        SessionInfo(
            id=f"ses_{i:05d}",
            user_id=f"user-{i:05d}",
            org_id="bench",
            agent_id=("support", "billing", "sales")[i % 3],
            channel="voice" if i % 7 == 0 else "web",
            status="active",
            created_at=START + timedelta(seconds=i),
            thread_ids=(f"thr_{i:05d}",),
        )
        for i in range(n)
    ]


def _items(thread_id: str, n: int) -> list[ThreadItem]:
    items: list[ThreadItem] = []
    for i in range(n):
        at = START + timedelta(seconds=i)
        if i % 3 == 0:
            items.append(
                UserMessageItem(
                    id=f"msg_{i:05d}",
                    thread_id=thread_id,
                    created_at=at,
                    content=[UserMessageTextContent(text=f"question {i}: where is my order? " * 3)],
                    inference_options=InferenceOptions(),
                )
            )
        elif i % 3 == 1:
            items.append(
                TaskItem(
                    id=f"task_{i:05d}",
                    thread_id=thread_id,
                    created_at=at,
                    task=CustomTask(title="lookup_order done", content=f"order {i}", status_indicator="complete"),
                )
            )
        else:
            items.append(_answer(thread_id, f"msg_{i:05d}", at, f"answer {i}: it ships tomorrow. " * 4))
    return items


def _answer(thread_id: str, item_id: str, at: datetime, text: str) -> AssistantMessageItem:
    return AssistantMessageItem(
        id=item_id, thread_id=thread_id, created_at=at, content=[AssistantMessageContent(text=text)]
    )


def _threads(n: int) -> list[ThreadSummary]:
    return [
        ThreadSummary(
            id=f"thr_{i:05d}",
            title=f"Order {i} never arrived and the tracking page is empty",
            agent_id=("support", "billing", "triage")[i % 3],
            updated_at=START + timedelta(seconds=i),
            # One in twenty waits for a person: their waiting time ticks every second.
            handler=Handoff(f"thr_{i:05d}", "waiting", since=START + timedelta(seconds=i)) if i % 20 == 0 else None,
        )
        for i in range(n)
    ]


def _last_messages(n: int) -> dict[str, LastMessage]:
    return {
        f"thr_{i:05d}": LastMessage(f"msg_last_{i:05d}", "user", f"question {i}: where is my order? " * 3, START)
        for i in range(n)
    }


class GeneratedBackend:
    """A console backend over generated data; its feeds stay quiet (the benchmark posts changes itself)."""

    def __init__(self, sessions: int, items: int) -> None:
        self.sessions = _sessions(sessions)
        self.threads = _threads(sessions)
        self.last_messages = _last_messages(sessions)
        self.transcript = _items("thr_00000", items)

    @property
    def targets(self) -> dict[str, str]:
        return {SESSION_API: "memory", THREAD_STORE: "memory"}

    async def sign_in(self) -> Principal:
        return Principal(user_id="op-bench", org_id="bench", roles=("operator",))

    async def token_expired(self) -> None:
        await asyncio.Event().wait()  # the bench's operator never expires

    async def watch_sessions(self) -> AsyncIterator[SessionChange]:
        yield SessionChange(id="0-0", type="watch.started", at=START)
        await asyncio.Event().wait()

    async def load_sessions(self) -> list[SessionInfo]:
        return []

    async def load_escalations(self) -> list[EscalationInfo]:
        return []

    async def load_threads(self) -> list[ThreadSummary]:
        return []

    async def load_last_messages(self, thread_ids: list[str]) -> dict[str, LastMessage]:
        return {}  # the benchmark hands them over itself, timed

    async def load_runs(self, thread_ids: list[str]) -> list[RunInfo]:
        return []

    async def cancel_run(self, run_id: str) -> list[str]:
        raise RuntimeError("the rendering benchmark does not cancel runs")

    async def watch_threads(self, since: str) -> AsyncIterator[ThreadChange]:
        await asyncio.Event().wait()
        yield ThreadChange(id="0-0", type="never", thread_id="", item_id="", at=START)

    async def load_transcript(self, thread_id: str) -> list[ThreadItem]:
        return list(self.transcript)

    async def load_hosted_conversations(self, session_id: str) -> list[HostedConversation]:
        return []  # the generated sessions are self-hosted

    async def load_metrics(self) -> MetricsSnapshot:
        return MetricsSnapshot(at=START)

    # The benchmark measures rendering only; it never presses the keys that act.
    async def claim(self, escalation_id: str) -> Handoff:
        raise RuntimeError("the rendering benchmark does not claim escalations")

    async def take_over(self, thread_id: str) -> Handoff:
        raise RuntimeError("the rendering benchmark does not take conversations over")

    async def hand_back(self, thread_id: str, resolution: str) -> Handoff:
        raise RuntimeError("the rendering benchmark does not hand conversations back")

    async def cancel_session(self, session: SessionInfo) -> SessionInfo:
        raise RuntimeError("the rendering benchmark does not cancel sessions")

    async def reply(self, thread_id: str, text: str) -> AssistantMessageItem:
        raise RuntimeError("the rendering benchmark does not reply")

    async def decide_card(self, thread_id: str, card_id: str, approve: bool) -> str:
        raise RuntimeError("the rendering benchmark does not decide action cards")

    async def reset(self, service: str) -> None:
        return None

    async def close(self) -> None:
        return None


async def _timed(pilot: Pilot[Any], action: Any) -> float:
    start = time.perf_counter()
    action()
    await pilot.pause()
    return time.perf_counter() - start


Figures = dict[str, list[float]]


async def _sessions_figures(app: ConsoleApp, pilot: Pilot[Any], backend: GeneratedBackend) -> Figures:
    table = app.dashboard.sessions_table
    count = len(backend.sessions)

    def snapshot() -> None:
        app.post_message(SnapshotLoaded(backend.sessions, [], backend.threads))
        app.post_message(LastMessagesLoaded(backend.last_messages))

    renders = [await _timed(pilot, snapshot) for _ in range(ROUNDS)]
    assert len(table.shown_ids) == count
    assert table.get_cell("ses_00001", "last").plain.startswith("question 1")
    changes = []
    for i in range(UPDATES):
        session = backend.sessions[(i * 37) % count]
        changed = SessionInfo(**{**_fields(session), "agent_id": f"agent-{i}"})
        change = SessionChange(id=f"{i}-0", type="session.updated", at=START + timedelta(hours=1, seconds=i))
        change = SessionChange(id=change.id, type=change.type, at=change.at, session=changed)
        changes.append(await _timed(pilot, lambda change=change: app.post_message(SessionChanged(change))))
    inserts = []
    for i in range(UPDATES):
        new = SessionInfo(**{**_fields(backend.sessions[0]), "id": f"ses_new_{i:04d}", "created_at": START})
        change = SessionChange(id=f"n{i}-0", type="session.created", at=START, session=new)
        inserts.append(await _timed(pilot, lambda change=change: app.post_message(SessionChanged(change))))
    assert len(table.shown_ids) == count + UPDATES
    bursts = []
    for round_ in range(ROUNDS):
        burst = [
            SessionChanged(
                SessionChange(
                    id=f"b{round_}-{i}",
                    type="session.updated",
                    at=START + timedelta(hours=1, seconds=i),
                    session=SessionInfo(**{**_fields(backend.sessions[i]), "agent_id": f"burst-{round_}"}),
                )
            )
            for i in range(UPDATES)
        ]
        bursts.append(await _timed(pilot, lambda burst=burst: [app.post_message(m) for m in burst]) / UPDATES)
    ticks = [await _timed(pilot, lambda: table.refresh_times(waiting_only=True)) for _ in range(ROUNDS)]
    full_ticks = [await _timed(pilot, table.refresh_times) for _ in range(ROUNDS)]
    filters = [await _timed(pilot, lambda i=i: table.set_filter(f"order {i}")) for i in range(ROUNDS)]
    table.set_filter("")
    idle = [await _timed(pilot, lambda: None) for _ in range(ROUNDS)]
    return {
        "idle round trip (nothing changed)": idle,
        "render the sessions (snapshot, titles, last messages)": renders,
        "apply a session change (one row)": changes,
        "insert a new session (sorted)": inserts,
        f"per change in a burst of {UPDATES}": bursts,
        "tick the waiting times (every second)": ticks,
        "refresh every age (every 5 s)": full_ticks,
        "filter by words (title, last message...)": filters,
    }


def _fields(session: SessionInfo) -> dict[str, Any]:
    return {name: getattr(session, name) for name in SessionInfo.__slots__}


async def _transcript_figures(app: ConsoleApp, pilot: Pilot[Any], backend: GeneratedBackend) -> Figures:
    screen = ConversationScreen(thread_id="thr_00000", session_id="ses_00000")
    await app.push_screen(screen)
    while not screen.loaded:
        await pilot.pause(0.01)
    transcript = screen.transcript
    count = len(backend.transcript)
    loads = []
    histories = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        transcript.load(backend.transcript)
        # The first paint: the screen draws the transcript's end (its older items render after it).
        while transcript.painted_at is None:  # the time is taken when the first line is drawn, not here
            await pilot.pause(0.001)
        loads.append(transcript.painted_at - start)
        while not transcript.fully_rendered:
            await pilot.pause(0.001)
        histories.append(time.perf_counter() - start)
    assert len(transcript.item_ids) == count
    searches = [await _timed(pilot, lambda i=i: transcript.search(f"question {i * 97}")) for i in range(ROUNDS)]
    transcript.search("")
    appends = []
    for i in range(UPDATES):
        item = _answer("thr_00000", f"msg_new_{i:04d}", START + timedelta(days=1, seconds=i), "a new answer")
        appends.append(await _timed(pilot, lambda item=item: transcript.upsert(item)))
    deltas = []
    text = ""
    for i in range(UPDATES):
        text += f"token{i} "
        item = _answer("thr_00000", "msg_streaming", START + timedelta(days=2), text)
        deltas.append(await _timed(pilot, lambda item=item: transcript.upsert(item)))
    assert len(transcript.item_ids) == count + UPDATES + 1
    app.pop_screen()
    await pilot.pause()
    return {
        "open the transcript (first paint, at its end)": loads,
        "... its older items rendered (in the background)": histories,
        "search the transcript (/)": searches,
        "append an item": appends,
        "apply a streamed update (one item)": deltas,
    }


async def _measure(sessions: int, items: int) -> Figures:
    backend = GeneratedBackend(sessions, items)
    app = ConsoleApp(backend, clock=lambda: START + timedelta(hours=2), metrics_interval=3600)
    async with app.run_test(size=(160, 45)) as pilot:
        while not app.principal:
            await pilot.pause(0.01)
        figures = await _sessions_figures(app, pilot, backend)
        figures |= await _transcript_figures(app, pilot, backend)
    return figures


async def main() -> None:
    """Print the console's render and update times at today's sizes and the goal's, side by side."""
    (small_sessions, small_items), (large_sessions, large_items) = SIZES
    small = await _measure(small_sessions, small_items)
    large = await _measure(large_sessions, large_items)
    rows = []
    for figure, before in small.items():
        after = large[figure]
        ratio = median(after) / median(before) if median(before) else 0.0
        rows.append((figure, ms(median(before)), ms(median(after)), f"{ratio:5.2f}x", ms(pct(after, 0.9))))
    print_table(
        f"operator console, headless 160x45 (medians; {small_sessions:,} sessions / {small_items:,}-item transcript "
        f"beside {large_sessions:,} / {large_items:,})",
        rows,
        ("figure", f"{small_sessions:,} / {small_items:,}", f"{large_sessions:,} / {large_items:,}", "ratio", "p90"),
    )


if __name__ == "__main__":
    asyncio.run(main())
