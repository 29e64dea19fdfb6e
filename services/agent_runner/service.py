"""One run: load the history window, run the thread's agent, stream ChatKit events.

The runner is the writer of record for what a run produces: it saves the new
user message, every finished item (``thread.item.done``, tool task items as
soon as they start) and the thread's title, through the thread store's public
client. Saves are upserts by id, so a ChatKit server that saves the same
finished items again (the edge) changes nothing.

Every run ends its stream properly: a model or tool failure becomes an
``error`` event with a message the user can act on, a cancel finishes the
items left open (partial text is kept), and the thread stays usable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import openai
from agents import MaxTurnsExceeded, ModelBehaviorError, RunConfig, Runner
from agents.exceptions import AgentsException, UserError
from chatkit.agents import AgentContext, ThreadItemConverter, stream_agent_response
from chatkit.store import NotFoundError, Store
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageContentPartAdded,
    AssistantMessageContentPartDone,
    AssistantMessageContentPartTextDelta,
    AssistantMessageItem,
    ErrorEvent,
    NoticeEvent,
    Page,
    TaskItem,
    Thread,
    ThreadItem,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemRemovedEvent,
    ThreadItemReplacedEvent,
    ThreadItemUpdatedEvent,
    ThreadMetadata,
    ThreadStreamEvent,
    ThreadUpdatedEvent,
    UserMessageItem,
    UserMessageTextContent,
)

from services.agent_runner.catalog import AgentCatalog
from services.agent_runner.runs import LiveRun, RunRegistry
from services.agent_runner.tool_items import RunState, ToolItemHooks
from switchboard.errors import InvalidArgument, NotFound, SwitchboardError
from switchboard.principal import Principal

log = logging.getLogger(__name__)

OFFLINE_NOTICE_FLAG = "switchboard_offline_notice_shown"
TITLE_WORDS = 8
TITLE_CHARS = 60
_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class RunRequest:
    """What a run answers.

    Attributes:
        principal: The caller.
        thread_id: The thread.
        user_message: The new user message, or None to retry.
        retry_after_item_id: The user message to answer again.
        agent_id: The agent to run (None: the thread's, else the default).
        run_id: The run's id (None: generated).
    """

    principal: Principal
    thread_id: str
    user_message: UserMessageItem | None = None
    retry_after_item_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class RunnerLimits:
    """Bounds of a run.

    Attributes:
        history_items: How many of the thread's latest items the model sees.
        max_turns: Model calls per run (tool calls and handoffs each take one).
    """

    history_items: int = 30
    max_turns: int = 12


@dataclass
class _Pending:
    """Items streamed as added and not yet done: finished on cancel or error."""

    items: dict[str, ThreadItem] = field(default_factory=dict)

    def track(self, event: ThreadStreamEvent) -> None:
        if isinstance(event, ThreadItemAddedEvent):
            self.items[event.item.id] = event.item.model_copy(deep=True)
        elif isinstance(event, (ThreadItemDoneEvent, ThreadItemReplacedEvent)):
            self.items.pop(event.item.id, None)
        elif isinstance(event, ThreadItemRemovedEvent):
            self.items.pop(event.item_id, None)
        elif isinstance(event, ThreadItemUpdatedEvent):
            item = self.items.get(event.item_id)
            update = event.update
            if not isinstance(item, AssistantMessageItem):
                return
            if isinstance(update, (AssistantMessageContentPartAdded, AssistantMessageContentPartDone)):
                self._part(item, update.content_index).text = update.content.text
            elif isinstance(update, AssistantMessageContentPartTextDelta):
                self._part(item, update.content_index).text += update.delta

    @staticmethod
    def _part(item: AssistantMessageItem, index: int) -> AssistantMessageContent:
        while len(item.content) <= index:
            item.content.append(AssistantMessageContent(text=""))
        return item.content[index]


class _MessageIds:
    """Give each assistant message a fresh store id.

    ChatKit reuses the model's message id, which is not unique everywhere:
    Chat Completions servers send a fixed placeholder, scripted models a
    constant. Each ``added`` opens a new id; later events of the same model id
    follow it.
    """

    def __init__(self, store: Store[Any], thread: ThreadMetadata, principal: Principal) -> None:
        self._store, self._thread, self._principal = store, thread, principal
        self._ids: dict[str, str] = {}

    def apply(self, event: ThreadStreamEvent) -> ThreadStreamEvent:
        if isinstance(event, ThreadItemAddedEvent) and isinstance(event.item, AssistantMessageItem):
            new_id = self._store.generate_item_id("message", self._thread, self._principal)
            self._ids[event.item.id] = new_id
            return ThreadItemAddedEvent(item=event.item.model_copy(update={"id": new_id}))
        if isinstance(event, ThreadItemDoneEvent) and isinstance(event.item, AssistantMessageItem):
            new_id = self._ids.get(event.item.id) or self._store.generate_item_id(
                "message", self._thread, self._principal
            )
            return ThreadItemDoneEvent(item=event.item.model_copy(update={"id": new_id}))
        if isinstance(event, ThreadItemUpdatedEvent) and event.item_id in self._ids:
            return event.model_copy(update={"item_id": self._ids[event.item_id]})
        if isinstance(event, ThreadItemRemovedEvent) and event.item_id in self._ids:
            return ThreadItemRemovedEvent(item_id=self._ids[event.item_id])
        return event


class Run:
    """A started run: its id, and its events once (``events()``)."""

    def __init__(self, service: AgentRunnerService, request: RunRequest, thread: ThreadMetadata, live: LiveRun) -> None:
        self.run_id = live.run_id
        self._service = service
        self._request = request
        self._thread = thread
        self._live = live
        self._cancelled = False
        self._stop: asyncio.Event = asyncio.Event()

    def cancel(self) -> None:
        """Stop the run; its stream ends after finishing the open items."""
        self._cancelled = True
        self._stop.set()

    @property
    def cancelled(self) -> bool:
        """Whether the run was cancelled."""
        return self._cancelled

    async def events(self) -> AsyncIterator[ThreadStreamEvent]:
        """Run and yield the events; the thread is released at the end, however it ends."""
        try:
            async for event in self._service._produce(self, self._request, self._thread):
                yield event
        finally:
            await self._service.registry.release(self._live)

    async def wait_stopped(self) -> None:
        """Return once the run is cancelled."""
        await self._stop.wait()


class AgentRunnerService:
    """Runs agents on threads.

    Args:
        store: The thread store's ChatKit ``Store`` client.
        catalog: The agents.
        registry: Live runs, thread claims and cancels.
        limits: History window and turn bounds.
    """

    def __init__(
        self, *, store: Store[Any], catalog: AgentCatalog, registry: RunRegistry, limits: RunnerLimits | None = None
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.registry = registry
        self.limits = limits or RunnerLimits()
        self.converter = ThreadItemConverter()

    async def start(self, request: RunRequest) -> Run:
        """Check the request, load the thread and claim it.

        Raises:
            InvalidArgument: the request is malformed.
            NotFound: the thread (or the item to retry after) is not the caller's.
            FailedPrecondition: the thread is still answering another message.
        """
        if not request.thread_id:
            raise InvalidArgument("thread_id is required")
        if (request.user_message is None) == (request.retry_after_item_id is None):
            raise InvalidArgument("give exactly one of user_message_json or retry_after_item_id")
        if request.user_message is not None and request.user_message.thread_id != request.thread_id:
            raise InvalidArgument("the user message belongs to another thread than thread_id")
        if request.run_id is not None and not _RUN_ID.match(request.run_id):
            raise InvalidArgument("run_id must be 1-64 letters, digits, '-' or '_'")
        self.catalog.spec(request.agent_id)  # an unknown agent fails before anything is written
        try:
            thread = await self.store.load_thread(request.thread_id, request.principal)
        except NotFoundError:
            raise NotFound(f"there is no thread {request.thread_id!r}") from None
        run_id = request.run_id or f"run_{uuid.uuid4().hex[:16]}"
        holder: list[Run] = []
        live = LiveRun(
            run_id=run_id,
            user_id=request.principal.user_id,
            thread_id=request.thread_id,
            cancel=lambda: holder[0].cancel() if holder else None,
        )
        await self.registry.claim(live)
        run = Run(self, request, thread, live)
        holder.append(run)
        return run

    # -- the pipeline ----------------------------------------------------------

    async def _input_item(self, request: RunRequest) -> UserMessageItem:
        if request.user_message is not None:
            await self.store.add_thread_item(request.thread_id, request.user_message, request.principal)
            return request.user_message
        assert request.retry_after_item_id is not None
        try:
            item = await self.store.load_item(request.thread_id, request.retry_after_item_id, request.principal)
        except NotFoundError:
            raise NotFound(f"there is no item {request.retry_after_item_id!r} in this thread") from None
        if not isinstance(item, UserMessageItem):
            raise InvalidArgument("retry_after_item_id must name a user message")
        return item

    async def _history(self, request: RunRequest, input_item: UserMessageItem) -> list[ThreadItem]:
        page = await self.store.load_thread_items(
            request.thread_id, None, self.limits.history_items, "desc", request.principal
        )
        items = list(reversed(page.data))
        ids = [i.id for i in items]
        if input_item.id in ids:
            items = items[: ids.index(input_item.id) + 1]
        else:
            items.append(input_item)
        return items

    async def _persist(self, event: ThreadStreamEvent, principal: Principal, thread_id: str) -> None:
        if isinstance(event, (ThreadItemDoneEvent, ThreadItemReplacedEvent)):
            await self.store.add_thread_item(thread_id, event.item, principal)
        elif isinstance(event, ThreadItemAddedEvent) and isinstance(event.item, TaskItem):
            # A running tool shows after a reload too; its done event overwrites it.
            await self.store.add_thread_item(thread_id, event.item, principal)
        elif isinstance(event, ThreadItemRemovedEvent):
            with contextlib.suppress(NotFoundError, NotFound):
                await self.store.delete_thread_item(thread_id, event.item_id, principal)

    async def _produce(self, run: Run, request: RunRequest, thread: ThreadMetadata) -> AsyncIterator[ThreadStreamEvent]:
        principal = request.principal
        pending = _Pending()
        hooks: ToolItemHooks | None = None
        failure: ErrorEvent | None = None
        completed = False
        flagged = False
        async with AsyncExitStack() as stack:
            try:
                input_item = await self._input_item(request)
                history = await self._history(request, input_item)
                agent_input = await self.converter.to_agent_input(history)
                spec = self.catalog.spec(request.agent_id or _str(thread.metadata.get("agent_id")))
                offline = self.catalog.models.is_offline(spec.model)
                announce = offline and not thread.metadata.get(OFFLINE_NOTICE_FLAG)
                built = await self.catalog.build(spec, principal, stack, announce_offline=announce)
                for notice in built.notices:
                    yield NoticeEvent(level="warning", message=notice)
                chatkit = AgentContext[Any](thread=thread, store=self.store, request_context=principal)
                state = RunState(principal=principal, chatkit=chatkit)
                hooks = ToolItemHooks(state)
                result = Runner.run_streamed(
                    built.starting,
                    agent_input,
                    context=state,
                    hooks=hooks,
                    max_turns=self.limits.max_turns,
                    run_config=RunConfig(tracing_disabled=True),
                )
                stopper = asyncio.create_task(run.wait_stopped())
                stopper.add_done_callback(lambda _: result.cancel())
                stack.callback(stopper.cancel)
                ids = _MessageIds(self.store, thread, principal)
                async for raw_event in stream_agent_response(chatkit, result):
                    event = ids.apply(raw_event)
                    pending.track(event)
                    await self._persist(event, principal, thread.id)
                    yield event
                completed = not run.cancelled
                if announce and completed:
                    thread.metadata[OFFLINE_NOTICE_FLAG] = True
                    flagged = True
            except asyncio.CancelledError:
                # The caller went away: keep what was produced, then stop.
                run.cancel()
                await asyncio.shield(self._finish_pending(pending, hooks, principal, thread.id, "cancelled"))
                raise
            except Exception as error:
                failure = _error_event(error)
                if not isinstance(error, SwitchboardError):
                    log.exception("run %s failed", run.run_id)
        reason = "cancelled" if run.cancelled else ("failed" if failure else "")
        if reason:
            for event in await self._finish_pending(pending, hooks, principal, thread.id, reason):
                yield event
        if failure is not None:
            yield failure
        if completed or run.cancelled:
            async for event in self._update_thread(thread, request, principal, changed=flagged):
                yield event

    async def _finish_pending(
        self, pending: _Pending, hooks: ToolItemHooks | None, principal: Principal, thread_id: str, reason: str
    ) -> list[ThreadStreamEvent]:
        events: list[ThreadStreamEvent] = []
        for item in list(pending.items.values()):
            if isinstance(item, AssistantMessageItem):
                if any(c.text for c in item.content):
                    events.append(ThreadItemDoneEvent(item=item))
                else:
                    events.append(ThreadItemRemovedEvent(item_id=item.id))
        if hooks is not None:
            events.extend(ThreadItemDoneEvent(item=i) for i in hooks.unfinished(reason))
        pending.items.clear()
        for event in events:
            try:
                await self._persist(event, principal, thread_id)
            except Exception:
                log.exception("could not save the open items of a %s run", reason)
        return events

    async def _update_thread(
        self, thread: ThreadMetadata, request: RunRequest, principal: Principal, *, changed: bool
    ) -> AsyncIterator[ThreadStreamEvent]:
        if not thread.title:
            title = await self._title(request, principal)
            if title:
                thread.title = title
                changed = True
        if not changed:
            return
        try:
            await self.store.save_thread(thread, principal)
        except Exception:
            log.exception("could not save thread %s", thread.id)
            return
        if thread.title:
            yield ThreadUpdatedEvent(thread=Thread(**thread.model_dump(), items=Page(data=[], has_more=False)))

    async def _title(self, request: RunRequest, principal: Principal) -> str | None:
        """A short title from the thread's first user message (deterministic, costs no model call)."""
        page = await self.store.load_thread_items(request.thread_id, None, 5, "asc", principal)
        first = next((i for i in page.data if isinstance(i, UserMessageItem)), request.user_message)
        if first is None:
            return None
        text = " ".join(
            " ".join(c.text.split()) for c in first.content if isinstance(c, UserMessageTextContent)
        ).strip()
        if not text:
            return None
        words = text.split()
        title = " ".join(words[:TITLE_WORDS])
        if len(title) > TITLE_CHARS:
            title = title[: TITLE_CHARS - 1].rstrip() + "…"
        elif len(words) > TITLE_WORDS:
            title += "…"
        return title[0].upper() + title[1:]


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _error_event(error: Exception) -> ErrorEvent:
    """The error a user sees, with what they can do about it."""
    message: str
    if isinstance(error, SwitchboardError):
        message = error.message
    elif isinstance(error, openai.AuthenticationError):
        message = "The model provider rejected the API key. Check OPENAI_API_KEY on the agent runner."
    elif isinstance(error, openai.APIConnectionError):
        message = (
            "The model server could not be reached. Check OPENAI_BASE_URL and that the server is running,"
            " or set SWITCHBOARD_MODEL=offline."
        )
    elif isinstance(error, openai.RateLimitError):
        message = "The model provider is rate limiting requests. Wait a moment and try again."
    elif isinstance(error, openai.NotFoundError):
        message = "The model provider does not know this model. Check SWITCHBOARD_MODEL or the agent's model."
    elif isinstance(error, openai.APIStatusError):
        message = f"The model provider answered with an error ({error.status_code}). Try again in a moment."
    elif isinstance(error, MaxTurnsExceeded):
        message = "The agent took too many steps without answering. Try rephrasing your request."
    elif isinstance(error, ModelBehaviorError):
        message = f"The model produced something the agent could not use ({error}). Try again."
    elif isinstance(error, UserError):
        message = f"The agent is misconfigured: {error}. An administrator should check the agents file."
    elif isinstance(error, AgentsException):
        message = f"The agent failed: {error}. Try again."
    else:
        message = f"The model failed ({type(error).__name__}: {error}). Try again; the runner's log has details."
    return ErrorEvent(code="custom", message=message, allow_retry=True)
