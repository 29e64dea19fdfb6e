"""The history a model reads: the newest turns within a token budget, and a summary of the rest.

A run reads the thread's newest items (``SWITCHBOARD_HISTORY_ITEMS`` at once)
and sends the model the newest whole turns whose input fits
``SWITCHBOARD_HISTORY_TOKENS`` (less a quarter kept for the summary), counted
per item as ``model_input.input_tokens`` counts them. The turns before them
are not dropped: they are summarized once (by the run's model; the offline
model's summary is extractive: the lines themselves, clipped) into a hidden
context item (``handoff.hidden_context``, the mechanism of the hand-back
summary) whose text starts with ``HISTORY_SUMMARY_HEADER``.

The summary is saved in the thread's timeline just after the last item it
covers, so the history of every later turn is: the newest summary, then what
came after it. When those items outgrow the budget again, the older of them
and the previous summary are summarized into a new one. A thread with no
summary yet whose history is longer than one read is read back to its start
(page by page, up to ``MAX_ITEMS_READ``) so that nothing older is lost.

Decisions: the budget cuts only between turns (a kept part starts with a user
message), so the model never sees a tool result without the question; the
turn being answered is kept whole even past the budget; a summary the model
could not write (its server failed) is made extractively instead, so a
summary never fails a turn.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from agents import Model, ModelSettings
from agents.items import TResponseInputItem
from agents.models.interface import ModelTracing
from chatkit.types import (
    AssistantMessageItem,
    HiddenContextItem,
    SDKHiddenContextItem,
    TaskItem,
    ThreadItem,
    UserMessageItem,
    UserMessageTextContent,
    WidgetItem,
)

from services.agent_runner.handoff import hidden_context
from services.agent_runner.model_input import RunInputConverter, TokenCounter, input_tokens
from services.thread_store.client import GrpcThreadStore
from switchboard.principal import Principal

log = logging.getLogger(__name__)

HISTORY_SUMMARY_HEADER = "Conversation summary"
# A thread with no summary is read back at most this far (in pages of PAGE_ITEMS).
MAX_ITEMS_READ = 5000
PAGE_ITEMS = 500
LINE_CHARS = 500
SUMMARY_INSTRUCTIONS = (
    "You summarize the earlier part of a conversation between a user and an assistant for the"
    " assistant, who will not see those turns again. Keep what the user asked for and decided, names,"
    " numbers, ids, dates, what tools did and what is still open. Write plain sentences, at most"
    " {words} words, with no preamble."
)


@dataclass(frozen=True)
class HistoryBudget:
    """How much history a model reads.

    Attributes:
        tokens: The budget of the summary and the turns sent (``SWITCHBOARD_HISTORY_TOKENS``).
        max_items: Items sent at most besides the summary (a budget in items too, so the
            newest summary stays among the items one read returns).
    """

    tokens: int = 8000
    max_items: int = 100

    @property
    def summary_tokens(self) -> int:
        """What the summary may take of the budget."""
        return max(50, self.tokens // 4)


Summarize = Callable[[str, list[str]], Awaitable[str]]


@dataclass
class PlannedInput:
    """The model input of a turn.

    Attributes:
        input: What the model reads.
        summary: A new summary to save in the thread (None: none was needed).
        summarized: How many items the new summary covers beyond the previous one.
        tokens: What the turns sent cost (besides the summary).
    """

    input: list[TResponseInputItem]
    summary: HiddenContextItem | None
    summarized: int
    tokens: int


def is_history_summary(item: ThreadItem) -> bool:
    """Whether an item is a history summary."""
    return (
        isinstance(item, HiddenContextItem)
        and isinstance(item.content, str)
        and item.content.startswith(HISTORY_SUMMARY_HEADER)
    )


def summary_body(item: HiddenContextItem | None) -> str:
    """A summary's text without its header line."""
    if item is None or not isinstance(item.content, str):
        return ""
    return item.content.partition("\n")[2]


def transcript(items: Sequence[ThreadItem]) -> list[str]:
    """Items as transcript lines (what a summary is made of), each clipped to ``LINE_CHARS``."""
    lines: list[str] = []
    for item in items:
        line = ""
        if isinstance(item, UserMessageItem):
            text = " ".join(c.text for c in item.content if isinstance(c, UserMessageTextContent))
            attached = ", ".join(f"{a.name} ({a.mime_type})" for a in item.attachments)
            line = f"User: {text}" + (f" [attached: {attached}]" if attached else "")
        elif isinstance(item, AssistantMessageItem):
            line = "Assistant: " + "".join(c.text for c in item.content)
        elif isinstance(item, TaskItem):
            title, content = getattr(item.task, "title", None), getattr(item.task, "content", None)
            line = "Shown: " + ": ".join(str(p) for p in (title, content) if p)
        elif isinstance(item, (HiddenContextItem, SDKHiddenContextItem)):
            body = (
                summary_body(item) if isinstance(item, HiddenContextItem) and is_history_summary(item) else item.content
            )
            line = f"Note: {body}"
        elif isinstance(item, WidgetItem):
            line = "Shown: a card"
        line = " ".join(line.split())
        if line:
            lines.append(line if len(line) <= LINE_CHARS else line[: LINE_CHARS - 1] + "…")
    return lines


def extractive_summary(previous: str, lines: list[str], max_chars: int) -> str:
    """The previous summary and the new lines themselves; past ``max_chars``, the first lines and the
    newest that fit (what the conversation started with, and where it went)."""
    every = [line for line in previous.splitlines() if line.strip() and line != "…"] + lines
    if sum(len(line) + 1 for line in every) <= max_chars:
        return "\n".join(every)
    head = every[:3]
    room = max_chars - sum(len(line) + 1 for line in head) - 2
    tail: list[str] = []
    for line in reversed(every[3:]):
        if len(line) + 1 > room:
            break
        tail.insert(0, line)
        room -= len(line) + 1
    return "\n".join([*head, "…", *tail])[:max_chars]


