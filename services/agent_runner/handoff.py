"""Who answers a thread: the agent, nobody yet (waiting for a person) or an operator.

The thread store holds the truth of who answers (a thread's handler, changed
by compare-and-set and checked on every write, so only the holding operator
writes into a thread and nobody rewrites another author's items); session_api
holds the queue (escalations: opened, claimed, resolved) and the audit trail.
This module moves the two together and writes what the user sees: a notice
item at each change, the agent's message when nobody came in time, and the
hidden summary the agent reads after a hand-back.

Each change runs in the same order: the arbiter first (session_api's claim, of
operators racing exactly one wins), then the thread's handler, then what the
user sees. A notice that ends a hand-off is written before the handler goes
back to the agent, so a stream that follows the thread shows it before it
closes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    CustomTask,
    HiddenContextItem,
    TaskItem,
    ThreadItem,
    ThreadMetadata,
)

from services.agent_runner.escalation import Escalations
from services.agent_runner.sessions import SessionLinks
from services.session_api.client import Escalation
from services.thread_store.client import GrpcThreadStore, Handler, NotFoundError, handler_of
from switchboard.config import env_int
from switchboard.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, SwitchboardError
from switchboard.ids import new_id
from switchboard.principal import Principal

log = logging.getLogger(__name__)

SESSION_METADATA_KEY = "session_id"
MAX_REASON = 2000
MAX_OPERATOR_TEXT = 8000
# Ids of operators' replies start with this, so transcripts (and the hand-back summary) can tell them apart.
OPERATOR_MESSAGE_PREFIX = "msg_op"
# Hidden summaries start with this; the offline model looks for it.
SUMMARY_HEADER = "Hand-off summary"
TIMEOUT_TEXT = (
    "Nobody from our team is free right now, so I'm back. Your request stays in the queue and a person"
    " will reply in this chat when one is free. You can leave a message for them here now, or ask me"
    " anything in the meantime."
)


@dataclass(frozen=True)
class HandoffSettings:
    """How long a user's stream stays open for a person, and how long a thread waits for one (seconds)."""

    stream_seconds: int = 300
    timeout_seconds: int = 600

    @classmethod
    def from_env(cls) -> HandoffSettings:
        """``SWITCHBOARD_HANDOFF_STREAM_SECONDS`` and ``SWITCHBOARD_HANDOFF_TIMEOUT_SECONDS``."""
        stream = env_int("SWITCHBOARD_HANDOFF_STREAM_SECONDS", cls.stream_seconds, minimum=0)
        timeout = env_int("SWITCHBOARD_HANDOFF_TIMEOUT_SECONDS", cls.timeout_seconds, minimum=1)
        if stream > 3600 or timeout > 86400:
            raise InvalidArgument(
                "SWITCHBOARD_HANDOFF_STREAM_SECONDS must be at most 3600 and"
                " SWITCHBOARD_HANDOFF_TIMEOUT_SECONDS at most 86400"
            )
        return cls(stream_seconds=stream, timeout_seconds=timeout)


@dataclass(frozen=True)
class HandoffView:
    """A thread's handler after a change, with the chat session its escalation belongs to."""

    thread_id: str
    handler: Handler
    session_id: str | None = None


StopRuns = Callable[[Principal, str], Awaitable[None]]


def notice(thread_id: str, title: str, content: str | None = None, *, icon: str = "profile") -> TaskItem:
    """What the user sees when the handler changes: a ChatKit task item written by the server, not the model."""
    return TaskItem(
        id=new_id("task"),
        thread_id=thread_id,
        created_at=datetime.now(UTC),
        task=CustomTask(title=title, content=content, icon=icon),
    )


def hidden_context(thread_id: str, content: str, *, created_at: datetime | None = None) -> HiddenContextItem:
    """Context only the agent reads (the hand-back summary, the history summary): a ChatKit hidden
    context item, saved in the thread at ``created_at`` (default: now), never shown to the user."""
    return HiddenContextItem(
        id=new_id("hcx"), thread_id=thread_id, created_at=created_at or datetime.now(UTC), content=content
    )


def operator_message(thread_id: str, text: str) -> AssistantMessageItem:
    """An operator's reply as it is stored: an assistant message with an ``msg_op_`` id."""
    return AssistantMessageItem(
        id=new_id(OPERATOR_MESSAGE_PREFIX),
        thread_id=thread_id,
        created_at=datetime.now(UTC),
        content=[AssistantMessageContent(text=text)],
    )


