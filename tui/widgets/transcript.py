"""A thread's transcript that stays fast with thousands of items.

Each item is rendered once into lines (``Strip``s) and kept; the widget draws
only the lines on screen (Textual's line API). Adding or updating an item
re-renders that item alone, so an assistant message that grows as it streams
costs one item's render per update, whatever the length of the thread.

Agents' and operators' messages are Markdown and shown rendered; users' are
shown as typed. Keys, as in lazygit's lists: ``j``/``k`` select the next or
previous item (a bar marks it), ``g``/``G`` the first or last (``G`` also follows
new items), ``y`` copies the selected item's text; the arrows and page keys
scroll by lines. ``/`` searches (the conversation screen asks for the words)
upward from the end, as ``?`` in less: enter jumps to the newest match, ``n`` to
the next older one, ``N`` back to the newer one; matching items' first lines are marked.
"""

from __future__ import annotations

import bisect
import json
import re
import time
from datetime import UTC, date, datetime
from typing import Any

from chatkit.types import ThreadItem
from rich.console import Group, RenderableType
from rich.markdown import Markdown
from rich.padding import Padding
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.timer import Timer

from tui.cards import ActionCard, CardState, action_card
from tui.data import OPERATOR_ITEM_PREFIX, last_message_of
from tui.widgets.vim import MOVE

DURING_HANDOFF = " new during hand-off "
DURING_HANDOFF_STYLE = "bold black on yellow"
HIDDEN_TYPES = {"end_of_turn", "hidden_context_item", "sdk_hidden_context"}
MAX_DETAIL = 400
MAX_CARD_TEXT = 2000
# A long thread opens at its end at once: the newest items are rendered before the first paint, the
# older ones afterwards a chunk at a time (keys stay responsive between chunks, the view does not move).
FIRST_PAINT_ITEMS = 150
OLDER_CHUNK_ITEMS = 50


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def _header(item: ThreadItem, today: date | None, label: str, style: str) -> Text:
    # Times are UTC (as the services keep them); an item of another day than the console's today gets its date.
    at = _created(item)
    shown = at.strftime("%H:%M:%S ") if today is None or at.date() == today else at.strftime("%b %d %H:%M:%S ")
    return Text.assemble((shown, "dim"), (label, style))


def _body(text: str, style: str = "") -> Padding:
    return Padding(Text(text, style=style), (0, 0, 0, 2))


# What makes text Markdown rather than plain: emphasis, code, headings, quotes, links, tables, lists.
_MARKDOWN_SYNTAX = re.compile(r"[*_`#>\[|~]|^\s*(?:[-+]|\d+[.)])\s", re.MULTILINE)


def _markdown(text: str) -> Padding:
    # Parsing Markdown costs about three times a plain render: a message without its syntax stays plain text.
    if _MARKDOWN_SYNTAX.search(text) is None:
        return _body(text)
    return Padding(Markdown(text), (0, 0, 0, 2))


def _task_line(task: Any) -> tuple[str, str, str]:
    """Mark, style and text of a task (tool calls are tasks: running, done or failed)."""
    title = str(getattr(task, "title", None) or getattr(task, "type", "task"))
    content = getattr(task, "content", None)
    icon = getattr(task, "icon", None) or ""
    detail = f" — {_short(content)}" if content else ""
    if getattr(task, "status_indicator", "none") == "loading":
        return "⟳", "yellow", f"{title}{detail}"
    if title.endswith("failed") or "x" in icon.rsplit(":", 1)[-1].split("-"):
        return "✗", "bold red", f"{title}{detail}"
    return "✓", "green", f"{title}{detail}"


# How an action card reads in each state: header label, header style, status style.
_CARD_LOOKS: dict[CardState, tuple[str, str, str]] = {
    "pending": ("approval ⏳", "bold yellow", "yellow"),
    "approved": ("approval ✓", "bold green", "green"),
    "rejected": ("approval ✗", "bold red", "red"),
    "closed": ("approval ∅", "bold", "italic"),
    "card": ("card", "bold blue", "italic"),
}
WAITING_FOR_APPROVAL = "waiting for approval"


