"""The live sessions table: rows are added, changed and removed in place as changes arrive.

Each row says what the conversation is about (its thread's title and last
message), who answers it (the agent by name, "waiting 4m07s" for a person, you,
or the operator holding it) and its escalation. The columns fit the width:
narrow terminals drop, in order, the session's org (shown only when the table
holds more than one org), channel, age, status and last activity; user, title,
last message, handler and escalation always stay, and title and last message
share what is left. The line under the table shows the highlighted session in
full (names, ids, title, escalation reason, the whole last message).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from tui.data import format_age, format_wait
from tui.state import SORT_KEYS, STATUS_FILTERS, SessionRow, SortKey, StatusFilter
from tui.widgets.cells import Cell
from tui.widgets.vim import VIM_TABLE_BINDINGS


@dataclass(frozen=True, slots=True)
class Column:
    """A column of the table.

    Attributes:
        width: Its width (flexible columns: the least they get).
        flex: Its share of the width the fixed columns leave (0: fixed).
        drop: When the width runs short, columns with the highest ``drop`` go first (0: never dropped).
    """

    key: str
    label: str
    width: int
    flex: int = 0
    drop: int = 0


COLUMNS = (
    Column("user", "User", 6),  # widened to the longest user id shown, up to USER_WIDTH
    Column("title", "Title", 14, flex=2),
    Column("last", "Last message", 20, flex=3),
    Column("handler", "Handler", 14),
    Column("escalation", "Esc", 9),
    Column("activity", "Active", 9, drop=1),
    Column("status", "Status", 9, drop=2),
    Column("age", "Age", 5, drop=3),
    Column("channel", "Chan", 5, drop=4),
    Column("org", "Org", 10, drop=5),  # only with sessions of more than one org
)
USER_WIDTH = 16
SCROLLBAR = 2
STATUS_STYLE = {"active": "green", "ended": "dim", "cancelled": "red"}
ESCALATION_STYLE = {"open": "bold red", "claimed": "bold yellow"}
HANDLER_STYLE = {"agent": "", "waiting": "bold red", "you": "bold magenta"}
OTHER_OPERATOR_STYLE = "yellow"
LAST_MESSAGE_STYLE = {"user": "", "agent": "dim", "operator": "magenta"}
Action = Literal["open", "take_over", "hand_back"]
_SORT_COLUMN: dict[SortKey, str] = {
    "newest": "age",
    "activity": "activity",
    "user": "user",
    "handler": "handler",
    "status": "status",
}  # the column whose change may move a row
_TIMED = ("age", "activity", "handler")


def fit_columns(columns: Iterable[Column], width: int, *, padding: int = 1) -> list[tuple[Column, int]]:
    """The columns that fit ``width`` and the width each gets (flexible ones share what is left)."""
    kept = list(columns)
    per_column = 2 * padding

    def fixed_total(cols: list[Column]) -> int:
        return sum(c.width + per_column for c in cols)

    while fixed_total(kept) > width and any(c.drop for c in kept):
        kept.remove(max((c for c in kept if c.drop), key=lambda c: c.drop))
    spare = max(0, width - fixed_total(kept))
    shares = sum(c.flex for c in kept)
    fitted: list[tuple[Column, int]] = []
    given = 0
    flexible = [c for c in kept if c.flex]
    for column in kept:
        extra = 0
        if column.flex and shares:
            extra = spare - given if column is flexible[-1] else spare * column.flex // shares
            given += extra
        fitted.append((column, column.width + extra))
    return fitted


def handler_text(row: SessionRow, now: datetime) -> str:
    """The Handler cell: the agent by name, ``waiting 4m07s``, ``you`` or the holding operator."""
    if row.handler == "agent":
        return row.agent or "agent"
    if row.handler == "waiting":
        return f"waiting {format_wait((now - row.waiting_since).total_seconds())}" if row.waiting_since else "waiting"
    return row.handler


class SessionsTable(DataTable[Cell]):
    """Live sessions of the org, filterable and sortable from the keyboard.

    Args:
        rows: Every session's row now (the table shows those passing its filter).
        clock: The current time (tests pass a fixed one).
    """

    BINDINGS = [
        Binding("enter", "session('open')", "Open", tooltip="Open the session's conversation"),
        Binding("t", "session('take_over')", "Take over", tooltip="Take over the conversation: the agent stops"),
        Binding(
            "b", "session('hand_back')", "Hand back", show=False, tooltip="Hand the conversation back to the agent"
        ),
        Binding("f", "cycle_status_filter", "Status", tooltip="Show all / active / escalated sessions"),
        Binding("s", "cycle_sort", "Sort", tooltip="Sort by newest, activity, user, handler, status"),
        Binding("S", "reverse_sort", "Reverse", show=False, tooltip="Reverse the sort order"),
        *VIM_TABLE_BINDINGS,
    ]

    class ActionRequested(Message):
        """The operator pressed a key on a session: open, take over or hand back its conversation."""

        def __init__(self, action: Action, session_id: str) -> None:
            super().__init__()
            self.action = action
            self.session_id = session_id

    class ViewChanged(Message):
        """The filter or sort changed (the screen shows it above the table)."""

    class SelectionChanged(Message):
        """Another session is highlighted, or the highlighted one changed (the screen shows it in full)."""

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
        self._columns: list[tuple[Column, int]] = []
        self._fitted_for = (-1, -1, False)  # (width, user width, several orgs) the columns were fitted for

    # -- columns --------------------------------------------------------------

    @property
    def column_keys(self) -> list[str]:
        """The keys of the columns shown now, left to right."""
        return [column.key for column, _width in self._columns]

    def _fit(self, rows: Iterable[SessionRow]) -> bool:
        """Choose the columns for the width and the rows; whether they changed."""
        rows = list(rows)
        user_width = min(USER_WIDTH, max([len(r.session.user_id) for r in rows] + [COLUMNS[0].width]))
        several_orgs = len({r.session.org_id for r in rows}) > 1
        width = max(0, self.size.width - SCROLLBAR)
        key = (width, user_width, several_orgs)
        if key == self._fitted_for and self._columns:
            return False
        self._fitted_for = key
        columns = [
            Column(c.key, c.label, user_width) if c.key == "user" else c
            for c in COLUMNS
            if c.key != "org" or several_orgs
        ]
        fitted = fit_columns(columns, width, padding=self.cell_padding)
        if fitted == self._columns:
            return False
        self._columns = fitted
        return True

    def on_resize(self) -> None:
        if self._fit(self._shown.values()):
            self.show_rows()

    # -- rows -----------------------------------------------------------------

    def _cells(self, row: SessionRow, now: datetime) -> dict[str, Cell]:
        s = row.session
        age = (now - s.created_at).total_seconds()
        idle = (now - row.last_activity).total_seconds()
        last = row.last_message
        handler_style = HANDLER_STYLE.get(row.handler, OTHER_OPERATOR_STYLE)
        return {
            "user": Cell(s.user_id, (s.user_id, s.created_at, s.id)),
            "title": Cell(" ".join(row.title.split()), (row.title, s.id))
            if s.thread_id
            else Cell("no conversation yet", ("", s.id), "dim italic"),
            "last": Cell(
                last.line if last else "",
                (last.at if last else s.created_at, s.id),
                LAST_MESSAGE_STYLE.get(last.role, "") if last else "",
            ),
            "handler": Cell(handler_text(row, now), (row.handler, row.agent, s.created_at, s.id), handler_style),
            "escalation": Cell(
                f"⚑ {row.escalation}" if row.escalation else "",
                row.escalation,
                ESCALATION_STYLE.get(row.escalation, ""),
            ),
            "activity": Cell(f"{format_age(idle)} ago", (row.last_activity, s.id)),
            "status": Cell(s.status, (s.status, s.created_at, s.id), STATUS_STYLE.get(s.status, "")),
            "age": Cell(format_age(age), (s.created_at, s.id)),
            "channel": Cell(s.channel),
            "org": Cell(s.org_id),
        }

    def show_rows(self) -> None:
        """Replace every row (a fresh snapshot, a new filter, or a width that fits other columns)."""
        rows = [row for row in self._rows() if row.matches(self.filter_text, self.status_filter)]
        cursor_key = self._cursor_key()
        self._fit(rows)
        self.clear(columns=True)
        for column, width in self._columns:
            self.add_column(column.label, key=column.key, width=width)
        self._shown = {}
        now = self._clock()
        keys = self.column_keys
        for row in rows:
            self._shown[row.session.id] = row
            cells = self._cells(row, now)
            self.add_row(*(cells[key] for key in keys), key=row.session.id)
        self._sort()
        if cursor_key is not None and cursor_key in self._shown:
            self.move_cursor(row=self.get_row_index(cursor_key))
        self.post_message(self.ViewChanged())
        self.post_message(self.SelectionChanged())

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
        keys = self.column_keys
        if previous is None:
            self.add_row(*(cells[key] for key in keys), key=session_id)
            self._sort()
            self.post_message(self.ViewChanged())
            return
        sort_column = _SORT_COLUMN[self.sort_key]
        resort = False
        for key in keys:
            cell = cells[key]
            if self.get_cell(session_id, key).plain != cell.plain or key == sort_column:
                self.update_cell(session_id, key, cell)
                resort = resort or key == sort_column
        if resort and self.sort_key != "newest":
            self._sort()
        if session_id == self.selected_session_id:
            self.post_message(self.SelectionChanged())

    def _remove(self, session_id: str) -> None:
        self._shown.pop(session_id, None)
        with contextlib.suppress(RowDoesNotExist):
            self.remove_row(session_id)

    def refresh_times(self, *, waiting_only: bool = False) -> None:
        """Update the cells that tell time whose text changed (a timer calls this).

        Args:
            waiting_only: Only the handler cells of sessions waiting for a person (they tick every second).
        """
        now = self._clock()
        keys = [key for key in _TIMED if key in self.column_keys]
        for session_id, row in self._shown.items():
            if waiting_only and row.waiting_since is None:
                continue
            cells = self._cells(row, now)
            for key in ("handler",) if waiting_only else keys:
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
        # By the rows' own values, so a sort holds whichever columns the width shows. The user
        # column (always shown) carries the session id last in its sort key.
        order = sorted(self._shown.values(), key=lambda r: r.sort_value(self.sort_key))
        rank = {r.session.id: index for index, r in enumerate(order)}
        # Newest first and most recent activity first read naturally; the others A to Z.
        descending = self.sort_key in ("newest", "activity")
        self.sort("user", key=lambda cell: rank.get(cell.sort_key[-1], 0), reverse=descending != self.sort_reversed)

    @property
    def shown_ids(self) -> list[str]:
        """Session ids in display order."""
        return [str(row.key.value) for row in self.ordered_rows]

    @property
    def selected_session_id(self) -> str | None:
        """The session under the cursor."""
        return self._cursor_key()

    def shown_row(self, session_id: str) -> SessionRow | None:
        """A session's row as the table shows it (None: filtered out or unknown)."""
        return self._shown.get(session_id)

    @property
    def selected_row(self) -> SessionRow | None:
        """The row under the cursor, as last shown."""
        session_id = self._cursor_key()
        return self._shown.get(session_id) if session_id is not None else None

    def describe_selected(self) -> Text:
        """The highlighted session in full: who, which session, title, escalation reason, last message."""
        row = self.selected_row
        if row is None:
            return Text("no session selected", style="dim")
        s = row.session
        text = Text()
        text.append(s.user_id, "bold")
        text.append(f" @ {s.org_id} · {s.id} · {s.channel} · {s.status}", "dim")
        if row.title:
            text.append("  “").append(row.title, "bold").append("”")
        if row.escalation_reason:
            text.append("  ⚑ ", "bold red").append(" ".join(row.escalation_reason.split()))
        if row.last_message is not None:
            last = row.last_message
            text.append(f"  {last.role}: ", "dim").append(last.line, LAST_MESSAGE_STYLE.get(last.role, ""))
        return text

    # -- view -----------------------------------------------------------------

    def set_filter(self, text: str) -> None:
        """Show only rows matching every word of ``text`` (user, title, last message, escalation reason, ...)."""
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

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.post_message(self.SelectionChanged())

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.post_message(self.ActionRequested("open", str(event.row_key.value)))
