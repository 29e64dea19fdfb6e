"""Action cards: a tool call that needs a person's approval, shown as a ChatKit widget.

When the agent calls a tool the agents file lists under ``needs_approval`` (by
default ``delete_task``), the Agents SDK interrupts the run. The runner saves the
paused run (the SDK's ``RunState``) in Postgres and shows a card: what will
happen, in words, with the arguments, and Approve / Reject buttons whose actions
(``switchboard.approval.approve`` / ``.reject``) name nothing but the decision;
the card is identified by the widget item the click comes from. A decision
replaces the card in place: the decision, who made it and when, no buttons.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chatkit.types import StructuredInputItem, WidgetItem

APPROVE_ACTION = "switchboard.approval.approve"
REJECT_ACTION = "switchboard.approval.reject"
APPROVAL_ACTIONS = frozenset({APPROVE_ACTION, REJECT_ACTION})
MAX_ARGUMENT_CHARS = 300

# What a tool does, in words, for the tools Switchboard knows; others are named as they are.
_DESCRIPTIONS = {
    "delete_task": "Delete the task {task_id}",
    "complete_task": "Mark the task {task_id} as done",
    "update_task": "Change the task {task_id}",
    "add_task": "Add the task “{title}”",
}


@dataclass(frozen=True)
class PendingApproval:
    """The call a paused run waits on, and its card."""

    card_id: str
    call_id: str
    tool_name: str
    arguments: dict[str, Any]
    agent: str

    def to_json(self) -> str:
        """As stored in ``runs.approval``."""
        return json.dumps(
            {
                "card_id": self.card_id,
                "call_id": self.call_id,
                "tool_name": self.tool_name,
                "arguments": self.arguments,
                "agent": self.agent,
            }
        )

    @classmethod
    def from_json(cls, raw: str | dict[str, Any]) -> PendingApproval:
        """From ``runs.approval``."""
        data = json.loads(raw) if isinstance(raw, str) else raw
        return cls(
            card_id=data["card_id"],
            call_id=data["call_id"],
            tool_name=data["tool_name"],
            arguments=data.get("arguments") or {},
            agent=data.get("agent") or "",
        )

    @property
    def description(self) -> str:
        """What approving will do, in words."""
        template = _DESCRIPTIONS.get(self.tool_name)
        if template is not None:
            try:
                return template.format(**self.arguments)
            except (KeyError, IndexError):
                pass
        return f"Run {self.tool_name}"


def call_arguments(raw_item: Any) -> tuple[str, dict[str, Any]]:
    """The call id and parsed arguments of an interrupted tool call (function or MCP)."""
    get = raw_item.get if isinstance(raw_item, dict) else lambda key, default=None: getattr(raw_item, key, default)
    call_id = str(get("call_id", None) or get("id", None) or "")
    arguments = get("arguments", None) or "{}"
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) else dict(arguments)
    except (ValueError, TypeError):
        parsed = {"arguments": str(arguments)[:MAX_ARGUMENT_CHARS]}
    return call_id, parsed if isinstance(parsed, dict) else {"arguments": parsed}


def _argument_lines(arguments: dict[str, Any]) -> str:
    lines = []
    for key, value in arguments.items():
        shown = value if isinstance(value, str) else json.dumps(value)
        if len(shown) > MAX_ARGUMENT_CHARS:
            shown = shown[: MAX_ARGUMENT_CHARS - 1] + "…"
        lines.append(f"- **{key}**: {shown}")
    return "\n".join(lines) or "- (no arguments)"


def approval_card(
    pending: PendingApproval, *, thread_id: str, created_at: datetime, decided: str | None = None
) -> WidgetItem:
    """The card of a pending approval; with ``decided`` (a sentence), the card after the decision."""
    body = f"**{pending.description}?**\n\n{_argument_lines(pending.arguments)}"
    card: dict[str, Any] = {
        "type": "Card",
        "size": "md",
        "children": [{"type": "Markdown", "value": body}],
    }
    if decided is None:
        card["status"] = {"text": f"{pending.agent or 'The agent'} asks for your approval", "icon": "info"}
        card["confirm"] = {"label": "Approve", "action": {"type": APPROVE_ACTION, "payload": {}}}
        card["cancel"] = {"label": "Reject", "action": {"type": REJECT_ACTION, "payload": {}}}
    else:
        card["status"] = {"text": decided, "icon": "check"}
        card["collapsed"] = False
    return WidgetItem.model_validate(
        {
            "id": pending.card_id,
            "thread_id": thread_id,
            "created_at": created_at,
            "widget": card,
            "copy_text": f"{pending.description}: {decided or 'waiting for approval'}",
        }
    )


def decided_text(decision: str, who: str, at: datetime | None = None) -> str:
    """The sentence a decided card shows: what, who, when."""
    moment = (at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    return f"{decision} by {who} · {moment}"


def question_item(pending: PendingApproval, *, thread_id: str, created_at: datetime) -> StructuredInputItem:
    """The question of an ``ask_user`` call: one multiple-choice input, answered in the chat."""
    question = str(pending.arguments.get("question") or "Which one?")[:MAX_ARGUMENT_CHARS]
    raw_options = pending.arguments.get("options")
    options = [str(o)[:MAX_ARGUMENT_CHARS] for o in raw_options] if isinstance(raw_options, list) else []
    return StructuredInputItem.model_validate(
        {
            "id": pending.card_id,
            "thread_id": thread_id,
            "created_at": created_at,
            "status": "pending",
            "inputs": [
                {
                    "type": "multiple_choice",
                    "id": "choice",
                    "question": question,
                    "options": [{"value": o} for o in options[:10]],
                }
            ],
        }
    )
