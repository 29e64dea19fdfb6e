"""Modal screens: the help screen listing every key, and the hand-back prompt."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from tui.keys import binding_groups


def help_table(owners: Iterable[tuple[str, Any]]) -> Table:
    """Every binding, grouped by where it works."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", justify="right", min_width=12)
    table.add_column()
    for title, rows in binding_groups(owners):
        if not rows:
            continue
        table.add_row("", f"[b u]{title}[/]")
        for keys, what in rows:
            table.add_row(keys, what)
        table.add_row("", "")
    return table


class HelpScreen(ModalScreen[None]):
    """Every key binding of the console.

    Args:
        owners: (title, class with ``BINDINGS``) in the order to list them.
    """

    BINDINGS = [
        Binding("escape,question_mark,q", "close", "Close", key_display="esc"),
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 80; max-height: 90%; height: auto;
        border: thick $accent; background: $surface; padding: 1 2;
    }
    """

    def __init__(self, owners: list[tuple[str, Any]]) -> None:
        super().__init__()
        self._owners = owners

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Label("[b]Switchboard console — keys[/b]  (ctrl+p opens the command palette)")
            yield Static(help_table(self._owners), id="help-keys")

    @property
    def plain_text(self) -> str:
        """The help as plain text."""
        console = Console(width=100, record=True, file=io.StringIO())
        console.print(help_table(self._owners))
        return console.export_text()

    def action_close(self) -> None:
        self.dismiss(None)


class HandBackScreen(ModalScreen[str | None]):
    """Ask for an optional resolution note before handing a conversation back; enter hands back, escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    HandBackScreen { align: center middle; }
    HandBackScreen > Vertical {
        width: 70; height: auto; border: thick $warning; background: $surface; padding: 1 2;
    }
    """

    def __init__(self, summary: str) -> None:
        super().__init__()
        self._summary = summary

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Hand back to the agent: {self._summary}", markup=False)
            yield Input(placeholder="resolution note (optional) — enter hands back, escape cancels", id="resolution")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """Ask before something that cannot be undone: ``y`` or enter goes ahead, ``n`` or escape does not."""

    BINDINGS = [
        Binding("y,enter", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical {
        width: 70; max-width: 95%; height: auto; border: thick $error; background: $surface; padding: 1 2;
    }
    """

    def __init__(self, question: str) -> None:
        super().__init__()
        self._question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self._question, markup=False)
            yield Label("y or enter: yes · n or escape: no", classes="hint")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
