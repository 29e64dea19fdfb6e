"""Hosted sessions in the console: marked in the table, read-only conversations from OpenAI."""

from __future__ import annotations

import dataclasses

from textual.pilot import Pilot

from tests.tui.conftest import notices, wait_for
from tests.tui.fakes import InMemoryBackend, ago, fixed_clock
from tui.app import ConsoleApp
from tui.data import HostedConversation, SessionInfo
from tui.screens.hosted import HostedConversationScreen
from tui.state import HOSTED_HANDLER


def _hosted_backend() -> InMemoryBackend:
    backend = InMemoryBackend()
    backend.sessions.append(
        SessionInfo(
            id="ses_hosted",
            user_id="hana",
            org_id="acme",
            agent_id="concierge",
            channel="web",
            status="active",
            created_at=ago(60),
            hosted=True,
        )
    )
    backend.hosted["ses_hosted"] = [
        HostedConversation(
            id="cthr_1",
            title="Plan upgrade",
            messages=(("user", "Can I upgrade to Pro?"), ("agent", "Yes: Settings, then Plan."), ("widget", "")),
        )
    ]
    return backend


async def _open(pilot: Pilot[None], app: ConsoleApp, session_id: str) -> HostedConversationScreen:
    table = app.dashboard.sessions_table
    await wait_for(pilot, lambda: session_id in table.shown_ids, what="the hosted session")
    table.focus()
    table.move_cursor(row=table.get_row_index(session_id))
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, HostedConversationScreen) and app.screen.loaded, what="open")
    assert isinstance(app.screen, HostedConversationScreen)
    return app.screen


async def test_a_hosted_session_is_marked_and_opens_read_only_from_openai() -> None:
    app = ConsoleApp(_hosted_backend(), clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=(150, 40)) as pilot:
        screen = await _open(pilot, app, "ses_hosted")
        row = app.state.row("ses_hosted")
        assert row is not None and row.handler == HOSTED_HANDLER
        assert app.dashboard.sessions_table.get_cell("ses_hosted", "handler").plain == HOSTED_HANDLER
        assert screen.text.splitlines() == [
            "Plan upgrade  cthr_1",
            "user: Can I upgrade to Pro?",
            "agent: Yes: Settings, then Plan.",
            "widget: ",
        ]
        # ctrl+r reads again (what OpenAI has now).
        app.backend.hosted["ses_hosted"] = [  # type: ignore[attr-defined]
            dataclasses.replace(app.backend.hosted["ses_hosted"][0], title="Plan upgrade (done)")  # type: ignore[attr-defined]
        ]
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: screen.loaded and "Plan upgrade (done)" in screen.text, what="reloaded")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HostedConversationScreen), what="back")
        # Nothing to take over: OpenAI runs it.
        await pilot.press("t")
        await wait_for(pilot, lambda: any("hosted by OpenAI" in n for n in notices(app)), what="the refusal")


async def test_a_failure_to_read_from_openai_is_shown_not_raised() -> None:
    backend = _hosted_backend()
    backend.hosted.pop("ses_hosted")  # the fake refuses as session_api does for what it cannot read
    app = ConsoleApp(backend, clock=fixed_clock, metrics_interval=60)
    async with app.run_test(size=(150, 40)) as pilot:
        screen = await _open(pilot, app, "ses_hosted")
        assert screen.text.startswith("Could not read the conversations:")
