"""The live sessions table: rows are added, changed and removed in place as changes arrive.

Each row says what the conversation is about (its thread's title and last
message), who answers it (the agent by name, "waiting 4m07s" for a person, you,
or the operator holding it) and its escalation. The columns fit the width:
narrow terminals drop, in order, the session's org (shown only when the table
holds more than one org), channel, age, status and last activity; user, title,
last message, handler and escalation always stay, and title and last message
share what is left. The line under the table shows the highlighted session in
full (names, ids, title, escalation reason, the whole last message).

It is not a ``DataTable``: with 2,000 sessions a DataTable measures every cell
of every row on each change (about 0.8 s per snapshot here). This table keeps
the rows as values, sorts and filters them in Python, and draws only the lines
on screen (Textual's line API), so its cost follows the terminal's height.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui.data import format_age, format_wait
from tui.state import HOSTED_HANDLER, SORT_KEYS, STATUS_FILTERS, SessionRow, SortKey, StatusFilter
from tui.widgets.cells import Cell
from tui.widgets.vim import MOVE


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
CELL_PADDING = 1
STATUS_STYLE = {"active": "green", "ended": "dim", "cancelled": "red"}
ESCALATION_STYLE = {"open": "bold red", "claimed": "bold yellow"}
HANDLER_STYLE = {"agent": "", "waiting": "bold red", "you": "bold magenta", HOSTED_HANDLER: "cyan"}
OTHER_OPERATOR_STYLE = "yellow"
LAST_MESSAGE_STYLE = {"user": "", "agent": "dim", "operator": "magenta"}
Action = Literal["open", "take_over", "hand_back", "cancel"]


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


class SessionsTable(ScrollView, can_focus=True):
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
        Binding(
            "x",
            "session('cancel')",
            "Cancel session",
            tooltip="Cancel the session (asks first): its client secret stops working and its answers stop",
        ),
        Binding("f", "cycle_status_filter", "Status", tooltip="Show all / active / escalated sessions"),
        Binding("s", "cycle_sort", "Sort", tooltip="Sort by newest, activity, user, handler, status"),
        Binding("S", "reverse_sort", "Reverse", show=False, tooltip="Reverse the sort order"),
        Binding("j,down", "move(1)", "Down", show=False, tooltip="Next session (vim j)", group=MOVE),
        Binding("k,up", "move(-1)", "Up", show=False, tooltip="Previous session (vim k)", group=MOVE),
        Binding("g,home", "move_to(0)", "Top", show=False, tooltip="First session (vim g)", group=MOVE),
        Binding("G,end", "move_to(-1)", "Bottom", show=False, tooltip="Last session (vim G)", group=MOVE),
        Binding("pagedown,ctrl+d", "page(1)", "Page down", show=False, tooltip="A page down", group=MOVE),
        Binding("pageup,ctrl+u", "page(-1)", "Page up", show=False, tooltip="A page up", group=MOVE),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "sessions-table--header",
        "sessions-table--cursor",
        "sessions-table--even-row",
    }
    DEFAULT_CSS = """
    SessionsTable {
        background: $surface;
        color: $foreground;
        height: 1fr;
        & > .sessions-table--header { text-style: bold; background: $panel; color: $foreground; }
        & > .sessions-table--even-row { background: $surface-lighten-1 50%; }
        & > .sessions-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
        }
        &:focus > .sessions-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
    }
    """

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
        super().__init__(id=id)
        self._rows = rows
        self._clock = clock
        self.filter_text = ""
        self.status_filter: StatusFilter = "all"
        self.sort_key: SortKey = "newest"
        self.sort_reversed = False
        self._shown: dict[str, SessionRow] = {}
        self._order: list[str] = []  # shown session ids, top to bottom
        self._index: dict[str, int] = {}
        self.cursor = 0
        self._columns: list[tuple[Column, int]] = []
        self._fitted_for = (-1, -1, False)  # (width, user width, several orgs) the columns were fitted for
        self._text_console = Console(width=1000, color_system="truecolor", legacy_windows=False)

    # -- columns --------------------------------------------------------------

    @property
    def column_keys(self) -> list[str]:
        """The keys of the columns shown now, left to right."""
        return [column.key for column, _width in self._columns]

    def _fit(self, rows: Iterable[SessionRow]) -> bool:
        """Choose the columns for the width and the rows; whether they changed."""
        user_width = min(USER_WIDTH, max([len(r.session.user_id) for r in rows] + [COLUMNS[0].width]))
        several_orgs = len({r.session.org_id for r in self._shown.values()}) > 1
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
        fitted = fit_columns(columns, width, padding=CELL_PADDING)
        if fitted == self._columns:
            return False
        self._columns = fitted
        return True

    def on_resize(self) -> None:
        self._fit(self._shown.values())
        self._resize_virtual()
        self.refresh()

    # -- rows -----------------------------------------------------------------

    def _cells(self, row: SessionRow, now: datetime) -> dict[str, Cell]:
        s = row.session
        age = (now - s.created_at).total_seconds()
        idle = (now - row.last_activity).total_seconds()
        last = row.last_message
        handler_style = HANDLER_STYLE.get(row.handler, OTHER_OPERATOR_STYLE)
        return {
            "user": Cell(s.user_id),
            "title": Cell(" ".join(row.title.split()))
            if s.thread_id
            else Cell("no conversation yet", style="dim italic"),
            "last": Cell(last.line if last else "", style=LAST_MESSAGE_STYLE.get(last.role, "") if last else ""),
            "handler": Cell(handler_text(row, now), style=handler_style),
            "escalation": Cell(
                f"⚑ {row.escalation}" if row.escalation else "", style=ESCALATION_STYLE.get(row.escalation, "")
            ),
            "activity": Cell(f"{format_age(idle)} ago"),
            "status": Cell(s.status, style=STATUS_STYLE.get(s.status, "")),
            "age": Cell(format_age(age)),
            "channel": Cell(s.channel),
            "org": Cell(s.org_id),
        }

    def get_cell(self, session_id: str, key: str) -> Cell:
        """The cell of a shown session's column, as drawn now.

        Raises:
            KeyError: the session is not shown.
        """
        return self._cells(self._shown[session_id], self._clock())[key]

    def show_rows(self) -> None:
        """Replace every row (a fresh snapshot, a new filter, or a width that fits other columns)."""
        selected = self.selected_session_id
        rows = [row for row in self._rows() if row.matches(self.filter_text, self.status_filter)]
        self._shown = {row.session.id: row for row in rows}
        self._fit(rows)
        self._sort(keep=selected)
        self.post_message(self.ViewChanged())
        self.post_message(self.SelectionChanged())

    def upsert_row(self, row: SessionRow) -> None:
        """Add, change or remove one session's row."""
        session_id = row.session.id
        visible = row.matches(self.filter_text, self.status_filter)
        previous = self._shown.get(session_id)
        if not visible:
            if previous is not None:
                self._remove(session_id)
                self.post_message(self.ViewChanged())
            return
        self._shown[session_id] = row
        if previous is None or previous.sort_value(self.sort_key) != row.sort_value(self.sort_key):
            self._place(session_id, new=previous is None)
            if previous is None:
                if self._fit(self._shown.values()):  # a longer user id, or a second org: refit the columns
                    self._resize_virtual()
                    self.refresh()
                self.post_message(self.ViewChanged())
        else:
            self._refresh_row(session_id)
        if session_id == self.selected_session_id:
            self.post_message(self.SelectionChanged())

    def _place(self, session_id: str, *, new: bool) -> None:
        """Put one row where the sort says, moving the others by one (not a full sort)."""
        selected = self.selected_session_id
        if not new and session_id in self._index:
            self._order.pop(self._index[session_id])
        key = self._key_function()
        value: Any = key(session_id)
        low, high = 0, len(self._order)
        while low < high:  # bisect on the sorted order, by the sort's own key
            middle = (low + high) // 2
            if key(self._order[middle]) < value:
                low = middle + 1
            else:
                high = middle
        self._order.insert(low, session_id)
        self._reindex(keep=selected)

    def _remove(self, session_id: str) -> None:
        selected = self.selected_session_id
        self._shown.pop(session_id, None)
        if session_id in self._index:
            self._order.pop(self._index[session_id])
            self._reindex(keep=selected if selected != session_id else None)

    def refresh_times(self, *, waiting_only: bool = False) -> None:
        """Redraw the cells that tell time (a timer calls this); only the lines on screen are drawn.

        Args:
            waiting_only: Only when a shown session waits for a person (their handler cells tick every second).
        """
        if not waiting_only:
            self.refresh()
            return
        top = int(self.scroll_y)
        for index in range(top, min(len(self._order), top + self.size.height)):
            if self._shown[self._order[index]].waiting_since is not None:
                self._refresh_index(index)

    # -- order ----------------------------------------------------------------

    def _key_function(self) -> Callable[[str], Any]:
        # Newest first and most recent activity first read naturally; the others A to Z.
        descending = (self.sort_key in ("newest", "activity")) != self.sort_reversed
        shown, sort_key = self._shown, self.sort_key
        if not descending:
            return lambda session_id: shown[session_id].sort_value(sort_key)
        return lambda session_id: _Reversed(shown[session_id].sort_value(sort_key))

    def _sort(self, *, keep: str | None = None) -> None:
        keep = keep if keep is not None else self.selected_session_id
        self._order = sorted(self._shown, key=self._key_function())
        self._reindex(keep=keep)

    def _reindex(self, *, keep: str | None) -> None:
        self._index = {session_id: index for index, session_id in enumerate(self._order)}
        if keep is not None and keep in self._index:
            self.cursor = self._index[keep]
        self.cursor = max(0, min(self.cursor, len(self._order) - 1))
        self._resize_virtual()
        self._scroll_cursor_into_view()
        self.refresh()

    def _resize_virtual(self) -> None:
        width = sum(w + 2 * CELL_PADDING for _c, w in self._columns)
        self.virtual_size = Size(width, len(self._order) + 1)  # the header's line, then the rows

    @property
    def shown_ids(self) -> list[str]:
        """Session ids in display order."""
        return list(self._order)

    def get_row_index(self, session_id: str) -> int:
        """Where a shown session is, from the top."""
        return self._index[session_id]

    def move_cursor(self, *, row: int) -> None:
        """Highlight the row at that index."""
        before = self.selected_session_id
        self.cursor = max(0, min(row, len(self._order) - 1))
        self._scroll_cursor_into_view()
        self.refresh()
        if self.selected_session_id != before:
            self.post_message(self.SelectionChanged())

    @property
    def selected_session_id(self) -> str | None:
        """The session under the cursor."""
        return self._order[self.cursor] if self._order else None

    def shown_row(self, session_id: str) -> SessionRow | None:
        """A session's row as the table shows it (None: filtered out or unknown)."""
        return self._shown.get(session_id)

    @property
    def selected_row(self) -> SessionRow | None:
        """The row under the cursor, as last shown."""
        session_id = self.selected_session_id
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

    # -- drawing --------------------------------------------------------------

    def _scroll_cursor_into_view(self) -> None:
        rows_on_screen = max(1, self.size.height - 1)
        if self.cursor < self.scroll_y:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= self.scroll_y + rows_on_screen:
            self.scroll_to(y=self.cursor - rows_on_screen + 1, animate=False, immediate=True)

    def _refresh_index(self, index: int) -> None:
        top = int(self.scroll_y)
        if top <= index < top + self.size.height:  # rows off screen are drawn when they scroll in
            self.refresh_line(index + 1)  # a virtual line: the header takes the first

    def _refresh_row(self, session_id: str) -> None:
        index = self._index.get(session_id)
        if index is not None:
            self._refresh_index(index)

    def _line(self, cells: list[Text], style: Style) -> Strip:
        line = Text(no_wrap=True, overflow="ellipsis", end="")
        for cell, (_column, width) in zip(cells, self._columns, strict=True):
            fitted = cell.copy()
            fitted.truncate(width, overflow="ellipsis", pad=True)
            line.append(" " * CELL_PADDING).append_text(fitted).append(" " * CELL_PADDING)
        segments = list(line.render(self._text_console))
        return Strip(Segment.apply_style(segments, post_style=style))

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        scroll_x = int(self.scroll_x)
        base = self.rich_style
        if y == 0:
            style = base + self.get_component_rich_style("sessions-table--header")
            strip = self._line([Text(column.label) for column, _ in self._columns], style)
            return strip.crop_extend(scroll_x, scroll_x + width, style)
        index = int(self.scroll_y) + y - 1
        if index >= len(self._order):
            return Strip.blank(width, base)
        cells = self._cells(self._shown[self._order[index]], self._clock())
        style = base
        if index % 2 == 1:
            style += self.get_component_rich_style("sessions-table--even-row")
        if index == self.cursor:
            style += self.get_component_rich_style("sessions-table--cursor")
        strip = self._line([cells[key] for key in self.column_keys], style)
        return strip.crop_extend(scroll_x, scroll_x + width, style)

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

    def action_move(self, step: int) -> None:
        self.move_cursor(row=self.cursor + step)

    def action_move_to(self, index: int) -> None:
        self.move_cursor(row=index if index >= 0 else len(self._order) - 1)

    def action_page(self, direction: int) -> None:
        self.move_cursor(row=self.cursor + direction * max(1, self.size.height - 2))

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

    def on_click(self, event: events.Click) -> None:
        """A click highlights a session; a click on the highlighted one (or a double click) opens it."""
        if event.y < 1:
            return
        index = int(self.scroll_y) + event.y - 1
        if not 0 <= index < len(self._order):
            return
        if index == self.cursor or event.chain > 1:
            self.post_message(self.ActionRequested("open", self._order[index]))
        else:
            self.move_cursor(row=index)


class _Reversed:
    """A sort key that sorts in reverse (so one ascending sort and bisect serve every order)."""

    __slots__ = ("value",)

    def __init__(self, value: tuple[object, ...]) -> None:
        self.value = value

    def __lt__(self, other: _Reversed) -> bool:
        return other.value < self.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and other.value == self.value

    __hash__ = None  # type: ignore[assignment]
