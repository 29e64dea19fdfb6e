"""The offline model: a deterministic Agents SDK ``Model`` for machines without one.

It understands a few plain commands and acts on them through the same tools a
real model would call (the task MCP server, ``escalate_to_human``, handoffs):

- ``add <title>`` / ``add task <title>``
- ``list tasks``
- ``complete <task id>`` / ``done <task id>``
- ``delete <task id>``
- ``talk to a human`` (any message asking for a person, human or operator)
- ``billing ...`` / ``support ...`` hand off when the agent can

It streams its replies in chunks of a few words, like a real model, and (when
the runner asks it to) starts its first reply in a thread by saying that it is
the offline model and how to configure a real one.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from agents import ModelResponse, ModelSettings, Tool, Usage
from agents.agent_output import AgentOutputSchemaBase
from agents.handoffs import Handoff
from agents.items import TResponseInputItem, TResponseOutputItem, TResponseStreamEvent
from agents.models.interface import Model, ModelTracing
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseFunctionToolCall,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
    ResponseUsage,
)
from openai.types.responses.response_prompt_param import ResponsePromptParam
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from services.agent_runner.handoff import SUMMARY_HEADER
from services.agent_runner.model_input import ATTACHMENT_MARK, TAG_MARK

OFFLINE_NOTICE = (
    "I'm Switchboard's offline model: I only understand a few commands. To use a real model, set "
    "OPENAI_API_KEY (and optionally SWITCHBOARD_MODEL=openai:<model>), or point OPENAI_BASE_URL at an "
    "OpenAI-compatible server (vLLM, Ollama, llama.cpp) and restart the agent runner."
)
HELP = (
    "Here is what I can do offline:\n"
    "- **add** *title*: add a task\n"
    "- **list tasks**: show your open tasks\n"
    "- **complete** *task id*: mark a task done\n"
    "- **delete** *task id*: delete a task\n"
    "- **talk to a human**: hand this conversation to a person\n"
    "- **billing** *question* / **front desk**: talk with Billing / back to the front desk\n"
    "- **choose between** *a, b or c*: I ask you to pick one\n"
    "- **count to** *n*: a long streamed answer (up to 10,000), to try stop, reload and join"
)
MAX_COUNT = 10_000

_ADD = re.compile(
    r"^(?:please\s+)?(?:add|create|new)(?:\s+a)?(?:\s+(?:task|todo|to-do))?\s*[:\-]?\s+(?P<title>.+)$", re.I
)
_LIST = re.compile(
    r"^(?:please\s+)?(?:list|show)(?:\s+(?:my|all|the))?(?:\s+(?:tasks?|todos?|to-dos?))?\s*[?.!]*$", re.I
)
_COMPLETE = re.compile(r"^(?:please\s+)?(?:complete|finish|done|check\s+off)(?:\s+task)?\s+(?P<id>\S+?)[.!]*$", re.I)
_DELETE = re.compile(r"^(?:please\s+)?(?:delete|remove)(?:\s+task)?\s+(?P<id>\S+?)[.!]*$", re.I)
_CHOOSE = re.compile(r"^(?:please\s+)?(?:help me\s+)?(?:choose|pick)(?:\s+between)?\s+(?P<options>.+?)[?.!]*$", re.I)
_OPTION_SPLIT = re.compile(r"\s*(?:,|\bor\b|\band\b)\s*", re.I)
_COUNT = re.compile(r"^(?:please\s+)?count\s+to\s+(?P<n>\d{1,6})[.!]*$", re.I)
_HUMAN = re.compile(r"\b(?:human|person|operator|real agent|someone real|escalate)\b", re.I)
_HANDOFF_WORDS = {
    "billing": re.compile(r"\b(?:billing|invoice|refund|payment|charge)s?\b", re.I),
    "support": re.compile(r"\b(?:support|bug|broken|error|crash|not working)\b", re.I),
    # A specialist hands the thread back to the front desk.
    "triage": re.compile(r"\b(?:triage|front desk|main menu|something else)\b", re.I),
}


@dataclass(frozen=True)
class _ToolCall:
    name: str
    arguments: dict[str, Any]


class OfflineModel(Model):
    """A deterministic model that maps a few commands to tool calls.

    Args:
        announce: Start the first reply of this run with ``OFFLINE_NOTICE``.
        chunk_words: Words per streamed text delta.
        chunk_delay: Seconds between deltas (0 for tests and benchmarks).
    """

    def __init__(self, *, announce: bool = False, chunk_words: int = 3, chunk_delay: float = 0.01) -> None:
        self._announce = announce
        self._chunk_words = max(1, chunk_words)
        self._chunk_delay = chunk_delay

    # -- the decision -----------------------------------------------------------

    def _decide(self, input: str | list[TResponseInputItem], tools: list[Tool], handoffs: list[Handoff]) -> Any:
        items: list[Any] = [{"role": "user", "content": input}] if isinstance(input, str) else list(input)
        while items and _typed_text(items[-1]).startswith(MENTION_CONTEXT):
            items.pop()  # the SDK's context for the tags of the message before: not what the user said
        decision = self._decide_turn(items, tools, handoffs)
        attached = _attachments(items[-1]) if items else []
        if attached and isinstance(decision, str):
            # It cannot read them, but says what it received (by name and type).
            names = ", ".join(attached)
            decision = (
                f"I received {len(attached)} attachment{'s' if len(attached) != 1 else ''}: {names}. "
                + (
                    "As the offline model I can't read their content.\n\n"
                    + (decision if _user_text(items[-1]).strip() else "")
                ).rstrip()
            )
        resumed = _handed_back(items)
        if resumed and isinstance(decision, str):
            # What a real model does with the hand-back summary: continue where the person left off.
            return f"{resumed}\n\n{decision}"
        return decision

    def _decide_turn(self, items: list[Any], tools: list[Tool], handoffs: list[Handoff]) -> Any:
        last = items[-1] if items else {}
        tool_names = {t.name for t in tools}
        if _get(last, "type") == "function_call_output":
            return self._summarise(items, last)
        text = _user_text(last).strip()
        if not text:
            return HELP
        if match := _ADD.match(text):
            return self._call_or_explain("add_task", {"title": match["title"].strip()}, tool_names)
        if _LIST.match(text):
            return self._call_or_explain("list_tasks", {}, tool_names)
        if match := _COMPLETE.match(text):
            return self._call_or_explain("complete_task", {"task_id": match["id"]}, tool_names)
        if match := _DELETE.match(text):
            return self._call_or_explain("delete_task", {"task_id": match["id"]}, tool_names)
        if (match := _CHOOSE.match(text)) and "ask_user" in tool_names:
            options = [o.strip() for o in _OPTION_SPLIT.split(match["options"]) if o.strip()]
            if len(options) >= 2:
                return _ToolCall("ask_user", {"question": "Which one would you like?", "options": options[:6]})
        if match := _COUNT.match(text):
            n = min(int(match["n"]), MAX_COUNT)
            return f"Counting to {n}: " + " ".join(str(i) for i in range(1, n + 1)) + "."
        if _HUMAN.search(text):
            return self._call_or_explain("escalate_to_human", {"reason": text[:500]}, tool_names)
        for handoff in handoffs:
            pattern = _HANDOFF_WORDS.get(handoff.agent_name.lower())
            if pattern is not None and pattern.search(text):
                return _ToolCall(handoff.tool_name, {})
        return f"I didn't understand “{text[:80]}”.\n\n{HELP}"

    @staticmethod
    def _call_or_explain(name: str, arguments: dict[str, Any], tool_names: set[str]) -> _ToolCall | str:
        if name in tool_names:
            return _ToolCall(name, arguments)
        return f"This agent has no `{name}` tool, so I can't do that here.\n\n{HELP}"

    @staticmethod
    def _summarise(items: Sequence[Any], output_item: Any) -> str:
        call_id = _get(output_item, "call_id")
        name = next(
            (_get(i, "name") for i in items if _get(i, "type") == "function_call" and _get(i, "call_id") == call_id),
            "",
        )
        text = _output_text(_get(output_item, "output"))
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if text.startswith("Not done:"):  # a call the user rejected on its approval card
            return text
        if name.startswith("transfer_to_"):
            return f"You're now talking with {name.removeprefix('transfer_to_').replace('_', ' ').title()}.\n\n{HELP}"
        if not isinstance(data, dict):
            return f"That didn't work: {text}"
        if name == "add_task":
            return f"Added “{data.get('title')}” to your tasks (id `{data.get('id')}`)."
        if name == "list_tasks":
            tasks = data.get("tasks") or []
            if not tasks:
                return "You have no open tasks."
            lines = "\n".join(f"- {t.get('title')} (`{t.get('id')}`)" for t in tasks)
            return f"You have {len(tasks)} open task{'s' if len(tasks) != 1 else ''}:\n{lines}"
        if name in ("complete_task", "update_task"):
            return f"Marked “{data.get('title')}” as done." if data.get("done") else f"Updated “{data.get('title')}”."
        if name == "delete_task":
            return f"Deleted task `{data.get('deleted')}`."
        if name == "ask_user":
            chosen = data.get("answer") or []
            if not chosen:
                return "You didn't pick one; ask me again when you're ready."
            return f"You chose “{', '.join(str(c) for c in chosen)}”."
        if name == "escalate_to_human":
            return str(data.get("message") or "I've asked a person to take over; they will reply here.")
        return f"Done: {text}"

    # -- the Model interface ----------------------------------------------------

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> ModelResponse:
        output = self._output(self._decide(input, tools, handoffs))
        return ModelResponse(output=output, usage=Usage(), response_id=None)

    async def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        decision = self._decide(input, tools, handoffs)
        output = self._output(decision)
        seq = _Sequence()
        yield cast(
            TResponseStreamEvent,
            ResponseCreatedEvent(type="response.created", response=_response([], "in_progress"), sequence_number=seq()),
        )
        item = output[0]
        if isinstance(item, ResponseFunctionToolCall):
            async for event in self._stream_call(item, seq):
                yield event
        else:
            async for event in self._stream_message(cast(ResponseOutputMessage, item), seq):
                yield event
        yield cast(
            TResponseStreamEvent,
            ResponseCompletedEvent(
                type="response.completed", response=_response(output, "completed"), sequence_number=seq()
            ),
        )

    # -- output and its stream --------------------------------------------------

    def _output(self, decision: _ToolCall | str) -> list[TResponseOutputItem]:
        if isinstance(decision, _ToolCall):
            call = ResponseFunctionToolCall(
                type="function_call",
                id=f"fc_{uuid.uuid4().hex}",
                call_id=f"call_{uuid.uuid4().hex[:24]}",
                name=decision.name,
                arguments=json.dumps(decision.arguments),
                status="completed",
            )
            return [call]
        text = decision
        if self._announce:
            text = f"{OFFLINE_NOTICE}\n\n{text}"
            self._announce = False
        message = ResponseOutputMessage(
            type="message",
            id=f"msg_{uuid.uuid4().hex}",
            role="assistant",
            status="completed",
            content=[ResponseOutputText(type="output_text", text=text, annotations=[], logprobs=[])],
        )
        return [message]

    async def _stream_call(self, call: ResponseFunctionToolCall, seq: _Sequence) -> AsyncIterator[TResponseStreamEvent]:
        item_id = call.id or call.call_id
        started = call.model_copy(update={"arguments": "", "status": "in_progress"})
        yield cast(
            TResponseStreamEvent,
            ResponseOutputItemAddedEvent(
                type="response.output_item.added", item=started, output_index=0, sequence_number=seq()
            ),
        )
        yield cast(
            TResponseStreamEvent,
            ResponseFunctionCallArgumentsDeltaEvent(
                type="response.function_call_arguments.delta",
                item_id=item_id,
                output_index=0,
                delta=call.arguments,
                sequence_number=seq(),
            ),
        )
        yield cast(
            TResponseStreamEvent,
            ResponseFunctionCallArgumentsDoneEvent.model_validate(
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item_id,
                    "output_index": 0,
                    "arguments": call.arguments,
                    "name": call.name,
                    "sequence_number": seq(),
                }
            ),
        )
        yield cast(
            TResponseStreamEvent,
            ResponseOutputItemDoneEvent(
                type="response.output_item.done", item=call, output_index=0, sequence_number=seq()
            ),
        )

    async def _stream_message(
        self, message: ResponseOutputMessage, seq: _Sequence
    ) -> AsyncIterator[TResponseStreamEvent]:
        part = cast(ResponseOutputText, message.content[0])
        started = message.model_copy(update={"content": [], "status": "in_progress"})
        yield cast(
            TResponseStreamEvent,
            ResponseOutputItemAddedEvent(
                type="response.output_item.added", item=started, output_index=0, sequence_number=seq()
            ),
        )
        empty = ResponseOutputText(type="output_text", text="", annotations=[], logprobs=[])
        yield cast(
            TResponseStreamEvent,
            ResponseContentPartAddedEvent(
                type="response.content_part.added",
                item_id=message.id,
                output_index=0,
                content_index=0,
                part=empty,
                sequence_number=seq(),
            ),
        )
        for chunk in _chunks(part.text, self._chunk_words):
            if self._chunk_delay:
                await asyncio.sleep(self._chunk_delay)
            yield cast(
                TResponseStreamEvent,
                ResponseTextDeltaEvent(
                    type="response.output_text.delta",
                    item_id=message.id,
                    output_index=0,
                    content_index=0,
                    delta=chunk,
                    logprobs=[],
                    sequence_number=seq(),
                ),
            )
        yield cast(
            TResponseStreamEvent,
            ResponseTextDoneEvent(
                type="response.output_text.done",
                item_id=message.id,
                output_index=0,
                content_index=0,
                text=part.text,
                logprobs=[],
                sequence_number=seq(),
            ),
        )
        yield cast(
            TResponseStreamEvent,
            ResponseContentPartDoneEvent(
                type="response.content_part.done",
                item_id=message.id,
                output_index=0,
                content_index=0,
                part=part,
                sequence_number=seq(),
            ),
        )
        yield cast(
            TResponseStreamEvent,
            ResponseOutputItemDoneEvent(
                type="response.output_item.done", item=message, output_index=0, sequence_number=seq()
            ),
        )


class _Sequence:
    def __init__(self) -> None:
        self._n = -1

    def __call__(self) -> int:
        self._n += 1
        return self._n


def _chunks(text: str, words: int) -> list[str]:
    # Split after whitespace so that joining the chunks gives the text back exactly.
    pieces = re.findall(r"\S+\s*|\s+", text)
    return ["".join(pieces[i : i + words]) for i in range(0, len(pieces), words)] or [""]


def _response(output: list[TResponseOutputItem], status: str) -> Response:
    return Response(
        id=f"resp_offline_{uuid.uuid4().hex[:12]}",
        created_at=0,
        model="switchboard-offline",
        object="response",
        output=output,
        tool_choice="auto",
        tools=[],
        top_p=None,
        parallel_tool_calls=False,
        status=cast(Any, status),
        usage=ResponseUsage(
            input_tokens=0,
            output_tokens=0,
            total_tokens=0,
            input_tokens_details=InputTokensDetails.model_validate({"cached_tokens": 0, "cache_write_tokens": 0}),
            output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
        ),
    )


def _get(item: Any, key: str) -> Any:
    if isinstance(item, dict):
        return item.get(key)
    return getattr(item, key, None)


def _user_text(item: Any) -> str:
    """What the user typed: without attachment notes and tag context, and without leading
    @-mentions (a message another service posted starts with its source)."""
    return _MENTIONS.sub("", _typed_text(item))


_MENTIONS = re.compile(r"^(?:@\S+\s+)+")
# How ChatKit's converter starts the context it adds after a message with tags.
MENTION_CONTEXT = "# User-provided context for @-mentions"


def _typed_text(item: Any) -> str:
    if _get(item, "role") != "user":
        return ""
    content = _get(item, "content")
    if isinstance(content, str):
        return content
    return "".join(
        str(_get(part, "text") or "")
        for part in content or []
        if _get(part, "type") == "input_text"
        and not str(_get(part, "text") or "").startswith((ATTACHMENT_MARK, TAG_MARK))
    )


def _attachments(item: Any) -> list[str]:
    """The attachments of a user message, as their header lines name them (“name”, type)."""
    content = _get(item, "content") if _get(item, "role") == "user" else None
    if not isinstance(content, list):
        return []
    found: list[str] = []
    for part in content:
        text = str(_get(part, "text") or "")
        if _get(part, "type") == "input_text" and text.startswith(ATTACHMENT_MARK):
            found.append(text[len(ATTACHMENT_MARK) :].split("]", 1)[0].strip().rsplit(",", 1)[0])
    return found


def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return "".join(str(_get(part, "text") or "") for part in output)
    return str(_get(output, "text") or output)


def _handed_back(items: list[Any]) -> str | None:
    """A line that picks up after a person's hand-off, when its summary came since the last answer."""
    for item in reversed(items):
        if _get(item, "role") == "assistant":
            return None  # answered since
        text = _user_text(item)
        if SUMMARY_HEADER not in text:
            continue
        summary = text.split(f"{SUMMARY_HEADER}: ", 1)[1]
        person = summary.split(",", 1)[0].strip()
        resolution = (
            next(
                (
                    line.removeprefix("Their resolution: ").strip()
                    for line in summary.splitlines()
                    if line.startswith("Their resolution: ")
                ),
                "",
            )
            .removesuffix("</HiddenContext>")
            .strip()
        )
        if resolution:
            return f"Welcome back. {person} from our team noted: “{resolution}”."
        return f"Welcome back. {person} from our team has handed you back to me."
    return None