class Handoffs:
    """Escalate, take over, reply, hand back, time out.

    Args:
        store: The thread store's client.
        escalations: The queue (session_api).
        sessions: Chat sessions (a thread whose session ended escalates in a new one), or None.
        settings: Timeouts.
    """

    def __init__(
        self,
        store: GrpcThreadStore,
        escalations: Escalations,
        sessions: SessionLinks | None,
        settings: HandoffSettings | None = None,
    ) -> None:
        self.store = store
        self.escalations = escalations
        self.sessions = sessions
        self.settings = settings or HandoffSettings()
        # Set by the service: stops the agent's running answer when a person takes the thread.
        self.stop_runs: StopRuns | None = None

    # -- escalate --------------------------------------------------------------

    async def escalate(self, principal: Principal, thread_id: str, reason: str) -> tuple[HandoffView, list[ThreadItem]]:
        """The owner asks for a person (or an operator queues the thread): it waits for one.

        Returns the thread's handler and the items the user should see now (none
        when the thread already waits for, or talks with, a person).
        """
        reason = _text(reason, "reason", MAX_REASON)
        thread = await self._load(thread_id, principal)
        handler = handler_of(thread)
        if handler.kind != "agent":
            return HandoffView(thread_id, handler, _session_of(thread)), []
        owner = await self._owner(thread_id, principal)
        escalation = await self._open(principal, owner, thread, reason)
        changed = await self.store.set_handler(
            principal,
            thread_id,
            "waiting",
            escalation_id=escalation.id,
            waiting_seconds=self.settings.timeout_seconds,
            expect_kind="agent",
        )
        minutes = max(1, round(self.settings.timeout_seconds / 60))
        shown = notice(
            thread_id,
            "A person from our team will reply here",
            f"Your request is in the queue. If nobody is free within {minutes} minute"
            f"{'s' if minutes != 1 else ''}, you'll be back with the assistant.",
        )
        await self.store.add_thread_item(thread_id, shown, _acting(owner, escalation))
        return HandoffView(thread_id, changed.handler, escalation.session_id), [shown]

    async def _open(self, actor: Principal, owner: Principal, thread: ThreadMetadata, reason: str) -> Escalation:
        """Open the thread's escalation in its session; a thread whose session ended (or that has none,
        such as an imported one) gets a new session first."""
        session_id = owner.session_id or _session_of(thread)
        if session_id:
            try:
                return await self.escalations.open(actor, session_id=session_id, thread_id=thread.id, reason=reason)
            except (FailedPrecondition, NotFound) as error:
                log.info("thread %s: session %s cannot escalate (%s); starting a new one", thread.id, session_id, error)
        if self.sessions is None:
            raise FailedPrecondition("this conversation has no chat session to escalate; session_api is not configured")
        session_id = await self.sessions.create_for_thread(
            owner, thread_id=thread.id, agent_id=_str(thread.metadata.get("agent_id")) or ""
        )
        thread.metadata[SESSION_METADATA_KEY] = session_id
        await self.store.save_thread(thread, Principal(user_id=owner.user_id, org_id=owner.org_id))
        return await self.escalations.open(actor, session_id=session_id, thread_id=thread.id, reason=reason)

    # -- take over -------------------------------------------------------------

    async def take_over(
        self, operator: Principal, *, thread_id: str | None = None, escalation_id: str | None = None
    ) -> tuple[HandoffView, list[ThreadItem]]:
        """An operator takes a thread of their org: by claiming its escalation, or any live one directly."""
        _require_operator(operator)
        if escalation_id is not None:
            escalation = await self.escalations.claim(operator, escalation_id)
            if not escalation.thread_id:
                raise FailedPrecondition(f"escalation {escalation_id} names no thread to take over")
            thread = await self._load(escalation.thread_id, operator)
            handler = handler_of(thread)
            if handler.kind == "human" and handler.operator_id == operator.user_id:
                return HandoffView(thread.id, handler, escalation.session_id), []
        else:
            assert thread_id is not None
            thread = await self._load(thread_id, operator)
            handler = handler_of(thread)
            if handler.kind == "human":
                if handler.operator_id != operator.user_id:
                    raise FailedPrecondition(f"{handler.operator_id} is handling this conversation")
                return HandoffView(thread.id, handler, _session_of(thread)), []
            if handler.kind == "waiting" and handler.escalation_id:
                escalation = await self.escalations.claim(operator, handler.escalation_id)
            else:
                owner = await self._owner(thread.id, operator)
                opened = await self._open(operator, owner, thread, f"taken over by {operator.user_id}")
                escalation = await self.escalations.claim(operator, opened.id)
        changed = await self.store.set_handler(operator, thread.id, "human", escalation_id=escalation.id)
        owner = _acting(Principal(user_id=escalation.user_id, org_id=escalation.org_id), escalation)
        if self.stop_runs is not None:
            await self.stop_runs(owner, thread.id)
        shown = notice(thread.id, f"You are now talking with {operator.user_id}", "A person from our team")
        await self.store.add_thread_item(thread.id, shown, owner)
        return HandoffView(thread.id, changed.handler, escalation.session_id), [shown]

    # -- reply -----------------------------------------------------------------

    async def post(self, operator: Principal, thread_id: str, text: str) -> AssistantMessageItem:
        """The holding operator's reply to the user (the thread store refuses anyone else)."""
        _require_operator(operator)
        text = _text(text, "text", MAX_OPERATOR_TEXT)
        item = operator_message(thread_id, text)
        await self.store.add_thread_item(thread_id, item, operator)
        return item

    # -- hand back ---------------------------------------------------------------

    async def hand_back(
        self, operator: Principal, thread_id: str, resolution: str
    ) -> tuple[HandoffView, list[ThreadItem]]:
        """Give the thread back to the agent: resolve its escalation, tell the agent what happened, tell the user."""
        _require_operator(operator)
        resolution = _text(resolution, "resolution", MAX_REASON, required=False)
        thread = await self._load(thread_id, operator)
        handler = handler_of(thread)
        if handler.kind == "agent":
            return HandoffView(thread_id, handler, _session_of(thread)), []
        if handler.kind == "human" and handler.operator_id != operator.user_id:
            raise PermissionDenied(f"{handler.operator_id} is handling this conversation; only they can hand it back")
        if not handler.escalation_id:
            raise FailedPrecondition("this conversation's hand-off has no escalation to resolve")
        if handler.kind == "waiting":
            await self.escalations.claim(operator, handler.escalation_id)
        escalation = await self.escalations.resolve(operator, handler.escalation_id, resolution)
        owner = _acting(Principal(user_id=escalation.user_id, org_id=escalation.org_id), escalation)
        summary = await self._summary(operator, thread_id, handler, resolution)
        hidden = hidden_context(thread_id, summary)
        back = f"{operator.user_id} handed the conversation back."
        shown = notice(thread_id, "You are back with the assistant", back)
        await self.store.add_thread_item(thread_id, hidden, owner)
        await self.store.add_thread_item(thread_id, shown, owner)
        changed = await self.store.set_handler(operator, thread_id, "agent", expect_kind=handler.kind)
        return HandoffView(thread_id, changed.handler, escalation.session_id), [shown]

    async def _summary(self, operator: Principal, thread_id: str, handler: Handler, resolution: str) -> str:
        """What the person said and decided, for the agent's next answer."""
        page = await self.store.load_thread_items(thread_id, None, 200, "desc", operator)
        since = handler.since or datetime.min.replace(tzinfo=UTC)
        said = [
            " ".join(c.text for c in item.content)
            for item in reversed(page.data)
            if isinstance(item, AssistantMessageItem)
            and item.id.startswith(OPERATOR_MESSAGE_PREFIX)
            and item.created_at >= since
        ]
        lines = [
            f"{SUMMARY_HEADER}: {operator.user_id}, a person from our team, talked with the user"
            " in this conversation and has now handed it back to you. Continue from here; do not repeat"
            " what they already did.",
        ]
        lines += [f"They wrote: {text}" for text in said[-20:]]
        lines.append(f"Their resolution: {resolution}" if resolution else "They left no resolution note.")
        return "\n".join(lines)

    # -- time out ----------------------------------------------------------------

    async def expire(self) -> int:
        """Threads nobody claimed in time go back to the agent, which tells the user; how many."""
        expired = await self.store.expire_waiting(limit=100)
        for handled in expired:
            thread = handled.thread
            owner = Principal(user_id=handled.user_id, org_id=handled.org_id, session_id=_session_of(thread))
            try:
                message = AssistantMessageItem(
                    id=new_id("message"),
                    thread_id=thread.id,
                    created_at=datetime.now(UTC),
                    content=[AssistantMessageContent(text=TIMEOUT_TEXT)],
                )
                await self.store.add_thread_item(thread.id, message, owner)
                if self.sessions is not None and owner.session_id:
                    await self.sessions.record_event(
                        owner,
                        session_id=owner.session_id,
                        type="handoff_timed_out",
                        payload={"thread_id": thread.id, "escalation_id": handled.handler.escalation_id},
                    )
            except SwitchboardError as error:
                log.warning("thread %s went back to the agent but the user was not told (%s)", thread.id, error)
        return len(expired)

    # -- helpers -------------------------------------------------------------------

    async def _load(self, thread_id: str, principal: Principal) -> ThreadMetadata:
        try:
            return await self.store.load_thread(thread_id, principal)
        except NotFoundError:  # the Store interface's own not-found
            raise NotFound(f"there is no thread {thread_id!r}") from None

    async def _owner(self, thread_id: str, principal: Principal) -> Principal:
        """The thread's owner, acting in the caller's session when the caller is the owner."""
        user_id, org_id = await self.store.thread_owner(thread_id, principal)
        if user_id == principal.user_id:
            return principal
        return Principal(user_id=user_id, org_id=org_id)


def _acting(owner: Principal, escalation: Escalation) -> Principal:
    """The owner as the runner acts for them: in the escalation's session."""
    return Principal(user_id=owner.user_id, org_id=owner.org_id, session_id=escalation.session_id or None)


def _require_operator(principal: Principal) -> None:
    if not (principal.is_operator and principal.org_id):
        raise PermissionDenied("this needs the operator role and an org")


def _text(value: str, name: str, maximum: int, *, required: bool = True) -> str:
    value = value.strip()
    if required and not value:
        raise InvalidArgument(f"{name} is required")
    if len(value) > maximum:
        raise InvalidArgument(f"{name} is longer than {maximum} characters")
    if "\x00" in value:
        raise InvalidArgument(f"{name} contains a NUL character")
    return value


def _session_of(thread: ThreadMetadata) -> str | None:
    return _str(thread.metadata.get(SESSION_METADATA_KEY))


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
