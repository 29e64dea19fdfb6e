"""The log panel: the console's own log records (what used to be printed over the screen), newest last."""

from __future__ import annotations

import logging

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, RichLog, Static

from tui.logs import ConsoleLogging, LogLine

POLL_SECONDS = 0.5
LEVEL_STYLE = {logging.DEBUG: "dim", logging.INFO: "", logging.WARNING: "yellow", logging.ERROR: "bold red"}


def log_text(line: LogLine) -> Text:
    """One record as the panel shows it: time, level, logger, message."""
    style = LEVEL_STYLE.get(line.level, "bold red" if line.level > logging.ERROR else "")
    return Text.assemble(
        (line.at.strftime("%H:%M:%S "), "dim"),
        (f"{line.level_name:<7} ", style or "bold"),
        (f"{line.logger}: ", "dim"),
        (line.message, style),
    )


class LogScreen(Screen[None]):
    """The console's log records, following new ones as they come (``L`` or escape closes it).

    Args:
        logging_: Where the records are kept.
    """

    BINDINGS = [
        Binding("escape,L", "close", "Close", key_display="esc", tooltip="Close the log panel"),
        Binding("j", "scroll('down')", "Down", show=False, tooltip="Scroll down"),
        Binding("k", "scroll('up')", "Up", show=False, tooltip="Scroll up"),
        Binding("g", "scroll('home')", "Top", show=False, tooltip="Jump to the oldest record"),
        Binding("G", "scroll('end')", "End", show=False, tooltip="Jump to the newest record and follow"),
    ]

    def __init__(self, logging_: ConsoleLogging) -> None:
        super().__init__()
        self._logging = logging_
        self._shown = 0

    def compose(self) -> ComposeResult:
        where = f"also in {self._logging.file}" if self._logging.file else "kept in memory only"
        if self._logging.error:
            where = self._logging.error
        yield Static(f"Console log ({where}); L or escape closes", id="log-title", markup=False)
        yield RichLog(id="log", max_lines=self._logging.recent.lines.maxlen, wrap=True, markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        # After the first layout: written before it, lines would wrap at RichLog's minimum width.
        self.call_after_refresh(self._catch_up)
        self.query_one(RichLog).focus()
        self.set_interval(POLL_SECONDS, self._catch_up)

    @property
    def lines(self) -> list[str]:
        """The records shown, as plain text."""
        return [strip.text for strip in self.query_one(RichLog).lines]

    def _catch_up(self) -> None:
        recent = self._logging.recent
        log = self.query_one(RichLog)
        for line in recent.since(self._shown):
            log.write(log_text(line))
        self._shown = recent.total

    def action_scroll(self, where: str) -> None:
        log = self.query_one(RichLog)
        if where == "down":
            log.scroll_down(animate=False)
        elif where == "up":
            log.scroll_up(animate=False)
        elif where == "home":
            log.scroll_home(animate=False)
        else:
            log.scroll_end(animate=False)

    def action_close(self) -> None:
        self.dismiss(None)