def model_summarizer(model: Model, max_chars: int) -> Summarize:
    """A summary written by ``model``, a part of the transcript at a time; extractive where it fails."""

    async def summarize(previous: str, lines: list[str]) -> str:
        summary = previous
        chunk_chars = max(2000, max_chars * 4)
        start = 0
        while start < len(lines):
            end, size = start, 0
            while end < len(lines) and (end == start or size + len(lines[end]) < chunk_chars):
                size += len(lines[end]) + 1
                end += 1
            chunk = lines[start:end]
            start = end
            prompt = (f"Summary so far:\n{summary}\n\n" if summary else "") + "Conversation:\n" + "\n".join(chunk)
            try:
                response = await model.get_response(
                    SUMMARY_INSTRUCTIONS.format(words=max(30, max_chars // 6)),
                    [{"role": "user", "content": prompt}],
                    ModelSettings(),
                    [],
                    None,
                    [],
                    ModelTracing.DISABLED,
                    previous_response_id=None,
                    conversation_id=None,
                    prompt=None,
                )
                written = _output_text(response.output).strip()
            except Exception as error:  # the model's server failed: the turn goes on
                log.warning("the model could not summarize the history (%s); summarizing extractively", error)
                written = ""
            summary = written[:max_chars] if written else extractive_summary(summary, chunk, max_chars)
        return summary

    return summarize


def extractive_summarizer(max_chars: int) -> Summarize:
    """The offline model's summary: the lines themselves."""

    async def summarize(previous: str, lines: list[str]) -> str:
        return extractive_summary(previous, lines, max_chars)

    return summarize


def _output_text(output: Sequence[object]) -> str:
    texts: list[str] = []
    for item in output:
        for part in getattr(item, "content", None) or []:
            text = getattr(part, "text", None)
            if isinstance(text, str):
                texts.append(text)
    return "".join(texts)


async def read_back_to_summary(
    store: GrpcThreadStore, principal: Principal, thread_id: str, items: list[ThreadItem], *, complete: bool
) -> list[ThreadItem]:
    """``items`` (the newest of the thread, oldest first), with older ones read until the newest
    summary or the thread's start, when they hold no summary and the thread may have more
    (``complete`` False)."""
    if complete or not items or any(is_history_summary(item) for item in items):
        return items
    older: list[ThreadItem] = []
    cursor = items[0].id
    while len(older) + len(items) < MAX_ITEMS_READ:
        page = await store.load_thread_items(thread_id, cursor, PAGE_ITEMS, "desc", principal)
        older = [*reversed(page.data), *older]
        if not page.has_more or not page.data or any(is_history_summary(item) for item in page.data):
            break
        cursor = page.data[-1].id
    return [*older, *items]


async def plan_input(
    items: list[ThreadItem],
    *,
    thread_id: str,
    converter: RunInputConverter,
    count: TokenCounter,
    budget: HistoryBudget,
    summarize: Summarize,
) -> PlannedInput:
    """The model input of a turn over ``items`` (oldest first; the last is the message answered)."""
    start = max((i for i, item in enumerate(items) if is_history_summary(item)), default=-1)
    previous = items[start] if start >= 0 else None
    assert previous is None or isinstance(previous, HiddenContextItem)
    tail = items[start + 1 :]
    converted = [await converter.item_to_input(item, is_last_message=item is items[-1]) for item in tail]
    costs = [input_tokens(parts, count) for parts in converted]
    cut = _cut(tail, costs, max(1, budget.tokens - budget.summary_tokens), budget.max_items)
    summary = previous
    new_summary: HiddenContextItem | None = None
    if cut > 0:
        overflow = tail[:cut]
        max_chars = budget.summary_tokens * 4
        body = await summarize(summary_body(previous), transcript(overflow))
        content = f"{HISTORY_SUMMARY_HEADER} of the earlier conversation (the turns before what follows):\n{body}"
        new_summary = hidden_context(
            thread_id, content[: max_chars + 200], created_at=_just_after(overflow, tail[cut:])
        )
        summary = new_summary
    sent = [part for parts in converted[cut:] for part in parts]
    head = await converter.item_to_input(summary, is_last_message=False) if summary is not None else []
    return PlannedInput(input=[*head, *sent], summary=new_summary, summarized=cut, tokens=sum(costs[cut:]))


def _cut(tail: list[ThreadItem], costs: list[int], tokens: int, max_items: int) -> int:
    """Where the sent part of ``tail`` starts: the oldest turn boundary within the budget, or the
    start of the newest turn when even it is past the budget."""
    first, total = len(tail), 0
    while first > 0 and total + costs[first - 1] <= tokens and len(tail) - first < max_items:
        first -= 1
        total += costs[first]
    if first == 0:
        return 0
    turns = [i for i, item in enumerate(tail) if isinstance(item, UserMessageItem)]
    boundary = next((i for i in turns if i >= first), None)
    if boundary is None:
        boundary = max((i for i in turns if i < first), default=first)
    return boundary


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _just_after(covered: list[ThreadItem], kept: list[ThreadItem]) -> datetime:
    """A time after the last covered item and, when it can be, before the first kept one."""
    last = _aware(covered[-1].created_at)
    after = last + timedelta(microseconds=1)
    if kept and after >= _aware(kept[0].created_at):
        return last
    return after
