"""Action cards as the console reads them: a ChatKit ``Card`` widget item, and whether it waits for approval.

The agent runner shows a tool call that needs a person's approval as a ``Card``
whose confirm and cancel actions are ``switchboard.approval.approve`` and
``.reject``; once decided (or dropped, or expired) the same item comes back with
no actions and a status sentence ("Approved by alice · 2026-12-04 16:10 UTC").
The console only reads the card: the decision goes through the agent runner.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from chatkit.types import ThreadItem

from services.agent_runner.client import APPROVE_ACTION, REJECT_ACTION

CardState = Literal["pending", "approved", "rejected", "closed", "card"]

# How the runner's status sentences begin (display only: an unknown sentence still shows, as a plain card).
_DECIDED_PREFIXES: tuple[tuple[str, CardState], ...] = (
    ("Approved", "approved"),
    ("Rejected", "rejected"),
    ("Not done", "closed"),
    ("Expired", "closed"),
)
_EMPHASIS = re.compile(r"(\*\*|__|\*|`)")


def _field(value: Any, name: str) -> Any:
    """A field of a pydantic model or of a plain dict (ChatKit mixes both in widgets)."""
    if isinstance(value, dict):
        return value.get(name)
    return getattr(value, name, None)


def _action_type(button: Any) -> str:
    action = _field(button, "action")
    kind = _field(action, "type") if action is not None else None
    return kind if isinstance(kind, str) else ""


def _texts(component: Any) -> list[str]:
    """The text values of a widget tree, in reading order."""
    found: list[str] = []
    value = _field(component, "value")
    if isinstance(value, str) and value.strip():
        found.append(value.strip())
    for child in _field(component, "children") or []:
        found += _texts(child)
    return found


@dataclass(frozen=True, slots=True)
class ActionCard:
    """A card widget of a thread.

    Attributes:
        id: The widget item's id (what a decision names).
        thread_id: The thread it is in.
        text: What the card says (its children's Markdown and text), as Markdown.
        status: The card's status line ("Triage asks for your approval", "Approved by …").
        confirm: The confirm button's action type ('' without one).
        cancel: The cancel button's action type ('' without one).
    """

    id: str
    thread_id: str
    text: str
    status: str
    confirm: str = ""
    cancel: str = ""

    @property
    def awaiting_approval(self) -> bool:
        """Whether the card still waits for someone to approve or reject it."""
        return self.confirm == APPROVE_ACTION and self.cancel == REJECT_ACTION

    @property
    def state(self) -> CardState:
        """Pending, approved, rejected, closed without a decision, or a card of another kind."""
        if self.awaiting_approval:
            return "pending"
        if not self.confirm and not self.cancel:
            for prefix, state in _DECIDED_PREFIXES:
                if self.status.startswith(prefix):
                    return state
        return "card"

    @property
    def summary(self) -> str:
        """The card's first line, without Markdown emphasis ("Delete the task 7?")."""
        first = next((line for line in self.text.splitlines() if line.strip()), "") or self.status or "card"
        return " ".join(_EMPHASIS.sub("", first).lstrip("#-* ").split())


def action_card(item: ThreadItem) -> ActionCard | None:
    """The item as an action card, if it is a ``Card`` widget (None for anything else)."""
    if item.type != "widget":
        return None
    widget: Any = getattr(item, "widget", None)
    if _field(widget, "type") != "Card":
        return None
    status = _field(widget, "status")
    status_text = _field(status, "text") if status is not None else None
    return ActionCard(
        id=item.id,
        thread_id=item.thread_id,
        text="\n\n".join(_texts({"children": _field(widget, "children") or []})),
        status=status_text if isinstance(status_text, str) else "",
        confirm=_action_type(_field(widget, "confirm")),
        cancel=_action_type(_field(widget, "cancel")),
    )
