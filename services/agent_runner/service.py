"""Runs: accept a message under the double-texting policy, answer it in the background,
stream, join, cancel; heartbeat and reap.

The runner is the one writer of a turn: it saves the new user message (creating
the thread for ChatKit's ``threads.create``), every item of the answer (a
running answer's text at least every ``partial_save_seconds``) and the thread's
record, through the thread store's public client. A run executes as a task of
this replica, not of the call that started it: a caller going away leaves it
running; it ends ``completed``, ``failed``, ``cancelled`` (a user asked; the
partial answer is kept and a hidden note tells the next run not to continue
it) or ``interrupted`` (this replica stopped or lost its lease).

Every run ends its stream properly: a model or tool failure becomes an
``error`` event with a message the user can act on, a stop finishes the items
left open, and the thread stays usable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import openai
from agents import MaxTurnsExceeded, ModelBehaviorError, RunContextWrapper, Runner
from agents import RunState as PausedRun
from agents.exceptions import AgentsException, UserError
from chatkit.agents import AgentContext, stream_agent_response
from chatkit.store import NotFoundError, Store
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageContentPartAdded,
    AssistantMessageContentPartDone,
    AssistantMessageContentPartTextDelta,
    AssistantMessageItem,
    ErrorEvent,
    HiddenContextItem,
    NoticeEvent,
    Page,
    ProgressUpdateEvent,
    SDKHiddenContextItem,
    StreamOptions,
    StreamOptionsEvent,
    TaskItem,
    Thread,
    ThreadCreatedEvent,
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
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.agent_runner.approvals import (
    PendingApproval,
    approval_card,
    call_arguments,
    decided_text,
    question_item,
)
from services.agent_runner.catalog import ASK_USER, AgentCatalog
from services.agent_runner.handoff import SESSION_METADATA_KEY, Handoffs, HandoffView
from services.agent_runner.history import (
    HistoryBudget,
    extractive_summarizer,
    model_summarizer,
    plan_input,
    read_back_to_summary,
)
from services.agent_runner.live import LiveRun, Subscription, event_json
from services.agent_runner.model_input import DEFAULT_INLINE_BYTES, RunInputConverter, token_counter
from services.agent_runner.runs import (
    MAX_RUN_PAGE,
    TERMINAL,
    WAITING,
    RunLog,
    RunRecord,
    RunRepository,
    RunSignals,
)
from services.agent_runner.sessions import SessionLinks
from services.agent_runner.titles import model_title
from services.agent_runner.tool_items import RunState, ToolItemHooks
from services.thread_store.client import GrpcThreadStore, handler_of, item_from_json
from switchboard import pages
from switchboard.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    SwitchboardError,
    Unavailable,
)
from switchboard.pages import check_limit
from switchboard.principal import Principal
from switchboard.tracing import agents_run_config

log = logging.getLogger(__name__)

OFFLINE_NOTICE_FLAG = "switchboard_offline_notice_shown"
# The thread's agent: the one that answered last; the next turn starts with it.
AGENT_METADATA_KEY = "agent_id"
TITLE_WORDS = 8
TITLE_CHARS = 60
_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CANCELLED_NOTE = "The user cancelled the stream. Stop responding to the prior request."
INTERRUPTED_ERROR = (
    "The agent runner answering this message stopped; what it had written is kept. Send your message again."
)
QUEUED_TEXT = "Waiting for the previous answer to finish…"
WAITING_FOR_PERSON = "A person from our team will reply here…"
# After a hand-off ends, how long a stream still waits for the notice that says so.
HANDOFF_END_GRACE_SECONDS = 1.5
MOVED_ON = "Not done: you sent another message"
IMAGES_REFUSED = "The model could not take the images in this conversation; it was told their names instead."
EXPIRED = "Expired · nothing was done"
DoubleText = Literal["enqueue", "interrupt", "reject"]


@dataclass(frozen=True)
class ApprovalDecision:
    """A click on an approval card: the card (its widget item id) and the decision."""

    card_id: str
    approve: bool
    answer: tuple[str, ...] = ()  # the values chosen, when the card is an ask_user question


@dataclass(frozen=True)
class RunRequest:
    """What a run answers.

    Attributes:
        principal: The caller.
        thread_id: The thread.
        user_message: The new user message (None: retry or continue).
        retry_after_item_id: The user message to answer again (the items after it go).
        continue_thread: Answer what the thread holds now.
        agent_id: The agent to run (None: the thread's, else the default).
        run_id: The run's id (None: generated).
        create_thread: Create this thread for the message (ChatKit's ``threads.create``).
        scope: The scope of a created thread.
        approval: A decision on a card: resume the run waiting on it.
    """

    principal: Principal
    thread_id: str
    user_message: UserMessageItem | None = None
    retry_after_item_id: str | None = None
    continue_thread: bool = False
    agent_id: str | None = None
    run_id: str | None = None
    create_thread: ThreadMetadata | None = None
    scope: str | None = None
    approval: ApprovalDecision | None = None


@dataclass(frozen=True)
class RunnerLimits:
    """Bounds and policies of runs.

    Attributes:
        history_items: How many of the thread's latest items a run reads at once (the history
            budget picks what the model sees of them; see ``history``).
        history_tokens: The history budget in tokens (``SWITCHBOARD_HISTORY_TOKENS``).
        attachment_inline_bytes: How much of a text-like attachment the model reads inline.
        model_images: Whether the configured models take image input (the offline model never does).
        max_turns: Model calls per run (tool calls and handoffs each take one).
        double_text: A message to a thread that is answering: ``enqueue`` (answered
            right after, in order), ``interrupt`` (the running answer stops, the new
            message is answered) or ``reject`` (refused, not saved).
        lease_seconds: A run's lease; its holder renews it every fifth of it.
        partial_save_seconds: How often a running answer's text is saved.
        approval_ttl_seconds: How long an approval card waits before its run ends as cancelled.
        operator_may_approve: Whether an operator of the thread's org may decide a card for the user.
    """

    history_items: int = 200
    history_tokens: int = 8000
    attachment_inline_bytes: int = DEFAULT_INLINE_BYTES
    model_images: bool = True
    max_turns: int = 12
    double_text: DoubleText = "enqueue"
    lease_seconds: float = 10.0
    partial_save_seconds: float = 1.0
    approval_ttl_seconds: float = 86400.0
    operator_may_approve: bool = False

    @property
    def heartbeat_seconds(self) -> float:
        """How often leases are renewed and expired ones reaped."""
        return self.lease_seconds / 5


@dataclass
class JoinedRun:
    """What ``join`` found: the run (None: the thread has no active run) and its batches."""

    run: RunRecord | None
    batches: AsyncIterator[list[tuple[int, bytes]]] | None = None
    final: list[str] = field(default_factory=list)  # the final status, once the batches end

    @property
    def final_status(self) -> str:
        """The run's status when it ended ('' before)."""
        return self.final[0] if self.final else ""


class _PartialSaves:
    """Save a running answer's text as it grows, at most once per interval per item, never
    overwriting what follows (the final save waits for an earlier partial one)."""

    def __init__(self, store: GrpcThreadStore, principal: Principal, thread_id: str, interval: float) -> None:
        self._store, self._principal, self._thread_id, self._interval = store, principal, thread_id, interval
        self._last: dict[str, float] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def maybe_save(self, item: ThreadItem) -> None:
        now = time.monotonic()
        last = self._last.setdefault(item.id, now)
        running = self._tasks.get(item.id)
        if now - last < self._interval or (running is not None and not running.done()):
            return
        self._last[item.id] = now
        copy = item.model_copy(deep=True)
        self._tasks[item.id] = asyncio.create_task(self._save(copy), name=f"partial-save-{item.id}")

    async def _save(self, item: ThreadItem) -> None:
        try:
            await self._store.add_thread_item(self._thread_id, item, self._principal)
        except Exception as error:
            log.warning("could not save the partial answer %s (%s)", item.id, error)

    async def settle(self, item_id: str) -> None:
        """Wait for the item's partial save in flight, if any."""
        task = self._tasks.pop(item_id, None)
        if task is not None:
            await asyncio.shield(task)

    async def settle_all(self) -> None:
        for item_id in list(self._tasks):
            await self.settle(item_id)


class AgentRunnerService:
    """Runs agents on threads, durably.

    Args:
        store: The thread store's client.
        catalog: The agents.
        runs: The ``runs`` table.
        log: Runs' event logs in Redis (None: no joins across replicas).
        signal_clients: Redis clients (publish, subscribe) for cancels and wake-ups
            between replicas; None: this replica alone (the heartbeat still finds cancels).
        sessions: Chat sessions (None: not tracked).
        limits: Bounds and policies.
        handoffs: Who answers threads (None: always the agent).
    """

    def __init__(
        self,
        *,
        store: GrpcThreadStore,
        catalog: AgentCatalog,
        runs: RunRepository,
        log: RunLog | None = None,
        signal_clients: tuple[Redis, Redis] | None = None,
        sessions: SessionLinks | None = None,
        limits: RunnerLimits | None = None,
        handoffs: Handoffs | None = None,
    ) -> None:
        self.store = store
        self.handoffs = handoffs
        if handoffs is not None:
            handoffs.stop_runs = self.stop_answering
        self.catalog = catalog
        self.runs = runs
        self.log = log
        publisher, subscriber = signal_clients or (None, None)
        self.signals = RunSignals(publisher, subscriber, on_cancel=self.on_cancel_signal, on_ended=self.wake_thread)
        self.sessions = sessions
        self.limits = limits or RunnerLimits()
        self.live: dict[str, LiveRun] = {}
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._keeper: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._closing = False

    # -- lifecycle -------------------------------------------------------------

    async def start_background(self) -> None:
        """Start heartbeats and the reaper, and listen for signals."""
        await self.signals.start()
        self._keeper = asyncio.create_task(self._keep_leases(), name="agent_runner-leases")
        self._sweeper = asyncio.create_task(self._sweep(), name="agent_runner-sweeps")

    async def close(self, *, grace: float = 5.0) -> None:
        """Stop every live run as ``interrupted`` (the partial answers are kept), then the background work."""
        self._closing = True
        for run in list(self.live.values()):
            run.stop("interrupted")
        tasks = [run.task for run in self.live.values() if run.task is not None]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
        for background in (self._keeper, self._sweeper):
            if background is not None:
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
        await self.signals.close()

    def on_cancel_signal(self, run_id: str, user_id: str) -> None:
        """A cancel published by another replica."""
        run = self.live.get(run_id)
        if run is not None and run.principal.user_id == user_id:
            log.info("run %s cancelled from another replica", run_id)
            run.stop("cancelled")

    def wake_thread(self, thread_id: str) -> None:
        """A run of the thread ended: its queued runs may start."""
        for event in self._waiters.pop(thread_id, set()):
            event.set()

    async def _keep_leases(self) -> None:
        """Renew leases, alone: nothing slower (a sweep waiting on a busy service) may delay it."""
        await self._every_heartbeat([("renewing leases", self._heartbeat)])

    async def _sweep(self) -> None:
        """What any replica sweeps: expired leases, cards nobody decided, hand-offs nobody claimed."""
        steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("reaping expired runs", self._reap),
            ("expiring action cards", self._expire_cards),
        ]
        if self.handoffs is not None:
            steps.append(("returning unclaimed hand-offs to the agent", self.handoffs.expire))
        await self._every_heartbeat(steps)

    async def _every_heartbeat(self, steps: list[tuple[str, Callable[[], Awaitable[object]]]]) -> None:
        while True:
            await asyncio.sleep(self.limits.heartbeat_seconds)
            # Each step on its own: one failing (its store down) never skips the others.
            for what, step in steps:
                try:
                    await step()
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    log.warning("%s failed (%s); retrying in %.1f s", what, error, self.limits.heartbeat_seconds)

    async def _heartbeat(self) -> None:
        began = time.monotonic()
        held = await self.runs.renew_leases(list(self.live))
        for run in list(self.live.values()):
            if run.ending or run.registered_at >= began:
                continue
            if run.run_id not in held:
                log.warning("run %s lost its lease (another replica took it over); stopping it", run.run_id)
                run.stop("interrupted")
            elif held[run.run_id]:
                run.stop("cancelled")

    async def _reap(self) -> None:
        reaped = await self.runs.reap_expired(INTERRUPTED_ERROR)
        for record in reaped:
            log.warning(
                "run %s of thread %s was interrupted: its holder %s stopped renewing its lease",
                record.id,
                record.thread_id,
                record.holder,
            )
            if self.log is not None:
                error = ErrorEvent(code="custom", message=INTERRUPTED_ERROR, allow_retry=True)
                try:
                    await self.log.append(record.user_id, record.id, [], end="interrupted", end_event=event_json(error))
                except (RedisError, OSError) as failure:
                    log.warning("could not end the log of interrupted run %s (%s)", record.id, failure)
            self.wake_thread(record.thread_id)
            await self.signals.publish_ended(record.thread_id)

    # -- starting a run --------------------------------------------------------

    async def start(self, request: RunRequest) -> LiveRun:
        """Accept a message (or a retry, or a continuation) and start answering it in the background.

        Raises:
            InvalidArgument: the request is malformed.
            NotFound: the thread (or the item to retry after) is not the caller's.
            FailedPrecondition: the thread is answering and the policy is ``reject``
                (nothing was saved).
        """
        self._check(request)
        if self._closing:
            raise Unavailable("this agent runner is shutting down; retry on another replica")
        spec = self.catalog.spec(request.agent_id)  # an unknown agent fails before anything is written
        if request.approval is not None:
            return await self._resume(request, request.approval)
        principal = request.principal
        run_id = request.run_id or f"run_{uuid.uuid4().hex}"
        input_item_id = (request.user_message.id if request.user_message else request.retry_after_item_id) or ""
        # A client secret's session is attached to a new thread below; a session made
        # here is made for the thread (attached already).
        attach = request.create_thread is not None and principal.session_id is not None
        if request.create_thread is not None and principal.session_id is None and self.sessions is not None:
            session_id = await self.sessions.create_for_thread(principal, thread_id=request.thread_id, agent_id=spec.id)
            principal = _with_session(principal, session_id)
        record: RunRecord | None = None
        if request.create_thread is None:
            record = await self._claim(request, principal, run_id, input_item_id)
        try:
            thread, history = await self.store.begin_turn(
                principal,
                thread_id=request.thread_id,
                create=_with_metadata(request.create_thread, principal.session_id),
                scope=request.scope,
                user_message=request.user_message,
                retry_after_item_id=request.retry_after_item_id,
                title_if_empty=_title(request.user_message),
                history_limit=self.limits.history_items if record is None or record.status == "running" else 0,
            )
        except NotFoundError as error:
            if record is not None:
                await self.runs.delete(record.id)
            raise NotFound(str(error) or f"there is no thread {request.thread_id!r}") from None
        except BaseException:
            if record is not None:
                await self.runs.finish(record.id, status="failed", error="the turn could not start", last_seq=0)
                self.wake_thread(record.thread_id)
            raise
        if record is None:
            record = await self._claim(request, principal, run_id, input_item_id)
        principal = await self._session_of(principal, thread, spec.id, attach=attach)
        if principal.session_id is not None and record.session_id != principal.session_id:
            await self.runs.set_session(record.id, principal.session_id)
        run = LiveRun(record, principal, self.log)
        self.live[run.run_id] = run
        run.task = asyncio.create_task(self._execute(run, request, thread, history), name=f"run-{run.run_id}")
        return run

    async def _resume(self, request: RunRequest, decision: ApprovalDecision) -> LiveRun:
        """Resume the run waiting on a card, on this replica, with the user's decision.

        Raises:
            NotFound: the thread is not the caller's.
            AlreadyExists: the card was decided already (a second click: nothing to do).
            FailedPrecondition: no run of this thread waits on such a card (a forged click).
        """
        principal = request.principal
        owner = principal.user_id
        if principal.is_operator and principal.org_id and self.limits.operator_may_approve:
            # The deployment lets operators decide for the user: the run stays the user's.
            found = await self.runs.run_of_card(
                thread_id=request.thread_id, card_id=decision.card_id, user_id=owner, operator_org_id=principal.org_id
            )
            if found is not None:
                owner = found.user_id
        try:
            thread = await self.store.load_thread(request.thread_id, Principal(user_id=owner))
        except NotFoundError:
            raise NotFound(f"there is no thread {request.thread_id!r}") from None
        record = await self.runs.resume(thread_id=thread.id, user_id=owner, card_id=decision.card_id)
        if record is None:
            if await self.runs.run_of_card(thread_id=thread.id, user_id=owner, card_id=decision.card_id):
                raise AlreadyExists("this card was decided already")
            raise FailedPrecondition("there is no pending approval for this card")
        acting = Principal(user_id=owner, org_id=record.org_id, session_id=record.session_id)
        run = LiveRun(record, acting, self.log)
        run.decided_by = principal.user_id
        self.live[run.run_id] = run
        run.task = asyncio.create_task(self._execute(run, request, thread, []), name=f"run-{run.run_id}")
        return run

    def _check(self, request: RunRequest) -> None:
        _check_id(request.thread_id, "thread_id")
        inputs = [
            request.user_message is not None,
            request.retry_after_item_id is not None,
            request.continue_thread,
            request.approval is not None,
        ]
        if sum(inputs) != 1:
            raise InvalidArgument(
                "give exactly one of user_message_json, retry_after_item_id, continue_thread or approval"
            )
        if request.approval is not None and not _RUN_ID.match(request.approval.card_id):
            raise InvalidArgument("approval.card_id must name the card's widget item")
        if request.user_message is not None and request.user_message.thread_id != request.thread_id:
            raise InvalidArgument("the user message belongs to another thread than thread_id")
        if request.create_thread is not None:
            if request.create_thread.id != request.thread_id:
                raise InvalidArgument("create_thread_json must describe the thread thread_id names")
            if request.user_message is None:
                raise InvalidArgument("a new thread starts with a user message")
        if request.run_id is not None and not _RUN_ID.match(request.run_id):
            raise InvalidArgument("run_id must be 1-64 letters, digits, '-' or '_'")

    async def _claim(self, request: RunRequest, principal: Principal, run_id: str, input_item_id: str) -> RunRecord:
        # A card still waiting when a new message arrives is not approved: the user moved on.
        for dropped in await self.runs.drop_waiting(
            thread_id=request.thread_id, user_id=principal.user_id, reason=MOVED_ON
        ):
            await self._close_card(dropped, principal, MOVED_ON)
        policy = self.limits.double_text
        # A run that waits for a person only keeps the user's stream open: a new
        # message ends it (whatever the policy) and opens its own.
        superseded = await self.runs.stop_attending(thread_id=request.thread_id, user_id=principal.user_id)
        await self._stop_flagged(superseded, principal.user_id)
        if policy == "interrupt":
            # The newest message wins: whatever runs or waits in the thread stops.
            await self._cancel_matching(principal, thread_id=request.thread_id)
        record = await self.runs.insert(
            run_id=run_id,
            thread_id=request.thread_id,
            user_id=principal.user_id,
            org_id=principal.org_id,
            session_id=principal.session_id,
            agent_id=request.agent_id or "",
            input_item_id=input_item_id,
            queue=policy != "reject" or bool(superseded),
        )
        if record is None:
            active = await self.runs.active_in_thread(thread_id=request.thread_id, user_id=principal.user_id)
            holder = active.id if active is not None else "another run"
            raise FailedPrecondition(
                f"this conversation is still answering (run {holder}); your message was not sent."
                " Wait for the answer or stop it, then send it again"
            )
        return record

    async def _session_of(
        self, principal: Principal, thread: ThreadMetadata, agent_id: str, *, attach: bool
    ) -> Principal:
        """The run's principal with the thread's chat session (attached, or created when it has none)."""
        if self.sessions is None:
            return principal
        stored = _str(thread.metadata.get(SESSION_METADATA_KEY))
        try:
            if principal.session_id is not None:
                if attach:
                    await self.sessions.attach(principal, session_id=principal.session_id, thread_id=thread.id)
                elif stored != principal.session_id:
                    # A client secret of another session continues this thread: it moves there.
                    await self.sessions.attach(principal, session_id=principal.session_id, thread_id=thread.id)
                    thread.metadata[SESSION_METADATA_KEY] = principal.session_id
                    await self.store.save_thread(thread, principal)
                return principal
            if stored:
                return _with_session(principal, stored)
            session_id = await self.sessions.create_for_thread(principal, thread_id=thread.id, agent_id=agent_id)
            thread.metadata[SESSION_METADATA_KEY] = session_id
            await self.store.save_thread(thread, principal)
            return _with_session(principal, session_id)
        except SwitchboardError as error:
            log.warning("thread %s: chat session unavailable (%s); answering without one", thread.id, error.message)
            return principal

    # -- executing a run -------------------------------------------------------

    async def _execute(
        self, run: LiveRun, request: RunRequest, thread: ThreadMetadata, history: list[ThreadItem]
    ) -> None:
        status, error_text = "failed", "the run stopped unexpectedly"
        try:
            if request.approval is not None:
                status, error_text = await self._decide(run, request.approval, thread)
                return
            if request.create_thread is not None:
                run.emit(ThreadCreatedEvent(thread=_thread_response(thread)))
            if request.user_message is not None:
                run.emit(ThreadItemDoneEvent(item=request.user_message))
            run.emit(StreamOptionsEvent(stream_options=StreamOptions(allow_cancel=True)))
            if run.status == "queued":
                run.emit(ProgressUpdateEvent(text=QUEUED_TEXT))
                if not await self._wait_turn(run):
                    status, error_text = run.stop_reason or "cancelled", ""
                    return
                if request.user_message is not None:
                    # Saved when it arrived (never lost); it takes its place in the
                    # conversation now, after the answer it waited for.
                    moved = request.user_message.model_copy(update={"created_at": datetime.now(UTC)})
                    await self.store.add_thread_item(run.thread_id, moved, run.principal)
                thread = await self.store.load_thread(run.thread_id, run.principal)
                page = await self.store.load_thread_items(
                    run.thread_id, None, self.limits.history_items, "desc", run.principal
                )
                history = list(reversed(page.data))
            if request.approval is None and handler_of(thread).kind != "agent":
                # A person answers this thread: the agent stays silent.
                status, error_text = await self._attend(run, request)
                return
            status, error_text = await self._answer(run, request, thread, history)
            if status == "completed" and run.escalated:
                status, error_text = await self._attend(run, request)
        except asyncio.CancelledError:
            status, error_text = "interrupted", INTERRUPTED_ERROR
            raise
        except Exception as error:
            if not isinstance(error, SwitchboardError):
                log.exception("run %s failed", run.run_id)
            failure = _error_event(error)
            run.emit(failure)
            status, error_text = "failed", failure.message or ""
        finally:
            if status == "interrupted" and run.stop_reason == "interrupted":
                run.emit(ErrorEvent(code="custom", message=INTERRUPTED_ERROR, allow_retry=True))
            await asyncio.shield(self._finish(run, status, error_text))

    async def _attend(self, run: LiveRun, request: RunRequest) -> tuple[str, str]:
        """The thread waits for (or talks with) a person: keep the user's stream open and carry to it
        what the person writes and the hand-off's notices, as they are saved.

        The run follows the thread's change feed, so it relays what any replica
        or the console wrote. It ends when the thread goes back to the agent
        (after the notice that says so), when the user sends another message
        (its own stream takes over), when the user stops it, or after
        ``SWITCHBOARD_HANDOFF_STREAM_SECONDS``; the hand-off itself goes on.
        """
        if self.handoffs is None or self.handoffs.settings.stream_seconds <= 0:
            return "completed", ""
        try:
            await self.runs.set_attending(run.run_id)
        except Exception as error:
            log.warning("run %s: could not mark it as waiting for a person (%s)", run.run_id, error)
            return "completed", ""
        own = request.user_message.id if request.user_message is not None else None
        deadline = time.monotonic() + self.handoffs.settings.stream_seconds
        ending_at: float | None = None
        run.emit(ProgressUpdateEvent(text=WAITING_FOR_PERSON))
        changes = self.store.watch(run.principal, thread_id=run.thread_id).__aiter__()
        stopped = asyncio.ensure_future(run.wait_stopped())
        upcoming: asyncio.Future[Any] = asyncio.ensure_future(changes.__anext__())
        try:
            while True:
                left = (ending_at if ending_at is not None else deadline) - time.monotonic()
                if left <= 0:
                    break
                done, _ = await asyncio.wait({upcoming, stopped}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                if stopped in done or upcoming not in done:
                    break
                try:
                    change = upcoming.result()
                except StopAsyncIteration:
                    break
                except SwitchboardError as error:
                    log.warning("run %s: lost the thread's feed (%s); the stream closes", run.run_id, error.message)
                    break
                upcoming = asyncio.ensure_future(changes.__anext__())
                if change.type == "watch.started":
                    # What was written before the feed was followed is shown first.
                    page = await self.store.load_thread_items(run.thread_id, None, 20, "desc", run.principal)
                    since = _aware(request.user_message.created_at) if request.user_message is not None else None
                    for item in reversed(page.data):
                        if since is None or _aware(item.created_at) >= since:
                            self._relay(run, item, own)
                elif change.type in ("item.added", "item.updated") and change.json:
                    item = item_from_json(change.json)
                    if isinstance(item, UserMessageItem) and item.id != own:
                        break  # a newer message: its own stream carries what follows
                    self._relay(run, item, own)
                elif change.type == "thread.handler" and ending_at is None:
                    if json.loads(change.json or b"{}").get("kind", "agent") == "agent":
                        # Back with the agent: what says so (written just before or after) still comes.
                        ending_at = time.monotonic() + HANDOFF_END_GRACE_SECONDS
                elif change.type == "thread.deleted":
                    break
        finally:
            stopped.cancel()
            upcoming.cancel()
            with contextlib.suppress(Exception):
                await changes.aclose()  # type: ignore[attr-defined]
        return "completed", ""

    @staticmethod
    def _relay(run: LiveRun, item: ThreadItem, own: str | None) -> None:
        """Show the user an item someone else saved in the thread, once."""
        if item.id in run.shown or item.id == own or isinstance(item, (HiddenContextItem, SDKHiddenContextItem)):
            return
        if isinstance(item, UserMessageItem):
            return
        run.emit(ThreadItemDoneEvent(item=item))

    async def _finish(self, run: LiveRun, status: str, error_text: str) -> None:
        run.ending = True  # from here the heartbeat no longer expects the run in Postgres
        last_seq = await run.flush()
        try:
            if status == WAITING and run.paused is not None:
                state, pending = run.paused
                if not await self.runs.pause(
                    run.run_id,
                    state=state,
                    approval=pending.to_json(),
                    last_seq=last_seq,
                    ttl_seconds=self.limits.approval_ttl_seconds,
                ):
                    log.warning("run %s was taken over before it could wait for approval", run.run_id)
            else:
                await self.runs.finish(run.run_id, status=status, error=error_text, last_seq=last_seq)
        except Exception as error:
            log.warning("could not record the end of run %s (%s); its lease runs out on its own", run.run_id, error)
        # Ended in Postgres first: whoever sees the end of the stream finds the thread free.
        await run.end(status)
        self.live.pop(run.run_id, None)
        self.wake_thread(run.thread_id)
        await self.signals.publish_ended(run.thread_id)

    async def _wait_turn(self, run: LiveRun) -> bool:
        """Wait until the queued run may start (True) or is stopped (False)."""
        while not run.stopping:
            wake = asyncio.Event()
            self._waiters.setdefault(run.thread_id, set()).add(wake)
            started = await self.runs.try_start(run.record)
            if started is not None:
                run.record, run.status = started, "running"
                return True
            stopped = asyncio.ensure_future(run.wait_stopped())
            woken = asyncio.ensure_future(wake.wait())
            # Wake-ups are hints; polling Postgres is the guarantee.
            await asyncio.wait({stopped, woken}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            woken.cancel()
        return False

    async def _decide(self, run: LiveRun, decision: ApprovalDecision, thread: ThreadMetadata) -> tuple[str, str]:
        """Show the decision on the card, then go on with the paused run."""
        assert run.record.approval is not None and run.record.state is not None
        pending = PendingApproval.from_json(run.record.approval)
        resume = _Resume(state=run.record.state, pending=pending, approve=decision.approve, answer=decision.answer)
        continuation = RunRequest(principal=run.principal, thread_id=thread.id, continue_thread=True)
        if pending.tool_name == ASK_USER:
            # The answer was recorded on the question by whoever received it (the edge).
            await self._audit(
                run.principal,
                "question_answered",
                {"run_id": run.run_id, "item_id": pending.card_id, "answer": list(decision.answer)},
            )
            run.emit(StreamOptionsEvent(stream_options=StreamOptions(allow_cancel=True)))
            return await self._answer(run, continuation, thread, [], resume)
        verdict = "Approved" if decision.approve else "Rejected"
        card = approval_card(
            pending,
            thread_id=thread.id,
            created_at=run.record.created_at,
            decided=decided_text(verdict, run.decided_by or run.principal.user_id),
        )
        await self.store.save_item(thread.id, card, run.principal)
        run.emit(ThreadItemReplacedEvent(item=card))
        payload = {
            "run_id": run.run_id,
            "card_id": pending.card_id,
            "tool": pending.tool_name,
            "decision": "approved" if decision.approve else "rejected",
            "by": run.decided_by or run.principal.user_id,
            "seconds_since_the_run_started": round((datetime.now(UTC) - run.record.created_at).total_seconds(), 3),
        }
        await self._audit(run.principal, "approval_decided", payload)
        run.emit(StreamOptionsEvent(stream_options=StreamOptions(allow_cancel=True)))
        return await self._answer(run, continuation, thread, [], resume)

    async def _audit(self, principal: Principal, type: str, payload: dict[str, Any]) -> None:
        """A card shown, decided, dropped or expired, in the session's audit trail (best effort)."""
        if self.sessions is None or not principal.session_id:
            return
        try:
            await self.sessions.record_event(principal, session_id=principal.session_id, type=type, payload=payload)
        except SwitchboardError as error:
            log.warning("could not record %s in session %s (%s)", type, principal.session_id, error.message)

    async def _close_card(self, record: RunRecord, principal: Principal, reason: str) -> None:
        """Show on a card that its run ended without a decision (and why), and tell the next run."""
        if record.approval is None:
            return
        pending = PendingApproval.from_json(record.approval)
        owner = Principal(user_id=record.user_id, org_id=record.org_id, session_id=record.session_id)
        card = approval_card(pending, thread_id=record.thread_id, created_at=record.created_at, decided=reason)
        note = SDKHiddenContextItem(
            thread_id=record.thread_id,
            created_at=datetime.now(UTC),
            id=self.store.generate_item_id(
                "sdk_hidden_context", ThreadMetadata(id=record.thread_id, created_at=record.created_at), owner
            ),
            content=f"The request to {pending.description.lower()} was not approved ({reason}); it was not done.",
        )
        try:
            await self.store.save_item(record.thread_id, card, owner)
            await self.store.add_thread_item(record.thread_id, note, owner)
        except Exception as error:
            log.warning("could not close the card of run %s (%s)", record.id, error)
        kind = "approval_expired" if reason == EXPIRED else "approval_dropped"
        payload = {"run_id": record.id, "card_id": pending.card_id, "tool": pending.tool_name, "reason": reason}
        await self._audit(owner, kind, payload)

    async def _expire_cards(self) -> None:
        for record in await self.runs.expire_waiting(EXPIRED):
            log.info("the approval card of run %s expired", record.id)
            await self._close_card(record, Principal(user_id=record.user_id), EXPIRED)
            if record.approval is not None:
                pending = PendingApproval.from_json(record.approval)
                notice = AssistantMessageItem(
                    id=self.store.generate_item_id(
                        "message",
                        ThreadMetadata(id=record.thread_id, created_at=record.created_at),
                        Principal(user_id=record.user_id),
                    ),
                    thread_id=record.thread_id,
                    created_at=datetime.now(UTC),
                    content=[
                        AssistantMessageContent(
                            text=(
                                f"The request to {pending.description.lower()} waited too long for approval"
                                " and expired; nothing was done."
                            )
                        )
                    ],
                )
                owner = Principal(user_id=record.user_id, org_id=record.org_id, session_id=record.session_id)
                try:
                    await self.store.add_thread_item(record.thread_id, notice, owner)
                except Exception as error:
                    log.warning("could not note the expired card of run %s (%s)", record.id, error)

    async def _answer(
        self,
        run: LiveRun,
        request: RunRequest,
        thread: ThreadMetadata,
        history: list[ThreadItem],
        resume: _Resume | None = None,
    ) -> tuple[str, str]:
        """Run the agent on the history (or resume a paused run); returns the final status and error."""
        principal = run.principal
        pending = _Pending()
        saves = _PartialSaves(self.store, principal, thread.id, self.limits.partial_save_seconds)
        hooks: ToolItemHooks | None = None
        failure: ErrorEvent | None = None
        flagged = False
        paused: tuple[str, PendingApproval] | None = None
        titling: asyncio.Task[str | None] | None = None
        async with AsyncExitStack() as stack:
            try:
                # The thread's agent (the one that answered last: see _keep_agent), unless the request names one.
                spec = self.catalog.spec(request.agent_id or _str(thread.metadata.get(AGENT_METADATA_KEY)))
                offline = self.catalog.models.is_offline(spec.model)
                announce = offline and not thread.metadata.get(OFFLINE_NOTICE_FLAG)
                built = await self.catalog.build(spec, principal, stack, announce_offline=announce)
                for notice in built.notices:
                    run.emit(NoticeEvent(level="warning", message=notice))
                if spec.id != self.catalog.spec(None).id:
                    # Who answers, when it is not the default agent (the thread stays with it until it hands off).
                    run.emit(ProgressUpdateEvent(text=f"{spec.name} is answering"))
                if resume is None and self.catalog.models.titles_threads(spec.model) and _first_turn(history):
                    # Asked alongside the answer (as the ChatKit samples do), so it rarely delays the turn's end.
                    titling = asyncio.create_task(
                        model_title(self.catalog.models, _text_of(request.user_message), model_name=spec.model)
                    )
                    stack.callback(titling.cancel)
                chatkit = AgentContext[Any](thread=thread, store=self.store, request_context=principal)
                state = RunState(principal=principal, chatkit=chatkit)
                hooks = ToolItemHooks(state)
                run_input: Any
                if resume is None:
                    run_input = await self._model_input(
                        spec.model, offline, thread, principal, history, request, images=not offline
                    )
                else:
                    if resume.pending.tool_name == ASK_USER:
                        state.answers[resume.pending.call_id] = list(resume.answer)
                    run_input = await _decided_state(built.starting, state, resume)
                while True:
                    result = Runner.run_streamed(
                        built.starting,
                        run_input,
                        context=state,
                        hooks=hooks,
                        max_turns=self.limits.max_turns,
                        run_config=agents_run_config(),
                    )
                    stopper = asyncio.create_task(run.wait_stopped())
                    stopper.add_done_callback(_canceller(result))
                    stack.callback(stopper.cancel)
                    ids = _MessageIds(self.store, thread, principal)
                    streamed = False
                    try:
                        async for raw_event in stream_agent_response(chatkit, result):
                            streamed = True
                            event = ids.apply(raw_event)
                            pending.track(event)
                            if isinstance(event, ThreadItemUpdatedEvent) and event.item_id in pending.items:
                                saves.maybe_save(pending.items[event.item_id])
                            await self._persist(event, principal, thread.id, saves)
                            if not _hidden(event):
                                run.emit(event)
                    except openai.BadRequestError as error:
                        if streamed or resume is not None or not _has_images(run_input):
                            raise
                        # The server refused a request with images: a model that cannot take
                        # them reads notes naming them instead, or the thread would fail on every
                        # turn while they are in its history.
                        log.warning("run %s: the model refused a request with images (%s); retrying", run.run_id, error)
                        stopper.cancel()
                        run.emit(NoticeEvent(level="info", message=IMAGES_REFUSED))
                        run_input = await self._model_input(
                            spec.model, offline, thread, principal, history, request, images=False
                        )
                        continue
                    break
                if announce and not run.stopping:
                    thread.metadata[OFFLINE_NOTICE_FLAG] = True
                    flagged = True
                if not result.interruptions and _keep_agent(thread, built.agent_id(result.last_agent)):
                    flagged = True
                run.escalated = state.escalated
                if result.interruptions and not run.stopping:
                    paused = await self._pause(run, result, thread)
                if titling is not None and not run.stopping:
                    flagged = await _better_title(thread, request.user_message, titling) or flagged
            except Exception as error:
                failure = _error_event(error)
                if not isinstance(error, SwitchboardError):
                    log.exception("run %s failed", run.run_id)
        await saves.settle_all()
        stopped = run.stop_reason if run.stopping else None
        if stopped or failure is not None:
            for event in await self._finish_pending(pending, hooks, principal, thread.id, stopped or "failed"):
                run.emit(event)
        if stopped == "cancelled":
            await self._note_cancelled(thread, principal)
        if failure is not None:
            run.emit(failure)
        if failure is None:
            async for event in self._update_thread(thread, principal, changed=flagged, titled=_first_turn(history)):
                run.emit(event)
        if paused is not None and not stopped and failure is None:
            run.paused = paused
            return WAITING, ""
        if stopped:
            return stopped, "" if stopped == "cancelled" else INTERRUPTED_ERROR
        if failure is not None:
            return "failed", failure.message or ""
        return "completed", ""

    async def _model_input(
        self,
        model: str | None,
        offline: bool,
        thread: ThreadMetadata,
        principal: Principal,
        history: list[ThreadItem],
        request: RunRequest,
        *,
        images: bool,
    ) -> list[Any]:
        """The history as the model reads it: attachments resolved, within the token budget, the
        older turns summarized (a new summary is saved in the thread for later turns)."""
        limits = self.limits
        converter = RunInputConverter(
            self.store,
            principal,
            images=limits.model_images and images,
            inline_bytes=limits.attachment_inline_bytes,
        )
        budget = HistoryBudget(tokens=limits.history_tokens, max_items=max(1, limits.history_items // 2))
        items = await read_back_to_summary(
            self.store, principal, thread.id, history, complete=len(history) < limits.history_items
        )
        count, _how = token_counter(model or self._default_model())
        summary_chars = budget.summary_tokens * 4
        summarize = (
            extractive_summarizer(summary_chars)
            if offline
            else model_summarizer(self.catalog.models.model_for(model, announce_offline=False), summary_chars)
        )
        planned = await plan_input(
            _answerable(items, request),
            thread_id=thread.id,
            converter=converter,
            count=count,
            budget=budget,
            summarize=summarize,
        )
        if planned.summary is not None:
            log.info("thread %s: %d older items summarized for the history budget", thread.id, planned.summarized)
            try:
                await self.store.add_thread_item(thread.id, planned.summary, principal)
            except Exception as error:  # this turn has it; the next one makes it again
                log.warning("could not save the history summary of thread %s (%s)", thread.id, error)
        return planned.input

    def _default_model(self) -> str | None:
        """The default model's name, for its tokenizer (a model source without a config has none)."""
        config = getattr(self.catalog.models, "config", None)
        default = getattr(config, "default", None)
        return default if isinstance(default, str) else None

    async def _pause(self, run: LiveRun, result: Any, thread: ThreadMetadata) -> tuple[str, PendingApproval]:
        """The run stopped on a call that needs approval: show its card; what to keep in Postgres."""
        item = result.interruptions[0]
        call_id, arguments = call_arguments(item.raw_item)
        pending = PendingApproval(
            card_id=self.store.generate_item_id("message", thread, run.principal),
            call_id=call_id,
            tool_name=item.tool_name or "",
            arguments=arguments,
            agent=getattr(item.agent, "name", ""),
        )
        card: ThreadItem
        if pending.tool_name == ASK_USER:
            card = question_item(pending, thread_id=thread.id, created_at=datetime.now(UTC))
        else:
            card = approval_card(pending, thread_id=thread.id, created_at=datetime.now(UTC))
        await self.store.add_thread_item(thread.id, card, run.principal)
        run.emit(ThreadItemDoneEvent(item=card))
        shown = {"run_id": run.run_id, "card_id": pending.card_id, "tool": pending.tool_name, "arguments": arguments}
        await self._audit(run.principal, "approval_requested", shown)
        # The context (principal, store) is rebuilt on resume: it is never part of the snapshot.
        state = result.to_state().to_string(context_serializer=lambda _context: {})
        return state, pending

    async def _note_cancelled(self, thread: ThreadMetadata, principal: Principal) -> None:
        """Tell the next run not to continue the cancelled one (as ChatKit's server does)."""
        note = SDKHiddenContextItem(
            thread_id=thread.id,
            created_at=datetime.now(UTC),
            id=self.store.generate_item_id("sdk_hidden_context", thread, principal),
            content=CANCELLED_NOTE,
        )
        try:
            await self.store.add_thread_item(thread.id, note, principal)
        except Exception as error:
            log.warning("could not note the cancelled run of thread %s (%s)", thread.id, error)

    async def _persist(
        self, event: ThreadStreamEvent, principal: Principal, thread_id: str, saves: _PartialSaves | None = None
    ) -> None:
        if isinstance(event, (ThreadItemDoneEvent, ThreadItemReplacedEvent)):
            if saves is not None:
                await saves.settle(event.item.id)
            await self.store.add_thread_item(thread_id, event.item, principal)
        elif isinstance(event, ThreadItemAddedEvent) and isinstance(event.item, TaskItem):
            # A running tool shows after a reload too; its done event overwrites it.
            await self.store.add_thread_item(thread_id, event.item, principal)
        elif isinstance(event, ThreadItemRemovedEvent):
            if saves is not None:
                await saves.settle(event.item_id)
            with contextlib.suppress(NotFoundError, NotFound):
                await self.store.delete_thread_item(thread_id, event.item_id, principal)

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
        self, thread: ThreadMetadata, principal: Principal, *, changed: bool, titled: bool
    ) -> AsyncIterator[ThreadStreamEvent]:
        """Save the thread when the run changed it; show the title the first turn gave it."""
        if changed:
            try:
                await self.store.save_thread(thread, principal)
            except Exception:
                log.exception("could not save thread %s", thread.id)
                return
        if (changed or titled) and thread.title:
            yield ThreadUpdatedEvent(thread=_thread_response(thread))

    # -- following, stopping and listing runs ----------------------------------

    async def join(self, principal: Principal, *, thread_id: str, run_id: str | None, after_seq: int) -> JoinedRun:
        """The thread's active run, replayed after ``after_seq`` (of ``run_id``) and followed live.

        Raises:
            NotFound: the thread is not the caller's (operators: not of their org).
            Unavailable: the run is held by another replica and its log needs Redis.
        """
        await self._readable_thread(principal, thread_id)
        record = await self.runs.active_in_thread(
            thread_id=thread_id, user_id=principal.user_id, operator_org_id=_operator_org(principal)
        )
        if record is None:
            return JoinedRun(run=None)
        after = after_seq if run_id == record.id else 0
        live = self.live.get(record.id)
        joined = JoinedRun(run=record)
        if live is not None:
            joined.batches = self._follow_local(live.subscribe(after), live, joined.final)
        elif self.log is not None:
            joined.batches = self._follow_log(record, after, joined.final)
        else:
            raise Unavailable("following a run held by another replica needs Redis; set REDIS_URL")
        return joined

    async def _follow_local(
        self, subscription: Subscription, run: LiveRun, final: list[str]
    ) -> AsyncIterator[list[tuple[int, bytes]]]:
        try:
            async for batch in subscription.batches():
                yield batch
            final.append(run.final_status)
        finally:
            subscription.close()

    async def _follow_log(
        self, record: RunRecord, after: int, final: list[str]
    ) -> AsyncIterator[list[tuple[int, bytes]]]:
        assert self.log is not None
        while True:
            try:
                entries = await self.log.read(record.user_id, record.id, after=after, block_ms=1000)
            except (RedisError, OSError) as error:
                raise Unavailable(f"the run's live events are unavailable ({error}); reload the thread") from None
            batch = [(e.seq, e.event_json) for e in entries if not e.end]
            if batch:
                after = batch[-1][0]
                yield batch
            end = next((e for e in entries if e.end), None)
            if end is not None:
                if end.event_json:
                    yield [(0, end.event_json)]
                final.append(end.end)
                return
            if not entries:
                # No end marker yet: the run may have ended without one (Redis failed at the end).
                current = await self.runs.get(run_id=record.id, user_id=record.user_id)
                if current.status in TERMINAL and current.last_seq <= after:
                    final.append(current.status)
                    return

    async def cancel(
        self,
        principal: Principal,
        *,
        run_id: str | None = None,
        thread_id: str | None = None,
        session_id: str | None = None,
    ) -> list[str]:
        """Stop the caller's matching active runs wherever they run; their ids. An operator naming a
        session stops every run of that session in their org (cancelling a session stops its answers,
        whoever cancels it); a run or thread is the caller's own only (an operator takes a thread over).

        Raises:
            NotFound: ``run_id`` names no active run of the caller, or ``thread_id`` is not the caller's.
            InvalidArgument: nothing to cancel was named.
        """
        if sum(x is not None for x in (run_id, thread_id, session_id)) != 1:
            raise InvalidArgument("name exactly one of run_id, thread_id or session_id")
        for name, value in (("run_id", run_id), ("thread_id", thread_id), ("session_id", session_id)):
            if value is not None:
                _check_id(value, name)
        if thread_id is not None:
            await self._readable_thread(principal, thread_id, owner_only=True)
        stopped = await self._cancel_matching(principal, run_id=run_id, thread_id=thread_id, session_id=session_id)
        if run_id is not None and not stopped:
            raise NotFound(f"there is no active run {run_id!r}; it may have ended already")
        return stopped

    async def _cancel_matching(self, principal: Principal, **target: str | None) -> list[str]:
        matched = await self.runs.request_cancel(
            user_id=principal.user_id, operator_org_id=_operator_org(principal), **target
        )
        for run_id, holder, owner in matched:
            await self._stop_flagged([(run_id, holder)], owner)
        return [run_id for run_id, _holder, _owner in matched]

    async def _stop_flagged(self, flagged: list[tuple[str, str | None]], user_id: str) -> None:
        """Stop runs flagged as cancelled in Postgres: here at once, elsewhere by signal (or the next heartbeat)."""
        for run_id, _holder in flagged:
            local = self.live.get(run_id)
            if local is not None:
                local.stop("cancelled")
            else:
                await self.signals.publish_cancel(run_id, user_id)

    async def stop_answering(self, owner: Principal, thread_id: str) -> None:
        """A person took the thread: the agent's running answer stops (its part is kept)."""
        flagged = await self.runs.cancel_answering(thread_id=thread_id, user_id=owner.user_id)
        await self._stop_flagged(flagged, owner.user_id)

    async def get_run(self, principal: Principal, run_id: str) -> RunRecord:
        """A run of the caller (operators: of their org)."""
        if not _RUN_ID.match(run_id):
            raise InvalidArgument("run_id must be 1-64 letters, digits, '-' or '_'")
        return await self.runs.get(run_id=run_id, user_id=principal.user_id, operator_org_id=_operator_org(principal))

    async def list_runs(
        self, principal: Principal, *, thread_id: str, limit: int, after: str | None
    ) -> pages.Page[RunRecord]:
        """A thread's runs, newest first."""
        limit = check_limit(limit, default=20, maximum=MAX_RUN_PAGE)
        if after is not None and not _RUN_ID.match(after):
            raise InvalidArgument("after must be a run id")
        await self._readable_thread(principal, thread_id)
        return await self.runs.list_for_thread(
            thread_id=thread_id,
            user_id=principal.user_id,
            operator_org_id=_operator_org(principal),
            after=after,
            limit=limit,
        )

    # -- hand-off ------------------------------------------------------------------

    def _handoffs(self) -> Handoffs:
        if self.handoffs is None:
            raise Unavailable("hand-offs are not configured on this agent runner")
        return self.handoffs

    async def escalate(self, principal: Principal, *, thread_id: str, reason: str) -> HandoffView:
        """The owner asks for a person, or an operator queues the thread for one."""
        _check_id(thread_id, "thread_id")
        view, _shown = await self._handoffs().escalate(principal, thread_id, reason)
        return view

    async def take_over(
        self, principal: Principal, *, thread_id: str | None = None, escalation_id: str | None = None
    ) -> HandoffView:
        """An operator takes a thread (by thread, or by claiming its escalation)."""
        if (thread_id is None) == (escalation_id is None):
            raise InvalidArgument("name exactly one of thread_id or escalation_id")
        if thread_id is not None:
            _check_id(thread_id, "thread_id")
        if escalation_id is not None:
            _check_id(escalation_id, "escalation_id")
        view, _shown = await self._handoffs().take_over(principal, thread_id=thread_id, escalation_id=escalation_id)
        return view

    async def post_operator_message(self, principal: Principal, *, thread_id: str, text: str) -> AssistantMessageItem:
        """The holding operator writes to the user."""
        _check_id(thread_id, "thread_id")
        return await self._handoffs().post(principal, thread_id, text)

    async def hand_back(self, principal: Principal, *, thread_id: str, resolution: str) -> HandoffView:
        """Give the thread back to the agent."""
        _check_id(thread_id, "thread_id")
        view, _shown = await self._handoffs().hand_back(principal, thread_id, resolution)
        return view

    async def _readable_thread(self, principal: Principal, thread_id: str, *, owner_only: bool = False) -> None:
        _check_id(thread_id, "thread_id")
        caller: Principal = principal
        if owner_only and principal.is_operator:
            caller = Principal(user_id=principal.user_id, session_id=principal.session_id)
        try:
            await self.store.load_thread(thread_id, caller)
        except NotFoundError:
            raise NotFound(f"there is no thread {thread_id!r}") from None


@dataclass(frozen=True)
class _Resume:
    """A paused run to go on with: its snapshot, the call it waits on, the decision."""

    state: str
    pending: PendingApproval
    approve: bool
    answer: tuple[str, ...] = ()


async def _decided_state(starting: Any, context: RunState, resume: _Resume) -> PausedRun[Any, Any]:
    """The paused run with the decision applied to its waiting call.

    Raises:
        FailedPrecondition: the snapshot no longer waits on that call.
    """
    paused = await PausedRun.from_string(starting, resume.state, context_override=RunContextWrapper(context=context))
    for item in paused.get_interruptions():
        if call_arguments(item.raw_item)[0] == resume.pending.call_id:
            if resume.approve:
                paused.approve(item)
            else:
                paused.reject(item, rejection_message=f"Not done: the user rejected “{resume.pending.description}”.")
            return paused
    raise FailedPrecondition("the paused run no longer waits on this call")


def _check_id(value: str, name: str) -> None:
    """An id from a caller: present, bounded, and storable (Postgres text holds no NUL)."""
    if not value:
        raise InvalidArgument(f"{name} is required")
    if len(value) > 255 or "\x00" in value:
        raise InvalidArgument(f"{name} must be at most 255 characters without NUL")


def _aware(moment: datetime) -> datetime:
    """A ChatKit time as an aware one (items made without a zone are UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _operator_org(principal: Principal) -> str | None:
    return principal.org_id if principal.is_operator else None


def _with_session(principal: Principal, session_id: str) -> Principal:
    return Principal(user_id=principal.user_id, org_id=principal.org_id, roles=principal.roles, session_id=session_id)


def _with_metadata(thread: ThreadMetadata | None, session_id: str | None) -> ThreadMetadata | None:
    if thread is None or session_id is None:
        return thread
    created = thread.model_copy(deep=True)
    created.metadata[SESSION_METADATA_KEY] = session_id
    return created


def _thread_response(thread: ThreadMetadata) -> Thread:
    return Thread(**thread.model_dump(), items=Page(data=[], has_more=False))


def _hidden(event: ThreadStreamEvent) -> bool:
    """Hidden context items are saved, never shown (as ChatKit's server does)."""
    return isinstance(event, ThreadItemDoneEvent) and event.item.type in ("hidden_context_item", "sdk_hidden_context")


def _answerable(history: list[ThreadItem], request: RunRequest) -> list[ThreadItem]:
    """The history the model sees: up to the message answered (a retry answers an older one)."""
    target = request.user_message.id if request.user_message else request.retry_after_item_id
    ids = [item.id for item in history]
    if target is not None and target in ids:
        return history[: ids.index(target) + 1]
    if request.user_message is not None and target not in ids:
        return [*history, request.user_message]
    return history


def _canceller(result: Any) -> Callable[[asyncio.Task[None]], None]:
    """A done-callback that cancels this very result (not whichever a retry made later)."""
    return lambda _task: result.cancel()


def _has_images(run_input: Any) -> bool:
    """Whether model input has image parts."""
    return isinstance(run_input, list) and any(
        isinstance(part, dict) and part.get("type") == "input_image"
        for item in run_input
        if isinstance(item, dict) and isinstance(item.get("content"), list)
        for part in item["content"]
    )


def _keep_agent(thread: ThreadMetadata, agent_id: str | None) -> bool:
    """Record the agent that answered as the thread's (sticky until it hands off); whether it changed."""
    if agent_id is None or thread.metadata.get(AGENT_METADATA_KEY) == agent_id:
        return False
    thread.metadata[AGENT_METADATA_KEY] = agent_id
    return True


async def _better_title(
    thread: ThreadMetadata, message: UserMessageItem | None, titling: asyncio.Task[str | None]
) -> bool:
    """Give the thread the model's title, unless someone renamed it meanwhile; True when it changed.

    The model's title replaces only the first-message title ``BeginTurn`` gave the
    thread: a title the user or an operator set is theirs.
    """
    title = await titling
    if not title or thread.title != _title(message) or title == thread.title:
        return False
    thread.title = title
    return True


def _text_of(message: UserMessageItem | None) -> str:
    """The text of a user message (its text parts, joined)."""
    if message is None:
        return ""
    return " ".join(c.text for c in message.content if isinstance(c, UserMessageTextContent))


def _first_turn(history: list[ThreadItem]) -> bool:
    return sum(isinstance(item, UserMessageItem) for item in history) == 1


def _title(message: UserMessageItem | None) -> str | None:
    """A short title from a user message (deterministic, costs no model call)."""
    if message is None:
        return None
    text = " ".join(" ".join(c.text.split()) for c in message.content if isinstance(c, UserMessageTextContent)).strip()
    if not text:
        return None
    words = text.split()
    title = " ".join(words[:TITLE_WORDS])
    if len(title) > TITLE_CHARS:
        title = title[: TITLE_CHARS - 1].rstrip() + "…"
    elif len(words) > TITLE_WORDS:
        title += "…"
    return title[0].upper() + title[1:]


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