def _card(item: ThreadItem, card: ActionCard, today: date | None) -> RenderableType:
    """An action card: what it says, then that it waits for approval, or what became of it."""
    state = card.state
    label, header_style, status_style = _CARD_LOOKS[state]
    parts: list[RenderableType] = [_header(item, today, label, header_style)]
    if card.text:
        text = card.text if len(card.text) <= MAX_CARD_TEXT else card.text[: MAX_CARD_TEXT - 1] + "…"
        parts.append(Padding(Markdown(text), (0, 0, 0, 2)))
    status = card.status
    if state == "pending":
        status = WAITING_FOR_APPROVAL + (f" · {card.status}" if card.status else "")
    if status:
        parts.append(_body(status, status_style))
    return Group(*parts)


def render_item(item: ThreadItem, *, during_handoff: bool = False, today: date | None = None) -> RenderableType | None:
    """How one ChatKit item reads in the console (None: not shown).

    Args:
        item: The item.
        today: The console's date (UTC): items of other days show their date (None: times only).
        during_handoff: A user message sent while a person handles (or is awaited in) the
            conversation: marked, since the agent will not answer it.
    """
    kind = item.type
    if kind in HIDDEN_TYPES:
        return None
    if kind == "user_message":
        text = " ".join(getattr(part, "text", "") for part in item.content)  # type: ignore[union-attr]
        header = _header(item, today, "user", "bold cyan")
        if during_handoff:
            header.append("  ").append(DURING_HANDOFF, DURING_HANDOFF_STYLE)
        return Group(header, _body(text))
    if kind == "assistant_message":
        text = "".join(part.text for part in item.content)  # type: ignore[union-attr]
        if item.id.startswith(OPERATOR_ITEM_PREFIX):
            return Group(_header(item, today, "operator", "bold magenta"), _markdown(text))
        return Group(_header(item, today, "assistant", "bold green"), _markdown(text))
    if kind == "task":
        mark, style, text = _task_line(item.task)  # type: ignore[union-attr]
        return Group(_header(item, today, f"tool {mark}", style), _body(text, style if mark == "✗" else ""))
    if kind == "client_tool_call":
        call: Any = item
        done = call.status == "completed"
        failed = done and isinstance(call.output, dict) and bool(call.output.get("error"))
        mark, style = ("✗", "bold red") if failed else (("✓", "green") if done else ("⟳", "yellow"))
        text = f"{call.name}({_short(call.arguments)})"
        if done:
            text += f" → {_short(call.output)}"
        return Group(_header(item, today, f"client tool {mark}", style), _body(text))
    if kind == "workflow":
        tasks = item.workflow.tasks  # type: ignore[union-attr]
        lines = [Text.assemble((f"{mark} ", style), text) for mark, style, text in map(_task_line, tasks)]
        return Group(_header(item, today, "workflow", "bold blue"), *(Padding(line, (0, 0, 0, 2)) for line in lines))
    if kind == "widget" and (card := action_card(item)) is not None:
        return _card(item, card, today)
    if kind == "widget":
        widget: Any = item
        summary = widget.copy_text or getattr(widget.widget, "type", "widget")
        return Group(_header(item, today, "widget", "bold blue"), _body(_short(summary), "italic"))
    return Group(_header(item, today, kind, "dim"), _body(f"[{kind}]", "dim"))


def _created(item: ThreadItem) -> datetime:
    """When an item was written. A time without zone is UTC (as thread_store takes it):
    the ChatKit SDK writes local naive times, the runner aware ones, and they must compare."""
    at = item.created_at
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _order_key(item: ThreadItem) -> tuple[datetime, str]:
    """Where an item sorts: by time, then id."""
    return _created(item), item.id


