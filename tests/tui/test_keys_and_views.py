"""Keyboard behaviour that needs no network: filtering, sorting, help and the command palette."""

from __future__ import annotations

from textual.command import CommandPalette

from tests.tui.fakes import InMemoryBackend, fixed_clock
from tests.tui.test_live import keys_for
from tui.app import ConsoleApp
from tui.screens.dialogs import HelpScreen


def _app() -> ConsoleApp:
    return ConsoleApp(InMemoryBackend(), clock=fixed_clock, metrics_interval=60)


async def test_slash_filters_the_sessions_by_words_and_escape_clears_the_filter() -> None:
    app = _app()
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.dashboard.sessions_table
        await pilot.pause()
        assert len(table.shown_ids) == 5
        await pilot.press("slash", *keys_for("support active"))
        assert table.shown_ids == ["ses_03", "ses_01"]
        await pilot.press("escape")
        assert len(table.shown_ids) == 5
        assert table.has_focus


async def test_f_cycles_the_status_filter_and_s_cycles_the_sort() -> None:
    app = _app()
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.dashboard.sessions_table
        await pilot.pause()
        assert table.shown_ids == ["ses_03", "ses_02", "ses_01", "ses_04", "ses_05"]  # newest first
        await pilot.press("f")
        assert table.shown_ids == ["ses_03", "ses_02", "ses_01"]  # active
        await pilot.press("f")
        assert table.shown_ids == ["ses_02", "ses_01"]  # escalated
        await pilot.press("f", "s")
        assert table.sort_key == "activity"
        assert table.shown_ids[:2] == ["ses_02", "ses_03"]  # bob 30s ago, carol 95s ago
        await pilot.press("s")
        assert table.shown_ids == ["ses_01", "ses_02", "ses_03", "ses_04", "ses_05"]  # by user
        await pilot.press("S")
        assert table.shown_ids == ["ses_05", "ses_04", "ses_03", "ses_02", "ses_01"]
        assert "sort: user" in table.describe_view()


async def test_the_help_screen_lists_every_binding_of_every_screen() -> None:
    app = _app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = app.screen.plain_text
        for what in (
            "Claim the escalation: take over its conversation",
            "Take over the conversation: the agent stops",
            "Hand the conversation back to the agent",
            "Reply into the conversation",
            "Filter the sessions",
            "Approve the newest action card waiting for approval",
            "Reject (deny) the newest action card waiting for approval",
            "Quit",
        ):
            assert what in text
        for group in ("Everywhere", "Sessions", "Escalation queue", "Conversation"):
            assert group in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_the_command_palette_runs_a_key_binding_by_name() -> None:
    app = _app()
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+p")
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*keys_for("sort by newest"))
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert app.dashboard.sessions_table.sort_key == "activity"
