"""SVG snapshots of every screen at 80x24 (the smallest terminal the console supports) and 160x45.

``pytest-textual-snapshot`` pins ``syrupy==4.8.0``, which needs pytest < 9, so it
cannot be pinned beside pytest 9: these tests export the screen with
``App.export_screenshot()`` and compare it with the SVGs checked in under
``snapshots/``. The data are fixed (``InMemoryBackend``) and so is the clock,
so times and ids never change. After an intended change of layout, run with
``SWITCHBOARD_UPDATE_SNAPSHOTS=1`` and review the new SVGs (open them in a browser).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.tui.conftest import wait_for
from tests.tui.fakes import NOW, InMemoryBackend, ago, fixed_clock, user_says, with_runs
from tui.app import ConsoleApp
from tui.screens.conversation import ConversationScreen
from tui.screens.dialogs import HandBackScreen
from tui.screens.logs import LogScreen

SNAPSHOTS = Path(__file__).with_name("snapshots")
SIZES = [(80, 24), (160, 45)]
Setup = Callable[[Pilot[None], ConsoleApp], Awaitable[None]]


def _check(app: ConsoleApp, name: str) -> None:
    svg = app.export_screenshot(title=f"switchboard console: {name}")
    path = SNAPSHOTS / f"{name}.svg"
    if os.environ.get("SWITCHBOARD_UPDATE_SNAPSHOTS") or not path.exists():
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(svg)
        if not os.environ.get("SWITCHBOARD_UPDATE_SNAPSHOTS"):
            pytest.fail(f"{path} did not exist and was written: review it and run again")
    assert svg == path.read_text(), f"{name} differs from {path}; SWITCHBOARD_UPDATE_SNAPSHOTS=1 updates it"


async def _ready(pilot: Pilot[None], app: ConsoleApp) -> None:
    await wait_for(pilot, lambda: len(app.dashboard.sessions_table.shown_ids) == 7, what="the demo sessions")
    await wait_for(pilot, lambda: app.dashboard.metrics.latest is not None, what="the demo metrics")
    await wait_for(pilot, lambda: app.dashboard.sessions_table.get_cell("ses_05", "last").plain != "", what="last")
    await pilot.pause()


def _keys(*keys: str) -> Setup:
    async def press(pilot: Pilot[None], _app: ConsoleApp) -> None:
        await pilot.press(*keys)

    return press


async def _runs(pilot: Pilot[None], app: ConsoleApp) -> None:
    await pilot.press("4")
    await wait_for(pilot, lambda: len(app.dashboard.runs.shown) == 4, what="the runs")


async def _conversation(pilot: Pilot[None], app: ConsoleApp) -> None:
    await pilot.press("2", "enter")
    await wait_for(pilot, lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded, what="open")


async def _handoff(pilot: Pilot[None], app: ConsoleApp) -> None:
    await _conversation(pilot, app)
    await pilot.press("t")
    await wait_for(pilot, lambda: app.state.handler("thr_alice").operator_id == "op-kim", what="taken over")
    await pilot.press("k", "r")  # the newest item selected, the reply box open


async def _hand_back(pilot: Pilot[None], app: ConsoleApp) -> None:
    await pilot.press("2", "b")
    await wait_for(pilot, lambda: isinstance(app.screen, HandBackScreen), what="the hand-back dialog")


async def _log(pilot: Pilot[None], app: ConsoleApp) -> None:
    app.logs.recent.lines.clear()
    for level, name, text in (
        (logging.WARNING, "switchboard.streams", "session_api failed (UNAVAILABLE); trying again with back-off"),
        (logging.INFO, "tui.feeds", "session_api is back"),
    ):
        record = logging.LogRecord(name, level, __file__, 1, text, None, None)
        record.created = NOW.timestamp()
        app.logs.recent.emit(record)
    await pilot.press("L")
    screen = app.screen
    assert isinstance(screen, LogScreen)
    await wait_for(pilot, lambda: any("is back" in line for line in screen.lines), what="the log records")


SCREENS: list[tuple[str, Setup]] = [
    ("sessions", _keys()),
    ("filter", _keys("slash", "b", "a", "n", "k")),
    ("escalations", _keys("2")),
    ("metrics", _keys("3")),
    ("runs", _runs),
    ("help", _keys("question_mark")),
    ("log", _log),
    ("conversation", _conversation),
    ("conversation-handoff", _handoff),
    ("hand-back", _hand_back),
]


@pytest.mark.parametrize(("width", "height"), SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize(("name", "setup"), SCREENS, ids=[name for name, _ in SCREENS])
async def test_every_screen_looks_as_recorded(name: str, setup: Setup, width: int, height: int) -> None:
    backend = with_runs(InMemoryBackend())
    # Alice wrote again while she waited for a person (her escalation opened 7 minutes before NOW).
    backend.transcripts["thr_alice"].append(user_says("thr_alice", "msg_4", "Hello? Is anyone there?", at=ago(60)))
    app = ConsoleApp(backend, clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=(width, height)) as pilot:
        await _ready(pilot, app)
        await setup(pilot, app)
        await pilot.pause()
        _check(app, f"{name}-{width}x{height}")
