"""The escalation queue: open and claimed escalations, oldest first, worked from the keyboard."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Literal

from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from tui.data import EscalationInfo, format_wait
from tui.widgets.cells import Cell
from tui.widgets.vim import VIM_TABLE_BINDINGS

COLUMNS = (
    ("status", "Status", 8),
    ("waiting", "Waiting", 9),
    ("user", "User", 16),
    ("reason", "Reason", 40),
    ("claimed_by", "Claimed by", 14),
)
STATUS_STYLE = {"open": "bold red", "claimed": "bold yellow"}
Action = Literal["open", "claim", "reply", "hand_back"]


class EscalationQueue(DataTable[Cell]):
    """Pending escalations of the org.

    Args:
        clock: The current time (tests pass a fixed one).
    """

    BINDINGS = [
        Binding("enter", "escalation('open')", "Open", tooltip="Open the escalated conversation"),
        Binding("c", "escalation('claim')", "Claim", tooltip="Claim the escalation: take over its conversation"),
        Binding("r", "escalation('reply')", "Reply", tooltip="Reply into the conversation"),
        Binding(
            "b",
            "escalation('hand_back')",
            "Hand back",
            tooltip="Hand the conversation back to the agent, resolving the escalation",
        ),
        *VIM_TABLE_BINDINGS,
    ]

    class ActionRequested(Message):
        """The operator pressed a key on an escalation."""

        def __init__(self, action: Action, escalation_id: str) -> None:
            super().__init__()
            self.action = action
            self.escalation_id = escalation_id

    def __init__(self, *, clock: Callable[[], datetime], id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._clock = clock
        self._shown: dict[str, EscalationInfo] = {}

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width)

    def _cells(self, e: EscalationInfo, now: datetime) -> list[Cell]:
        reason = " ".join(e.reason.split())
        return [
            Cell(e.status, e.status, STATUS_STYLE.get(e.status, "")),
            Cell(format_wait((now - e.opened_at).total_seconds()), (e.opened_at, e.id)),
            Cell(e.user_id),
            Cell(reason),
            Cell(e.claimed_by),
        ]

    def show_all(self, escalations: Iterable[EscalationInfo]) -> None:
        """Replace every row."""
        self.clear()
        self._shown = {}
        for escalation in escalations:
            self.upsert(escalation, sort=False)
        self._sort()

    def upsert(self, escalation: EscalationInfo, *, sort: bool = True) -> None:
        """Add or change an escalation's row; a resolved one leaves the queue."""
        if not escalation.pending:
            if self._shown.pop(escalation.id, None) is not None:
                with contextlib.suppress(RowDoesNotExist):
                    self.remove_row(escalation.id)
            return
        cells = self._cells(escalation, self._clock())
        if escalation.id in self._shown:
            for (key, _label, _width), cell in zip(COLUMNS, cells, strict=True):
                if self.get_cell(escalation.id, key).plain != cell.plain:
                    self.update_cell(escalation.id, key, cell)
        else:
            self.add_row(*cells, key=escalation.id)
            if sort:
                self._sort()
        self._shown[escalation.id] = escalation

    def refresh_times(self) -> None:
        """Update the waiting times whose text changed."""
        now = self._clock()
        for escalation_id, escalation in self._shown.items():
            waiting = self._cells(escalation, now)[1]
            if self.get_cell(escalation_id, "waiting").plain != waiting.plain:
                self.update_cell(escalation_id, "waiting", waiting)

    def _sort(self) -> None:
        self.sort("waiting", key=lambda cell: cell.sort_key)

    @property
    def shown(self) -> list[EscalationInfo]:
        """Escalations in display order (oldest first)."""
        return [self._shown[str(row.key.value)] for row in self.ordered_rows]

    @property
    def selected(self) -> EscalationInfo | None:
        """The escalation under the cursor."""
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return self._shown.get(str(key))

    def action_escalation(self, action: Action) -> None:
        selected = self.selected
        if selected is not None:
            self.post_message(self.ActionRequested(action, selected.id))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.post_message(self.ActionRequested("open", str(event.row_key.value)))
