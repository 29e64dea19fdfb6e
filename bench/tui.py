"""How responsive the console stays: 500 live sessions and a 1,000-item transcript.

The console runs headless (``App.run_test``) over a backend that serves
generated data from memory, so the figures are the console's own (state,
widgets, layout and a screen refresh), not the network's. Each figure is the
median of repeated runs, timed from handing the app the data or change to the
app being idle again with the screen refreshed (``pilot.pause()``; its own
round trip is printed as "idle round trip"). One change costs a repaint of the
visible rows (``DataTable`` redraws them after any cell update); changes that
arrive together share one repaint, as the burst figure shows.
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
from tui.data import EscalationInfo, MetricsSnapshot, SessionChange, SessionInfo, ThreadChange
from tui.messages import SessionChanged, SnapshotLoaded
from tui.screens.conversation import ConversationScreen

SESSIONS = 500
ITEMS = 1000
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


class GeneratedBackend:
    """A console backend over generated data; its feeds stay quiet (the benchmark posts changes itself)."""

    def __init__(self) -> None:
        self.sessions = _sessions(SESSIONS)
        self.transcript = _items("thr_00000", ITEMS)

    @property
    def targets(self) -> dict[str, str]:
        return {SESSION_API: "memory", THREAD_STORE: "memory"}

    async def sign_in(self) -> Principal:
        return Principal(user_id="op-bench", org_id="bench", roles=("operator",))

    async def watch_sessions(self) -> AsyncIterator[SessionChange]:
        yield SessionChange(id="0-0", type="watch.started", at=START)
        await asyncio.Event().wait()

    async def load_sessions(self) -> list[SessionInfo]:
        return []

    async def load_escalations(self) -> list[EscalationInfo]:
        return []

    async def load_thread_activity(self) -> dict[str, datetime]:
        return {}

    async def watch_threads(self, since: str) -> AsyncIterator[ThreadChange]:
        await asyncio.Event().wait()
        yield ThreadChange(id="0-0", type="never", thread_id="", item_id="", at=START)

    async def load_transcript(self, thread_id: str) -> list[ThreadItem]:
        return list(self.transcript)

    async def load_metrics(self) -> MetricsSnapshot:
        return MetricsSnapshot(at=START)

    # The benchmark measures rendering only; it never presses the keys that act.
    async def claim(self, escalation_id: str) -> Handoff:
        raise RuntimeError("the rendering benchmark does not claim escalations")

    async def take_over(self, thread_id: str) -> Handoff:
        raise RuntimeError("the rendering benchmark does not take conversations over")

    async def hand_back(self, thread_id: str, resolution: str) -> Handoff:
        raise RuntimeError("the rendering benchmark does not hand conversations back")

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


async def _sessions_figures(app: ConsoleApp, pilot: Pilot[Any], backend: GeneratedBackend) -> list[tuple[str, ...]]:
    table = app.dashboard.sessions_table
    renders = [
        await _timed(pilot, lambda: app.post_message(SnapshotLoaded(backend.sessions, [], {}))) for _ in range(ROUNDS)
    ]
    assert len(table.shown_ids) == SESSIONS
    changes = []
    for i in range(UPDATES):
        session = backend.sessions[(i * 37) % SESSIONS]
        changed = SessionInfo(**{**_fields(session), "agent_id": f"agent-{i}"})
        change = SessionChange(id=f"{i}-0", type="session.updated", at=START + timedelta(hours=1, seconds=i))
        change = SessionChange(id=change.id, type=change.type, at=change.at, session=changed)
        changes.append(await _timed(pilot, lambda change=change: app.post_message(SessionChanged(change))))
    inserts = []
    for i in range(UPDATES):
        new = SessionInfo(**{**_fields(backend.sessions[0]), "id": f"ses_new_{i:04d}", "created_at": START})
        change = SessionChange(id=f"n{i}-0", type="session.created", at=START, session=new)
        inserts.append(await _timed(pilot, lambda change=change: app.post_message(SessionChanged(change))))
    assert len(table.shown_ids) == SESSIONS + UPDATES
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
    idle = [await _timed(pilot, lambda: None) for _ in range(ROUNDS)]
    return [
        ("idle round trip (nothing changed)", ms(median(idle)), ms(pct(idle, 0.9))),
        (f"render {SESSIONS} sessions (snapshot)", ms(median(renders)), ms(pct(renders, 0.9))),
        ("apply a session change (one row)", ms(median(changes)), ms(pct(changes, 0.9))),
        ("insert a new session (sorted)", ms(median(inserts)), ms(pct(inserts, 0.9))),
        (f"per change in a burst of {UPDATES}", ms(median(bursts)), ms(pct(bursts, 0.9))),
    ]


def _fields(session: SessionInfo) -> dict[str, Any]:
    return {name: getattr(session, name) for name in SessionInfo.__slots__}


async def _transcript_figures(app: ConsoleApp, pilot: Pilot[Any], backend: GeneratedBackend) -> list[tuple[str, ...]]:
    screen = ConversationScreen(thread_id="thr_00000", session_id="ses_00000")
    await app.push_screen(screen)
    while not screen.loaded:
        await pilot.pause(0.01)
    transcript = screen.transcript
    loads = [await _timed(pilot, lambda: transcript.load(backend.transcript)) for _ in range(ROUNDS)]
    assert len(transcript.item_ids) == ITEMS
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
    assert len(transcript.item_ids) == ITEMS + UPDATES + 1
    return [
        (f"render a {ITEMS}-item transcript", ms(median(loads)), ms(pct(loads, 0.9))),
        ("append an item", ms(median(appends)), ms(pct(appends, 0.9))),
        ("apply a streamed update (one item)", ms(median(deltas)), ms(pct(deltas, 0.9))),
    ]


async def main() -> None:
    """Print the console's render and update times."""
    backend = GeneratedBackend()
    app = ConsoleApp(backend, clock=lambda: START + timedelta(hours=2), metrics_interval=3600)
    async with app.run_test(size=(160, 48)) as pilot:
        while not app.principal:
            await pilot.pause(0.01)
        rows = await _sessions_figures(app, pilot, backend)
        rows += await _transcript_figures(app, pilot, backend)
    print_table("operator console, headless 160x48 (median and p90)", rows, ("figure", "median", "p90"))


if __name__ == "__main__":
    asyncio.run(main())
