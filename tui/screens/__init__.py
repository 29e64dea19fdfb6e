"""Screens of the console."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.screen import Screen

if TYPE_CHECKING:
    from tui.app import ConsoleApp


class ConsoleScreen(Screen[None]):
    """A full screen of the console app, reaching the app's backend and state (typed)."""

    @property
    def console(self) -> ConsoleApp:
        """The console app (typed)."""
        from tui.app import ConsoleApp

        assert isinstance(self.app, ConsoleApp)
        return self.app
