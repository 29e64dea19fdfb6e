"""The runs view: what is answering or waiting in the org now, and cancelling a run from the keyboard.

A row is an active run of the agent (queued, running, waiting for an approval:
the agent runner's ``ListRuns``) or a conversation a person handles or is
awaited in (the thread's handler: the agent runner has no run for it then).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Literal

from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from tui.data import format_wait
from tui.state import WorkRow
from tui.widgets.cells import Cell
from tui.widgets.sessions_table import Column, fit_columns
from tui.widgets.vim import VIM_TABLE_BINDINGS

# Narrow terminals drop the run id, then the agent or person (the conversation's title shrinks first).
COLUMNS = (
    Column("state", "State", 20),
    Column("for", "For", 7),
    Column("user", "User", 12),
    Column("agent", "Agent / person", 14, drop=1),
    Column("title", "Conversation", 14, flex=1),
    Column("run", "Run", 16, drop=2),
)
SCROLLBAR = 2
STATE_LABEL = {
    "running": "running",
    "queued": "queued",
    "waiting_approval": "waiting for approval",
    "waiting": "waiting for a person",
    "human": "handled by a person",
}
STATE_STYLE = {
    "running": "green",
    "queued": "dim",
    "waiting_approval": "bold yellow",
    "waiting": "bold red",
    "human": "bold magenta",
}
Action = Literal["open", "cancel"]


class RunsTable(DataTable[Cell]):
    """Active runs and hand-offs of the org, most urgent first (waiting for a person, approvals, then running).

    Args:
        clock: The current time.
    """

    BINDINGS = [
        Binding("enter", "work('open')", "Open", tooltip="Open the conversation of the run"),
        Binding("x,ctrl+k", "work('cancel')", "Cancel run", tooltip="Cancel the selected run (asks first)"),
        *VIM_TABLE_BINDINGS,
    ]

    class ActionRequested(Message):
        """The operator pressed a key on a row."""

        def __init__(self, action: Action, row: WorkRow) -> None:
            super().__init__()
            self.action = action
            self.row = row

    def __init__(self, *, clock: Callable[[], datetime], id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._clock = clock
        self._shown: dict[str, WorkRow] = {}
        self._rows: list[WorkRow] = []
        self._fitted: list[tuple[Column, int]] = []

    def _fit(self) -> bool:
        """Choose the columns for the width; whether they changed."""
        fitted = fit_columns(COLUMNS, max(0, self.size.width - SCROLLBAR), padding=self.cell_padding)
        if fitted == self._fitted:
            return False
        self._fitted = fitted
        self.clear(columns=True)
        for column, width in fitted:
            self.add_column(column.label, key=column.key, width=width)
        return True

    def on_resize(self) -> None:
        if self._fit():
            self.show(self._rows)

    @property
    def column_keys(self) -> list[str]:
        """The keys of the columns shown now."""
        return [column.key for column, _width in self._fitted]

    def _cells(self, row: WorkRow, now: datetime) -> dict[str, Cell]:
        waited = format_wait((now - row.since).total_seconds()) if row.since else ""
        return {
            "state": Cell(STATE_LABEL.get(row.state, row.state), style=STATE_STYLE.get(row.state, "")),
            "for": Cell(waited),
            "user": Cell(row.user_id),
            "agent": Cell(row.who),
            "title": Cell(" ".join(row.title.split()) or row.thread_id),
            "run": Cell(row.run_id or "—", style="" if row.run_id else "dim"),
        }

    def show(self, rows: list[WorkRow]) -> None:
        """Show exactly these rows (in this order), keeping the cursor on the row it was on."""
        selected = self.selected
        self._rows = list(rows)
        if not self._fitted:
            self._fit()
        self.clear()
        self._shown = {}
        now = self._clock()
        keys = self.column_keys
        for row in rows:
            self._shown[row.key] = row
            cells = self._cells(row, now)
            self.add_row(*(cells[key] for key in keys), key=row.key)
        if selected is not None and selected.key in self._shown:
            with contextlib.suppress(RowDoesNotExist):
                self.move_cursor(row=self.get_row_index(selected.key))

    def refresh_times(self) -> None:
        """Update the time each row has been in its state."""
        now = self._clock()
        for key, row in self._shown.items():
            cell = self._cells(row, now)["for"]
            if self.get_cell(key, "for").plain != cell.plain:
                self.update_cell(key, "for", cell)

    @property
    def shown(self) -> list[WorkRow]:
        """The rows in display order."""
        return [self._shown[str(row.key.value)] for row in self.ordered_rows]

    @property
    def selected(self) -> WorkRow | None:
        """The row under the cursor."""
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:
            return None
        return self._shown.get(str(key))

    def action_work(self, action: Action) -> None:
        selected = self.selected
        if selected is not None:
            self.post_message(self.ActionRequested(action, selected))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        row = self._shown.get(str(event.row_key.value))
        if row is not None:
            self.post_message(self.ActionRequested("open", row))
