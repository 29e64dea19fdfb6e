"""The live sessions table: rows are added, changed and removed in place as changes arrive."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Literal

from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from tui.data import format_age
from tui.state import SORT_KEYS, STATUS_FILTERS, SessionRow, SortKey, StatusFilter
from tui.widgets.cells import Cell

COLUMNS = (
    ("user", "User", 16),
    ("org", "Org", 10),
    ("agent", "Agent", 12),
    ("channel", "Channel", 7),
    ("status", "Status", 9),
    ("age", "Age", 6),
    ("activity", "Last activity", 13),
    ("escalation", "Escalation", 10),
    ("handler", "Handler", 10),
)
STATUS_STYLE = {"active": "green", "ended": "dim", "cancelled": "red"}
ESCALATION_STYLE = {"open": "bold red", "claimed": "bold yellow"}
HANDLER_STYLE = {"agent": "dim", "waiting": "bold red", "you": "bold magenta"}
OTHER_OPERATOR_STYLE = "yellow"
Action = Literal["open", "take_over", "hand_back"]
_SORT_COLUMN: dict[SortKey, str] = {
    "newest": "age",
    "activity": "activity",
    "user": "user",
    "agent": "agent",
    "status": "status",
}


class SessionsTable(DataTable[Cell]):
    """Live sessions of the org, filterable and sortable from the keyboard.

    Args:
        rows: Every session's row now (the table shows those passing its filter).
        clock: The current time (tests pass a fixed one).
    """

    BINDINGS = [
        Binding("enter", "session('open')", "Open", tooltip="Open the session's conversation"),
        Binding("t", "session('take_over')", "Take over", tooltip="Take over the conversation: the agent stops"),
        Binding("b", "session('hand_back')", "Hand back", tooltip="Hand the conversation back to the agent"),
        Binding("f", "cycle_status_filter", "Filter status", tooltip="Show all / active / escalated sessions"),
        Binding("s", "cycle_sort", "Sort", tooltip="Sort by newest, activity, user, agent, status"),
        Binding("S", "reverse_sort", "Reverse", show=False, tooltip="Reverse the sort order"),
    ]

    class ActionRequested(Message):
        """The operator pressed a key on a session: open, take over or hand back its conversation."""

        def __init__(self, action: Action, session_id: str) -> None:
            super().__init__()
            self.action = action
            self.session_id = session_id

    class ViewChanged(Message):
        """The filter or sort changed (the screen shows it above the table)."""

    def __init__(
        self, *, rows: Callable[[], Iterable[SessionRow]], clock: Callable[[], datetime], id: str | None = None
    ) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._rows = rows
        self._clock = clock
        self.filter_text = ""
        self.status_filter: StatusFilter = "all"
        self.sort_key: SortKey = "newest"
        self.sort_reversed = False
        self._shown: dict[str, SessionRow] = {}

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width)

    # -- rows -----------------------------------------------------------------

    def _cells(self, row: SessionRow, now: datetime) -> dict[str, Cell]:
        s = row.session
        age = (now - s.created_at).total_seconds()
        idle = (now - row.last_activity).total_seconds()
        return {
            "user": Cell(s.user_id, (s.user_id, s.created_at, s.id)),
            "org": Cell(s.org_id),
            "agent": Cell(s.agent_id, (s.agent_id, s.created_at, s.id)),
            "channel": Cell(s.channel),
            "status": Cell(s.status, (s.status, s.created_at, s.id), STATUS_STYLE.get(s.status, "")),
            "age": Cell(format_age(age), (s.created_at, s.id)),
            "activity": Cell(f"{format_age(idle)} ago", (row.last_activity, s.id)),
            "escalation": Cell(
                f"⚑ {row.escalation}" if row.escalation else "",
                row.escalation,
                ESCALATION_STYLE.get(row.escalation, ""),
            ),
            "handler": Cell(row.handler, row.handler, HANDLER_STYLE.get(row.handler, OTHER_OPERATOR_STYLE)),
        }

    def show_rows(self) -> None:
        """Replace every row (a fresh snapshot, or a new filter)."""
        rows = self._rows()
        cursor_key = self._cursor_key()
        self.clear()
        self._shown = {}
        now = self._clock()
        for row in rows:
            if row.matches(self.filter_text, self.status_filter):
                self._shown[row.session.id] = row
                cells = self._cells(row, now)
                self.add_row(*(cells[key] for key, _label, _width in COLUMNS), key=row.session.id)
        self._sort()
        if cursor_key is not None and cursor_key in self._shown:
            self.move_cursor(row=self.get_row_index(cursor_key))
        self.post_message(self.ViewChanged())

    def upsert_row(self, row: SessionRow) -> None:
        """Add, change or remove one session's row, touching only the cells that changed."""
        session_id = row.session.id
        visible = row.matches(self.filter_text, self.status_filter)
        previous = self._shown.get(session_id)
        if not visible:
            if previous is not None:
                self._remove(session_id)
                self.post_message(self.ViewChanged())
            return
        cells = self._cells(row, self._clock())
        self._shown[session_id] = row
        if previous is None:
            self.add_row(*(cells[key] for key, _label, _width in COLUMNS), key=session_id)
            self._sort()
            self.post_message(self.ViewChanged())
            return
        resort = False
        for key, cell in cells.items():
            if self.get_cell(session_id, key).plain != cell.plain or key == _SORT_COLUMN[self.sort_key]:
                self.update_cell(session_id, key, cell)
                resort = resort or key == _SORT_COLUMN[self.sort_key]
        if resort and self.sort_key not in ("newest",):
            self._sort()

    def _remove(self, session_id: str) -> None:
        self._shown.pop(session_id, None)
        with contextlib.suppress(RowDoesNotExist):
            self.remove_row(session_id)

    def refresh_times(self) -> None:
        """Update the age and last-activity cells whose text changed (a timer calls this)."""
        now = self._clock()
        for session_id, row in self._shown.items():
            cells = self._cells(row, now)
            for key in ("age", "activity"):
                if self.get_cell(session_id, key).plain != cells[key].plain:
                    self.update_cell(session_id, key, cells[key])

    def _cursor_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:
            return None
        return key

    def _sort(self) -> None:
        column = _SORT_COLUMN[self.sort_key]
        # Newest first and most recent activity first read naturally; the others A to Z.
        descending = self.sort_key in ("newest", "activity")
        self.sort(column, key=lambda cell: cell.sort_key, reverse=descending != self.sort_reversed)

    @property
    def shown_ids(self) -> list[str]:
        """Session ids in display order."""
        return [str(row.key.value) for row in self.ordered_rows]

    @property
    def selected_session_id(self) -> str | None:
        """The session under the cursor."""
        return self._cursor_key()

    # -- view -----------------------------------------------------------------

    def set_filter(self, text: str) -> None:
        """Show only rows matching every word of ``text``."""
        self.filter_text = text.strip()
        self.show_rows()

    def describe_view(self) -> str:
        """The filter and sort, for the line above the table."""
        arrow = "↑" if (self.sort_key in ("newest", "activity")) == self.sort_reversed else "↓"
        parts = [f"{len(self._shown)} shown", f"status: {self.status_filter}", f"sort: {self.sort_key} {arrow}"]
        if self.filter_text:
            parts.append(f"filter: {self.filter_text!r}")
        return "  ·  ".join(parts)

    def action_session(self, action: Action) -> None:
        session_id = self.selected_session_id
        if session_id is not None:
            self.post_message(self.ActionRequested(action, session_id))

    def action_cycle_status_filter(self) -> None:
        index = STATUS_FILTERS.index(self.status_filter)
        self.status_filter = STATUS_FILTERS[(index + 1) % len(STATUS_FILTERS)]
        self.show_rows()

    def action_cycle_sort(self) -> None:
        index = SORT_KEYS.index(self.sort_key)
        self.sort_key = SORT_KEYS[(index + 1) % len(SORT_KEYS)]
        self._sort()
        self.post_message(self.ViewChanged())

    def action_reverse_sort(self) -> None:
        self.sort_reversed = not self.sort_reversed
        self._sort()
        self.post_message(self.ViewChanged())

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.post_message(self.ActionRequested("open", str(event.row_key.value)))
