"""Tool calls made visible: one ChatKit ``TaskItem`` per call.

While a tool runs the thread shows a task with a loading indicator; when it
ends the same item is finished with "done" or "failed" and the reason. Hooks
of the Agents SDK see every function and MCP tool call; failures are recorded
by ``record_tool_failure`` (the tools' failure function) and
``record_mcp_error`` (MCP results flagged as errors), keyed by call id.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agents import Agent, RunContextWrapper, RunHooks, Tool
from agents.mcp import MCPToolCustomDataContext
from chatkit.agents import AgentContext
from chatkit.types import CustomTask, TaskItem, ThreadItemAddedEvent, ThreadItemDoneEvent

from switchboard.principal import Principal

log = logging.getLogger(__name__)

MAX_DETAIL = 300
TOOL_FAILED_PREFIX = "failed"


@dataclass
class RunState:
    """The Agents SDK run context of one run: who, which thread, what failed.

    Attributes:
        principal: The caller the run acts for (binds the tools' user).
        chatkit: ChatKit's context of the run (thread, store, event queue).
        tool_failures: Failure messages by tool call id.
        answers: The user's answers to ``ask_user`` questions, by tool call id.
        escalated: ``escalate_to_human`` handed the thread to a person.
    """

    principal: Principal
    chatkit: AgentContext[Any]
    tool_failures: dict[str, str] = field(default_factory=dict)
    answers: dict[str, list[str]] = field(default_factory=dict)
    escalated: bool = False


def _call_id(context: RunContextWrapper[Any]) -> str | None:
    value = getattr(context, "tool_call_id", None)
    return value if isinstance(value, str) else None


def record_tool_failure(context: RunContextWrapper[Any], error: Exception) -> str:
    """Failure function of every tool: remember the failure, tell the model what happened."""
    message = f"The tool failed: {error}. Tell the user what failed and what they can do about it."
    state = context.context
    call_id = _call_id(context)
    if isinstance(state, RunState) and call_id:
        state.tool_failures[call_id] = str(error) or type(error).__name__
    log.info("tool call %s failed: %s", call_id, error)
    return message


def record_mcp_error(data: MCPToolCustomDataContext) -> None:
    """Remember MCP results the server flagged as errors (their text says why)."""
    if not data.is_error:
        return None
    state = data.run_context.context
    call_id = _call_id(data.run_context)
    if isinstance(state, RunState) and call_id:
        state.tool_failures[call_id] = _text_of(data.tool_output) or "the tool reported an error"
    return None


def _text_of(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, dict):
        return str(output.get("text") or "")
    if isinstance(output, list):
        return " ".join(_text_of(part) for part in output)
    return str(output)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def _arguments(raw: str) -> str:
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return _short(raw)
    if isinstance(data, dict):
        return _short(", ".join(f"{k}: {v}" for k, v in data.items()))
    return _short(raw)


class ToolItemHooks(RunHooks[Any]):
    """Stream a task item for each tool call and handoff of a run."""

    def __init__(self, state: RunState) -> None:
        self._state = state
        self._items: dict[str, TaskItem] = {}

    def _new_item(self, task: CustomTask) -> TaskItem:
        chatkit = self._state.chatkit
        return TaskItem(
            id=chatkit.generate_id("task"),
            thread_id=chatkit.thread.id,
            created_at=datetime.now(UTC),
            task=task,
        )

    async def on_tool_start(self, context: RunContextWrapper[Any], agent: Agent[Any], tool: Tool) -> None:
        """Show the tool as running."""
        key = _call_id(context) or f"anon:{tool.name}"
        arguments = _arguments(str(getattr(context, "tool_arguments", "") or ""))
        item = self._new_item(
            CustomTask(title=f"Running {tool.name}", content=arguments or None, status_indicator="loading")
        )
        self._items[key] = item
        await self._state.chatkit.stream(ThreadItemAddedEvent(item=item))

    async def on_tool_end(self, context: RunContextWrapper[Any], agent: Agent[Any], tool: Tool, result: object) -> None:
        """Finish the tool's item with its outcome."""
        key = _call_id(context) or f"anon:{tool.name}"
        item = self._items.pop(key, None) or self._new_item(CustomTask(title=tool.name))
        failure = self._state.tool_failures.pop(key, None)
        if failure is not None:
            task = CustomTask(
                title=f"{tool.name} failed",
                content=_short(failure),
                status_indicator="complete",
                icon="lucide:circle-x",
            )
        else:
            task = CustomTask(
                title=f"{tool.name} done",
                content=_short(_text_of(result)),
                status_indicator="complete",
                icon="check-circle",
            )
        item = item.model_copy(update={"task": task})
        await self._state.chatkit.stream(ThreadItemDoneEvent(item=item))

    async def on_handoff(self, context: RunContextWrapper[Any], from_agent: Agent[Any], to_agent: Agent[Any]) -> None:
        """Show the handoff."""
        item = self._new_item(
            CustomTask(
                title=f"Handed off to {to_agent.name}", content=f"from {from_agent.name}", status_indicator="complete"
            )
        )
        await self._state.chatkit.stream(ThreadItemDoneEvent(item=item))

    def unfinished(self, reason: str) -> list[TaskItem]:
        """The items of calls still running, finished as failed with ``reason`` (cancel, error)."""
        items = [
            item.model_copy(
                update={
                    "task": CustomTask(
                        title=f"{getattr(item.task, 'title', 'tool').removeprefix('Running ')} {TOOL_FAILED_PREFIX}",
                        content=reason,
                        status_indicator="complete",
                    )
                }
            )
            for item in self._items.values()
        ]
        self._items.clear()
        return items
