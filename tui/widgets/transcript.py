"""A thread's transcript that stays fast with thousands of items.

Each item is rendered once into lines (``Strip``s) and kept; the widget draws
only the lines on screen (Textual's line API). Adding or updating an item
re-renders that item alone, so an assistant message that grows as it streams
costs one item's render per update, whatever the length of the thread.
"""

from __future__ import annotations

import bisect
import json
from datetime import UTC, datetime
from typing import Any

from chatkit.types import ThreadItem
from rich.console import Group, RenderableType
from rich.markdown import Markdown
from rich.padding import Padding
from rich.segment import Segment
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui.cards import ActionCard, CardState, action_card

# The agent runner stores operators' replies as assistant messages with ids starting so.
OPERATOR_ITEM_PREFIX = "msg_op_"
DURING_HANDOFF = " new during hand-off "
DURING_HANDOFF_STYLE = "bold black on yellow"
HIDDEN_TYPES = {"end_of_turn", "hidden_context_item", "sdk_hidden_context"}
MAX_DETAIL = 400
MAX_CARD_TEXT = 2000


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def _header(item: ThreadItem, label: str, style: str) -> Text:
    return Text.assemble((item.created_at.strftime("%H:%M:%S "), "dim"), (label, style))


def _body(text: str, style: str = "") -> Padding:
    return Padding(Text(text, style=style), (0, 0, 0, 2))


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


def _card(item: ThreadItem, card: ActionCard) -> RenderableType:
    """An action card: what it says, then that it waits for approval, or what became of it."""
    state = card.state
    label, header_style, status_style = _CARD_LOOKS[state]
    parts: list[RenderableType] = [_header(item, label, header_style)]
    if card.text:
        text = card.text if len(card.text) <= MAX_CARD_TEXT else card.text[: MAX_CARD_TEXT - 1] + "…"
        parts.append(Padding(Markdown(text), (0, 0, 0, 2)))
    status = card.status
    if state == "pending":
        status = WAITING_FOR_APPROVAL + (f" · {card.status}" if card.status else "")
    if status:
        parts.append(_body(status, status_style))
    return Group(*parts)


def render_item(item: ThreadItem, *, during_handoff: bool = False) -> RenderableType | None:
    """How one ChatKit item reads in the console (None: not shown).

    Args:
        item: The item.
        during_handoff: A user message sent while a person handles (or is awaited in) the
            conversation: marked, since the agent will not answer it.
    """
    kind = item.type
    if kind in HIDDEN_TYPES:
        return None
    if kind == "user_message":
        text = " ".join(getattr(part, "text", "") for part in item.content)  # type: ignore[union-attr]
        header = _header(item, "user", "bold cyan")
        if during_handoff:
            header.append("  ").append(DURING_HANDOFF, DURING_HANDOFF_STYLE)
        return Group(header, _body(text))
    if kind == "assistant_message":
        text = "".join(part.text for part in item.content)  # type: ignore[union-attr]
        if item.id.startswith(OPERATOR_ITEM_PREFIX):
            return Group(_header(item, "operator", "bold magenta"), _body(text))
        return Group(_header(item, "assistant", "bold green"), _body(text))
    if kind == "task":
        mark, style, text = _task_line(item.task)  # type: ignore[union-attr]
        return Group(_header(item, f"tool {mark}", style), _body(text, style if mark == "✗" else ""))
    if kind == "client_tool_call":
        call: Any = item
        done = call.status == "completed"
        failed = done and isinstance(call.output, dict) and bool(call.output.get("error"))
        mark, style = ("✗", "bold red") if failed else (("✓", "green") if done else ("⟳", "yellow"))
        text = f"{call.name}({_short(call.arguments)})"
        if done:
            text += f" → {_short(call.output)}"
        return Group(_header(item, f"client tool {mark}", style), _body(text))
    if kind == "workflow":
        tasks = item.workflow.tasks  # type: ignore[union-attr]
        lines = [Text.assemble((f"{mark} ", style), text) for mark, style, text in map(_task_line, tasks)]
        return Group(_header(item, "workflow", "bold blue"), *(Padding(line, (0, 0, 0, 2)) for line in lines))
    if kind == "widget" and (card := action_card(item)) is not None:
        return _card(item, card)
    if kind == "widget":
        widget: Any = item
        summary = widget.copy_text or getattr(widget.widget, "type", "widget")
        return Group(_header(item, "widget", "bold blue"), _body(_short(summary), "italic"))
    return Group(_header(item, kind, "dim"), _body(f"[{kind}]", "dim"))


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
        Binding("G", "follow", "Follow", show=False, tooltip="Jump to the end and follow new items"),
    ]
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
        """Show exactly these items (a thread just opened, or reloaded after a reconnect)."""
        self._items = {item.id: item for item in items}
        self._order = sorted(_order_key(item) for item in self._items.values())
        self._blocks = {}
        self._rebuild(render_all=True)
        self.scroll_end(animate=False, immediate=False)

    def upsert(self, item: ThreadItem) -> None:
        """Add an item, or replace it (a streamed update) re-rendering that item alone."""
        following = self.max_scroll_y == 0 or self.scroll_y >= self.max_scroll_y
        previous = self._items.get(item.id)
        if previous is not None and previous.created_at != item.created_at:
            self._order.remove(_order_key(previous))
            previous = None
        if previous is None:
            bisect.insort(self._order, _order_key(item))
        self._items[item.id] = item
        if self._render_width:
            self._blocks[item.id] = self._render_block(item, self._render_width)
        self._rebuild(render_all=False)
        if following:
            self.scroll_end(animate=False, immediate=False)

    def remove_item(self, item_id: str) -> None:
        """Drop a deleted item."""
        item = self._items.pop(item_id, None)
        if item is not None:
            self._order.remove(_order_key(item))
            self._blocks.pop(item_id, None)
            self._rebuild(render_all=False)

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
        renderable = render_item(item, during_handoff=self.during_handoff(item))
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
        if render_all or width != self._render_width:
            self._render_width = width
            self._blocks = {item_id: self._render_block(self._items[item_id], width) for _at, item_id in self._order}
        lines: list[Strip] = []
        for _at, item_id in self._order:
            block = self._blocks.get(item_id)
            if block is None:
                block = self._blocks[item_id] = self._render_block(self._items[item_id], width)
            lines.extend(block)
        self._lines = lines
        self.virtual_size = Size(width, len(lines))
        self.refresh()

    def on_mount(self) -> None:
        if self._stale:
            self._stale = False
            self._rebuild(render_all=True)

    def on_resize(self) -> None:
        if self._width() != self._render_width:
            self._rebuild(render_all=True)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        index = scroll_y + y
        if index >= len(self._lines):
            return Strip.blank(width, self.rich_style)
        return self._lines[index].crop_extend(scroll_x, scroll_x + width, self.rich_style).apply_style(self.rich_style)

    def action_follow(self) -> None:
        self.scroll_end(animate=False)