class Transcript(ScrollView, can_focus=True):
    """The items of one thread, oldest first, following the end while new ones arrive."""

    BINDINGS = [
        Binding("j", "select(1)", "Next item", show=False, tooltip="Select the next item (vim j)", group=MOVE),
        Binding("k", "select(-1)", "Previous item", show=False, tooltip="Select the previous item (vim k)", group=MOVE),
        Binding("g", "select_first", "First item", show=False, tooltip="Select the first item (vim g)", group=MOVE),
        Binding("G", "follow", "Follow", show=False, tooltip="Jump to the end and follow new items", group=MOVE),
        # The search runs upward from the end, as less's ? does: n goes on to older matches, N back to newer.
        Binding("n", "next_match(-1)", "Next match", show=False, tooltip="Jump to the next (older) match"),
        Binding("N", "next_match(1)", "Previous match", show=False, tooltip="Jump back to the newer match"),
        Binding("y", "copy", "Copy", tooltip="Copy the selected item's text to the clipboard"),
    ]
    SELECTED_STYLE = Style(bgcolor="grey23")
    MATCH_STYLE = Style(bgcolor="dark_goldenrod", color="black")
    DEFAULT_CSS = """
    Transcript {
        height: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._items: dict[str, ThreadItem] = {}
        self._order: list[tuple[datetime, str]] = []
        self._blocks: dict[str, list[Strip]] = {}
        self._lines: list[Strip] = []
        self._render_width = 0
        self._stale = False
        self.item_renders = 0
        self.handoff_started: datetime | None = None
        self._starts: dict[str, tuple[int, int]] = {}  # item id -> (first line, line count)
        self.selected_id: str | None = None  # None: no item selected, the view follows the end
        self.search_text = ""
        self._matches: list[str] = []  # ids of the items that match the search, oldest first
        self._match_lines: set[int] = set()
        self._oldest_shown: tuple[datetime, str] | None = None  # None: every item is rendered
        self._older_timer: Timer | None = None
        self.painted_at: float | None = None  # perf_counter() of the first line drawn since the last load
        self._follow_end = True  # the view stays at the end as items arrive (until the operator scrolls up)
        self.copied: str | None = None  # what ``y`` copied last

    # -- hand-off -------------------------------------------------------------

    def set_handoff_started(self, at: datetime | None) -> None:
        """Mark the user's messages from ``at`` on (None: no hand-off now; nothing is marked)."""
        if at == self.handoff_started:
            return
        self.handoff_started = at
        # Only user messages look different; the rest keep their rendered lines.
        for item_id, item in self._items.items():
            if item.type == "user_message":
                self._blocks.pop(item_id, None)
        self._rebuild(render_all=False)

    def during_handoff(self, item: ThreadItem) -> bool:
        """Whether the item is a user message sent during the current hand-off."""
        return (
            item.type == "user_message"
            and self.handoff_started is not None
            and (_created(item) >= self.handoff_started)
        )

    @property
    def marked_ids(self) -> list[str]:
        """Ids of the user messages marked as sent during the hand-off, oldest first."""
        return [item_id for item_id in self.item_ids if self.during_handoff(self._items[item_id])]

    # -- content --------------------------------------------------------------

    def load(self, items: list[ThreadItem]) -> None:
        """Show exactly these items (a thread just opened, or reloaded after a reconnect).

        The newest ``FIRST_PAINT_ITEMS`` are rendered now, the older ones in the background.
        """
        self._items = {item.id: item for item in items}
        self._order = sorted(_order_key(item) for item in self._items.values())
        self._blocks = {}
        self.painted_at = None
        self._oldest_shown = self._order[-FIRST_PAINT_ITEMS] if len(self._order) > FIRST_PAINT_ITEMS else None
        self._rebuild(render_all=True)
        self._follow_end = True
        self.scroll_end(animate=False, immediate=False)
        if self._oldest_shown is not None and self._older_timer is None:
            self._older_timer = self.set_timer(0.001, self._render_older)

    @property
    def fully_rendered(self) -> bool:
        """Whether every item is rendered (a long thread's older items follow the first paint)."""
        return self._oldest_shown is None

    def _shown_keys(self) -> list[tuple[datetime, str]]:
        if self._oldest_shown is None:
            return self._order
        return self._order[bisect.bisect_left(self._order, self._oldest_shown) :]

    def _render_older(self) -> None:
        """Render the next chunk of older items, keeping what the operator looks at in place."""
        self._older_timer = None
        if self._oldest_shown is None or not self.is_mounted:
            return
        start = bisect.bisect_left(self._order, self._oldest_shown)
        first = max(0, start - OLDER_CHUNK_ITEMS)
        before = len(self._lines)
        self._oldest_shown = self._order[first] if first > 0 else None
        self._rebuild(render_all=False)
        self._keep_view(len(self._lines) - before)
        if self._oldest_shown is not None:
            self._older_timer = self.set_timer(0.001, self._render_older)

    def render_everything(self) -> None:
        """Render the items still waiting for the background (a search must see them all)."""
        if self._oldest_shown is not None:
            before = len(self._lines)
            self._oldest_shown = None
            self._rebuild(render_all=False)
            self._keep_view(len(self._lines) - before)

    def _keep_view(self, added_above: int) -> None:
        """After lines were added above the view: stay at the end when following it, else on the same lines."""
        if self._follow_end:
            self.scroll_end(animate=False, immediate=True)
        else:
            self.scroll_to(y=self.scroll_y + added_above, animate=False, immediate=True)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self.size.height and self.max_scroll_y:
            self._follow_end = new_value >= self.max_scroll_y

    def upsert(self, item: ThreadItem) -> None:
        """Add an item, or replace it (a streamed update) re-rendering that item alone."""
        following = self.max_scroll_y == 0 or self.scroll_y >= self.max_scroll_y
        previous = self._items.get(item.id)
        moved = previous is not None and previous.created_at != item.created_at
        if previous is not None and moved:
            self._order.remove(_order_key(previous))
        if previous is None or moved:
            bisect.insort(self._order, _order_key(item))
        self._items[item.id] = item
        if self._render_width:
            self._blocks[item.id] = self._render_block(item, self._render_width)
        # The usual case, an item added at the end or the last one growing as it streams, changes
        # only the last lines: no walk over the thread's other items.
        last = self._order[-1][1] == item.id and not moved and (previous is None or item.id in self._starts)
        if last and self.is_mounted and self._render_width == self._width():
            self._replace_last(item.id)
        else:
            self._rebuild(render_all=False)
        if following:
            self.scroll_end(animate=False, immediate=False)

    def _replace_last(self, item_id: str) -> None:
        start = self._starts[item_id][0] if item_id in self._starts else len(self._lines)
        block = self._blocks[item_id]
        del self._lines[start:]
        self._lines.extend(block)
        self._starts[item_id] = (start, max(0, len(block) - 1))
        if self._matches:
            self._mark_matches()
        self.virtual_size = Size(self._render_width, len(self._lines))
        self.refresh()

    def remove_item(self, item_id: str) -> None:
        """Drop a deleted item."""
        item = self._items.pop(item_id, None)
        if item is not None:
            self._order.remove(_order_key(item))
            self._blocks.pop(item_id, None)
            if self.selected_id == item_id:
                self.selected_id = None
            self._rebuild(render_all=False)

    # -- selection, search and copy -------------------------------------------

    def item_text(self, item_id: str) -> str:
        """An item's text as the operator would paste it: a message's own text, else what the console shows."""
        item = self._items.get(item_id)
        if item is None:
            return ""
        message = last_message_of(item)
        if message is not None:
            return message.text
        lines = [strip.text.rstrip() for strip in self._blocks.get(item_id, [])]
        return "\n".join(lines[1:]).strip() if len(lines) > 1 else ""

    def select(self, item_id: str | None) -> None:
        """Select an item (None: none; the view follows the end) and bring it into view."""
        self.selected_id = item_id if item_id in self._items else None
        where = self._starts.get(self.selected_id or "")
        if where is not None:
            first, count = where
            height = self.scrollable_content_region.height
            if first < self.scroll_y or first + min(count, height) > self.scroll_y + height:
                self.scroll_to(y=first, animate=False, immediate=True)
        self.refresh()

    def _visible_ids(self) -> list[str]:
        return [item_id for _at, item_id in self._shown_keys() if self._blocks.get(item_id)]

    def action_select(self, step: int) -> None:
        ids = self._visible_ids()
        if not ids:
            return
        if self.selected_id not in ids:
            # From nothing selected, j and k start at the newest item (the end is where operators look).
            self.select(ids[-1])
            return
        index = ids.index(self.selected_id) + step
        self.select(ids[max(0, min(len(ids) - 1, index))])

    def action_select_first(self) -> None:
        self.render_everything()
        ids = self._visible_ids()
        if ids:
            self.select(ids[0])

    def search(self, text: str) -> int:
        """Mark the items whose shown text contains every word of ``text``; how many match."""
        self.search_text = text.strip()
        words = self.search_text.lower().split()
        if words:
            self.render_everything()
        self._matches = []
        if words:
            for item_id in self._visible_ids():
                shown = " ".join(strip.text for strip in self._blocks[item_id]).lower()
                if all(word in shown for word in words):
                    self._matches.append(item_id)
        self._mark_matches()
        self.refresh()
        return len(self._matches)

    @property
    def matches(self) -> list[str]:
        """Ids of the items matching the search, oldest first."""
        return list(self._matches)

    def action_next_match(self, step: int) -> None:
        if self.search_text:
            self.search(self.search_text)  # items may have arrived or grown since
        if not self._matches:
            self.notify(
                f"nothing matches {self.search_text!r}" if self.search_text else "no search: / searches",
                severity="warning",
            )
            return
        order = self.item_ids
        here = order.index(self.selected_id) if self.selected_id in self._items else len(order) if step < 0 else -1
        positions = [order.index(item_id) for item_id in self._matches]
        ahead = [p for p in positions if (p > here if step > 0 else p < here)]
        # Past the last match the search wraps around, as in vim.
        target = (min(ahead) if step > 0 else max(ahead)) if ahead else (positions[0] if step > 0 else positions[-1])
        self.select(order[target])
        number = positions.index(target) + 1
        self.notify(f"match {number} of {len(positions)}: {self.search_text!r}", timeout=2)

    def action_copy(self) -> None:
        visible = self._visible_ids()
        item_id = self.selected_id or (visible[-1] if visible else None)
        if item_id is None:
            self.notify("nothing to copy: the transcript is empty", severity="warning")
            return
        text = self.item_text(item_id)
        self.app.copy_to_clipboard(text)
        self.copied = text
        self.notify(f"copied {len(text)} characters (your terminal must allow OSC 52 clipboard writes)", timeout=3)

    @property
    def item_ids(self) -> list[str]:
        """Ids of the shown items, oldest first."""
        return [item_id for _at, item_id in self._order]

    def item(self, item_id: str) -> ThreadItem | None:
        """One shown item."""
        return self._items.get(item_id)

    def pending_card(self) -> ActionCard | None:
        """The newest action card that still waits for approval, if any."""
        for _at, item_id in reversed(self._order):
            card = action_card(self._items[item_id])
            if card is not None and card.awaiting_approval:
                return card
        return None

    @property
    def text(self) -> str:
        """The transcript as plain text (what the operator reads)."""
        return "\n".join(strip.text.rstrip() for strip in self._lines)

    # -- rendering ------------------------------------------------------------

    def _width(self) -> int:
        return max(20, self.scrollable_content_region.width)

    def _render_block(self, item: ThreadItem, width: int) -> list[Strip]:
        self.item_renders += 1
        clock = getattr(self.app, "clock", None)
        today = clock().date() if callable(clock) else None
        renderable = render_item(item, during_handoff=self.during_handoff(item), today=today)
        if renderable is None:
            return []
        console = self.app.console
        options = console.options.update_width(width)
        lines = Segment.split_lines(console.render(renderable, options))
        return [*Strip.from_lines(list(lines)), Strip.blank(width)]

    def _rebuild(self, *, render_all: bool) -> None:
        if not self.is_mounted:
            self._stale = True
            return
        width = self._width()
        shown = self._shown_keys()
        if render_all or width != self._render_width:
            self._render_width = width
            self._blocks = {item_id: self._render_block(self._items[item_id], width) for _at, item_id in shown}
        lines: list[Strip] = []
        starts: dict[str, tuple[int, int]] = {}
        for _at, item_id in shown:
            block = self._blocks.get(item_id)
            if block is None:
                block = self._blocks[item_id] = self._render_block(self._items[item_id], width)
            starts[item_id] = (len(lines), max(0, len(block) - 1))  # the blank line after it is not its own
            lines.extend(block)
        self._lines = lines
        self._starts = starts
        if self._matches:
            self._mark_matches()
        self.virtual_size = Size(width, len(lines))
        self.refresh()

    def on_mount(self) -> None:
        if self._stale:
            self._stale = False
            self._rebuild(render_all=True)

    def on_resize(self) -> None:
        if self._width() != self._render_width:
            self._rebuild(render_all=True)
        # A shorter view (the reply box opened) keeps showing what it showed: the end, or the selected item.
        if self._follow_end:
            self.scroll_end(animate=False, immediate=True)
        elif self.selected_id is not None:
            self.select(self.selected_id)

    def render_line(self, y: int) -> Strip:
        if self.painted_at is None:
            self.painted_at = time.perf_counter()
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        index = scroll_y + y
        if index >= len(self._lines):
            return Strip.blank(width, self.rich_style)
        strip = self._lines[index].crop_extend(scroll_x, scroll_x + width, self.rich_style)
        for item_id, style in ((self.selected_id, self.SELECTED_STYLE),):
            where = self._starts.get(item_id or "")
            if where is not None and where[0] <= index < where[0] + where[1]:
                strip = strip.apply_style(style)
        if index in self._match_lines:
            strip = strip.apply_style(self.MATCH_STYLE)
        return strip.apply_style(self.rich_style)

    def _mark_matches(self) -> None:
        # The first line (time and who) of each matching item is marked, so matches stand out while scrolling.
        self._match_lines = {self._starts[item_id][0] for item_id in self._matches if item_id in self._starts}

    def action_follow(self) -> None:
        self.selected_id = None
        self.scroll_end(animate=False)
        self.refresh()
