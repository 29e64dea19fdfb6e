"""SVG snapshots of the main screens at a fixed size.

``pytest-textual-snapshot`` pins ``syrupy==4.8.0``, which needs pytest < 9, so it
cannot be pinned beside pytest 9: these tests export the screen with
``App.export_screenshot()`` and compare it with the SVGs checked in under
``snapshots/``. The data are fixed (``InMemoryBackend``) and so is the clock,
so times and ids never change. After an intended change of layout, run with
``SWITCHBOARD_UPDATE_SNAPSHOTS=1`` and review the new SVGs (open them in a browser).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.tui.conftest import wait_for
from tests.tui.fakes import InMemoryBackend, ago, fixed_clock, user_says
from tui.app import ConsoleApp
from tui.screens.conversation import ConversationScreen

SNAPSHOTS = Path(__file__).with_name("snapshots")
SIZE = (120, 32)


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
    await wait_for(pilot, lambda: len(app.dashboard.sessions_table.shown_ids) == 5, what="the demo sessions")
    await wait_for(pilot, lambda: app.dashboard.metrics.latest is not None, what="the demo metrics")
    await pilot.pause()


@pytest.mark.parametrize(
    ("name", "keys"),
    [("sessions", ()), ("escalations", ("2",)), ("metrics", ("3",)), ("help", ("question_mark",))],
)
async def test_main_screens_look_as_recorded(name: str, keys: tuple[str, ...]) -> None:
    app = ConsoleApp(InMemoryBackend(), clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await pilot.press(*keys)
        await pilot.pause()
        _check(app, name)


async def test_the_conversation_screen_looks_as_recorded() -> None:
    app = ConsoleApp(InMemoryBackend(), clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await pilot.press("2", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded)
        await pilot.pause()
        _check(app, "conversation")


async def test_a_conversation_during_a_hand_off_looks_as_recorded() -> None:
    backend = InMemoryBackend()
    # Alice wrote again while she waited for a person (her escalation opened 7 minutes before NOW).
    backend.transcripts["thr_alice"].append(user_says("thr_alice", "msg_4", "Hello? Is anyone there?", at=ago(60)))
    app = ConsoleApp(backend, clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await pilot.press("2", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded)
        await pilot.press("t")
        await wait_for(pilot, lambda: app.state.handler("thr_alice").operator_id == "op-kim", what="taken over")
        await pilot.pause()
        _check(app, "conversation-handoff")
