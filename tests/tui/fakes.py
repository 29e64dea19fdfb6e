"""An in-memory console backend with fixed data and the hand-off's rules, for layout snapshots and keyboard tests
(the live tests use real services)."""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    CustomTask,
    InferenceOptions,
    TaskItem,
    ThreadItem,
    UserMessageItem,
    UserMessageTextContent,
    WidgetItem,
)

from services.agent_runner.approvals import PendingApproval, approval_card, decided_text
from services.agent_runner.client import Handoff
from switchboard.errors import FailedPrecondition, NotFound, PermissionDenied
from switchboard.principal import Principal
from tui.backend import (
    ALREADY_DECIDED,
    CANNOT_CANCEL,
    NOT_PENDING,
    SESSION_API,
    THREAD_STORE,
    decision_outcome,
)
from tui.cards import action_card
from tui.data import (
    THREAD_HANDLER,
    Durations,
    EscalationInfo,
    HostedConversation,
    LastMessage,
    MetricsSnapshot,
    RunInfo,
    SessionChange,
    SessionInfo,
    ThreadChange,
    ThreadSummary,
    last_message_of,
)

NOW = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)


def fixed_clock() -> datetime:
    """The snapshots' frozen time."""
    return NOW


def ago(seconds: float) -> datetime:
    """A moment before the frozen time."""
    return NOW - timedelta(seconds=seconds)


def demo_sessions() -> list[SessionInfo]:
    """Sessions of the demo org."""
    rows = [
        ("ses_01", "alice", "support", "web", "active", 1250, ("thr_alice",)),
        ("ses_02", "bob", "billing", "web", "active", 610, ("thr_bob",)),
        ("ses_03", "carol", "support", "voice", "active", 95, ()),
        ("ses_04", "dave", "sales", "web", "ended", 5400, ("thr_dave",)),
        ("ses_05", "erin", "support", "web", "cancelled", 7300, ("thr_erin",)),
    ]
    return [
        SessionInfo(
            id=sid,
            user_id=user,
            org_id="acme",
            agent_id=agent,
            channel=channel,
            status=status,
            created_at=ago(age),
            ended_at=ago(age - 300) if status != "active" else None,
            thread_ids=threads,
        )
        for sid, user, agent, channel, status, age, threads in rows
    ]


def demo_escalations() -> list[EscalationInfo]:
    """Pending escalations of the demo org."""
    return [
        EscalationInfo(
            id="esc_01",
            session_id="ses_01",
            thread_id="thr_alice",
            user_id="alice",
            reason="User asked for a human: refund over the limit",
            status="open",
            opened_at=ago(420),
        ),
        EscalationInfo(
            id="esc_02",
            session_id="ses_02",
            thread_id="thr_bob",
            user_id="bob",
            reason="escalate_to_human: card declined three times",
            status="claimed",
            opened_at=ago(180),
            claimed_by="op-sam",
        ),
    ]


def demo_handlers() -> dict[str, Handoff]:
    """Who answers the demo threads besides the agent: Alice waits for a person, op-sam holds Bob's conversation."""
    return {
        "thr_alice": Handoff("thr_alice", "waiting", escalation_id="esc_01", since=ago(420), session_id="ses_01"),
        "thr_bob": Handoff(
            "thr_bob", "human", operator_id="op-sam", escalation_id="esc_02", since=ago(180), session_id="ses_02"
        ),
    }


def demo_threads() -> dict[str, ThreadSummary]:
    """Titles and sticky agents of the demo threads (Bob's thread was handed to Billing)."""
    return {
        "thr_alice": ThreadSummary("thr_alice", "Charged twice for order 1042", "support", ago(430)),
        "thr_bob": ThreadSummary("thr_bob", "Card declined at checkout", "billing", ago(30)),
        "thr_dave": ThreadSummary("thr_dave", "Upgrade to the team plan", "", ago(5200)),
        "thr_erin": ThreadSummary("thr_erin", "Reset my password", "support", ago(7100)),
    }


def demo_last_messages() -> dict[str, LastMessage]:
    """The newest message of the demo threads that have no transcript here."""
    return {
        "thr_bob": LastMessage("msg_b7", "operator", "I can see the declines; let me check with the bank.", ago(30)),
        "thr_dave": LastMessage("msg_d4", "agent", "The **team plan** is $12 a seat; upgrade?", ago(5200)),
        "thr_erin": LastMessage("msg_e2", "user", "never mind, found it", ago(7100)),
    }


def demo_runs() -> list[RunInfo]:
    """Active runs of the demo org (none: ``with_runs`` adds two conversations the agent is answering)."""
    return []


def with_runs(backend: InMemoryBackend) -> InMemoryBackend:
    """The demo org plus Gus, whose answer is being written, and Hana, whose answer waits for her approval."""
    for sid, user, thread, title, status, age in (
        ("ses_06", "gus", "thr_gus", "Change my delivery address", "running", 12),
        ("ses_07", "hana", "thr_hana", "Delete my old tasks", "waiting_approval", 95),
    ):
        backend.sessions.append(
            SessionInfo(sid, user, "acme", "support", "web", "active", ago(age + 5), thread_ids=(thread,))
        )
        backend.threads[thread] = ThreadSummary(thread, title, "triage", ago(age))
        backend.runs.append(RunInfo(f"run_{user}", thread, user, sid, "triage", status, ago(age), ago(age), "r-1"))
    return backend


def handler_change(change_id: str, handoff: Handoff, *, at: datetime = NOW) -> ThreadChange:
    """The change feed's ``thread.handler`` event for a thread's new handler."""
    body = {
        "kind": handoff.kind,
        "operator_id": handoff.operator_id,
        "escalation_id": handoff.escalation_id,
        "since": handoff.since.isoformat() if handoff.since else None,
        "until": handoff.until.isoformat() if handoff.until else None,
    }
    return ThreadChange(
        id=change_id,
        type=THREAD_HANDLER,
        thread_id=handoff.thread_id,
        item_id="",
        at=at,
        json=json.dumps(body).encode(),
    )


def user_says(thread_id: str, item_id: str, text: str, *, at: datetime) -> UserMessageItem:
    """A user's message."""
    return UserMessageItem(
        id=item_id,
        thread_id=thread_id,
        created_at=at,
        content=[UserMessageTextContent(text=text)],
        inference_options=InferenceOptions(),
    )


def demo_transcript(thread_id: str = "thr_alice") -> list[ThreadItem]:
    """A short conversation with a tool call that worked and one that failed."""
    return [
        UserMessageItem(
            id="msg_1",
            thread_id=thread_id,
            created_at=ago(1240),
            content=[UserMessageTextContent(text="Hi, I was charged twice for order 1042.")],
            inference_options=InferenceOptions(),
        ),
        TaskItem(
            id="task_1",
            thread_id=thread_id,
            created_at=ago(1235),
            task=CustomTask(
                title="lookup_order done",
                content="order 1042: 2 charges of $180.00",
                status_indicator="complete",
                icon="check-circle",
            ),
        ),
        AssistantMessageItem(
            id="msg_2",
            thread_id=thread_id,
            created_at=ago(1230),
            content=[AssistantMessageContent(text="I can see two charges of $180.00. Let me refund one.")],
        ),
        TaskItem(
            id="task_2",
            thread_id=thread_id,
            created_at=ago(1225),
            task=CustomTask(
                title="issue_refund failed",
                content="refunds over $100 need a human",
                status_indicator="complete",
                icon="lucide:circle-x",
            ),
        ),
        UserMessageItem(
            id="msg_3",
            thread_id=thread_id,
            created_at=ago(430),
            content=[UserMessageTextContent(text="Can I talk to a person please?")],
            inference_options=InferenceOptions(),
        ),
    ]


def delete_card(
    thread_id: str, card_id: str, *, task_id: str, at: datetime, decided: str | None = None
) -> tuple[PendingApproval, WidgetItem]:
    """The agent runner's card asking to delete a task (decided: with that status sentence)."""
    pending = PendingApproval(
        card_id=card_id,
        call_id=f"call_{card_id}",
        tool_name="delete_task",
        arguments={"task_id": task_id},
        agent="Triage",
    )
    return pending, approval_card(pending, thread_id=thread_id, created_at=at, decided=decided)


def demo_metrics() -> MetricsSnapshot:
    """Figures of the demo org."""
    return MetricsSnapshot(
        at=NOW,
        total_sessions=5,
        by_status={"active": 3, "ended": 1, "cancelled": 1},
        cancel_rate=0.2,
        time_to_escalation=Durations(count=2, p50=312.0, p90=820.5),
        time_to_claim=Durations(count=1, p50=42.0, p90=42.0),
        time_to_resolution=Durations(count=0),
    )


class InMemoryBackend:
    """A ``ConsoleBackend`` over fixed data; feeds are queues a test may push into.

    Hand-offs follow the agent runner's rules: a thread is answered by the agent,
    waits for a person, or is held by one operator; taking over a thread another
    operator holds is ``FailedPrecondition``, replying or handing back without
    holding it ``PermissionDenied``. Each change is reported on the feeds as the
    services report it (``thread.handler``, ``item.added``, escalation changes).
    ``as_operator`` gives a second operator's view of the same data.
    """

    def __init__(self) -> None:
        self.principal = Principal(user_id="op-kim", org_id="acme", roles=("operator",))
        self.sessions = demo_sessions()
        self.escalations = {e.id: e for e in demo_escalations()}
        self.handlers = demo_handlers()
        self.transcripts: dict[str, list[ThreadItem]] = {"thr_alice": demo_transcript()}
        self.hosted: dict[str, list[HostedConversation]] = {}  # hosted session id -> its conversations at OpenAI
        self.authors: dict[str, str] = {}  # item id -> the operator who wrote it
        self._ids = itertools.count(1)
        self.session_changes: asyncio.Queue[SessionChange] = asyncio.Queue()
        self.thread_changes: asyncio.Queue[ThreadChange] = asyncio.Queue()
        self.cards: dict[str, PendingApproval] = {}
        self.decisions: list[tuple[str, str, bool]] = []
        self.refuse_with: str | None = None  # a refusal of tui.backend every decision gets, when set
        self.fail_with: Exception | None = None  # an error every agent runner call raises, when set (it is down)
        self.decision_gate: asyncio.Event | None = None  # decisions wait for it, when set (a slow runner)
        self.resets: list[str] = []
        self.threads = demo_threads()
        self.last_messages = demo_last_messages()
        self.runs = demo_runs()
        self.runs_asked: list[list[str]] = []
        self.cancel_allowed = False  # the real agent runner cancels only the caller's own runs
        self.cancelled: list[str] = []
        self.cancelled_sessions: list[str] = []

    def add_card(self, thread_id: str, card_id: str, *, task_id: str, at: datetime, decided: str | None = None) -> None:
        """Put a delete-task card into a thread's transcript (decided: already closed with that sentence)."""
        pending, card = delete_card(thread_id, card_id, task_id=task_id, at=at, decided=decided)
        self.cards[card_id] = pending
        self.transcripts.setdefault(thread_id, []).append(card)

    def as_operator(self, user_id: str) -> InMemoryBackend:
        """Another operator of the org, acting on the same threads, escalations and feeds (a second console)."""
        other = copy.copy(self)
        other.principal = Principal(user_id=user_id, org_id=self.principal.org_id, roles=("operator",))
        return other

    def handler(self, thread_id: str) -> Handoff:
        """Who answers a thread now."""
        return self.handlers.get(thread_id) or Handoff(thread_id, "agent")

    @property
    def targets(self) -> dict[str, str]:
        return {SESSION_API: "memory", THREAD_STORE: "memory"}

    async def sign_in(self) -> Principal:
        return self.principal

    async def token_expired(self) -> None:
        await asyncio.Event().wait()  # the fake's operator never expires

    async def watch_sessions(self) -> AsyncIterator[SessionChange]:
        yield SessionChange(id="0-0", type="watch.started", at=NOW)
        while True:
            yield await self.session_changes.get()

    async def load_sessions(self) -> list[SessionInfo]:
        return list(self.sessions)

    async def load_escalations(self) -> list[EscalationInfo]:
        return sorted((e for e in self.escalations.values() if e.pending), key=lambda e: e.opened_at)

    async def load_threads(self) -> list[ThreadSummary]:
        return [replace(thread, handler=self.handlers.get(thread.id)) for thread in self.threads.values()]

    async def load_last_messages(self, thread_ids: list[str]) -> dict[str, LastMessage]:
        found: dict[str, LastMessage] = {}
        for thread_id in thread_ids:
            messages = [m for item in self.transcripts.get(thread_id, []) if (m := last_message_of(item))]
            if messages:
                found[thread_id] = messages[-1]
            elif thread_id in self.last_messages:
                found[thread_id] = self.last_messages[thread_id]
        return found

    async def load_runs(self, thread_ids: list[str]) -> list[RunInfo]:
        self._reach_runner()
        self.runs_asked.append(list(thread_ids))
        return [run for run in self.runs if run.thread_id in thread_ids]

    async def cancel_run(self, run_id: str) -> list[str]:
        self._reach_runner()
        if not self.cancel_allowed or not any(run.id == run_id for run in self.runs):
            raise NotFound(f"there is no active run {run_id!r}; it may have ended already; {CANNOT_CANCEL}")
        self.runs = [run for run in self.runs if run.id != run_id]
        self.cancelled.append(run_id)
        return [run_id]

    async def watch_threads(self, since: str) -> AsyncIterator[ThreadChange]:
        yield ThreadChange(id=since or "0-0", type="watch.started", thread_id="", item_id="", at=NOW)
        while True:
            yield await self.thread_changes.get()

    async def load_transcript(self, thread_id: str) -> list[ThreadItem]:
        return list(self.transcripts.get(thread_id, []))

    async def load_hosted_conversations(self, session_id: str) -> list[HostedConversation]:
        if session_id not in self.hosted:
            raise FailedPrecondition(f"session {session_id} is self-hosted")
        return list(self.hosted[session_id])

    async def load_metrics(self) -> MetricsSnapshot:
        return demo_metrics()

    # -- hand-off, as the agent runner does it ------------------------------------

    async def take_over(self, thread_id: str) -> Handoff:
        self._reach_runner()
        handler = self._holdable(thread_id)
        if handler.kind == "human":  # this operator holds it already
            return handler
        if handler.kind == "waiting" and handler.escalation_id:
            escalation_id = handler.escalation_id
        else:
            escalation_id = await self._open_escalation(thread_id, f"taken over by {self.principal.user_id}")
        await self._claim(escalation_id)
        return await self._set_handler(thread_id, "human", escalation_id)

    async def claim(self, escalation_id: str) -> Handoff:
        self._reach_runner()
        escalation = self.escalations.get(escalation_id)
        if escalation is None:
            raise NotFound(f"there is no escalation {escalation_id!r}")
        handler = self._holdable(escalation.thread_id)
        await self._claim(escalation_id)
        if handler.kind == "human":
            return handler
        return await self._set_handler(escalation.thread_id, "human", escalation_id)

    async def reply(self, thread_id: str, text: str) -> AssistantMessageItem:
        self._reach_runner()
        handler = self.handler(thread_id)
        me = self.principal.user_id
        if handler.kind != "human" or handler.operator_id != me:
            holder = handler.operator_id if handler.kind == "human" else "nobody"
            raise PermissionDenied(f"only the operator holding this conversation may write to it ({holder} holds it)")
        item = AssistantMessageItem(
            id=f"msg_op_{next(self._ids):04d}",
            thread_id=thread_id,
            created_at=NOW,
            content=[AssistantMessageContent(text=text)],
        )
        self.transcripts.setdefault(thread_id, []).append(item)
        self.authors[item.id] = me
        await self.thread_changes.put(
            ThreadChange(
                id=f"{next(self._ids)}-0",
                type="item.added",
                thread_id=thread_id,
                item_id=item.id,
                at=NOW,
                json=item.model_dump_json().encode(),
            )
        )
        return item

    async def hand_back(self, thread_id: str, resolution: str) -> Handoff:
        self._reach_runner()
        handler = self.handler(thread_id)
        me = self.principal.user_id
        if handler.kind == "agent":
            return handler
        if handler.kind == "human" and handler.operator_id != me:
            raise PermissionDenied(f"{handler.operator_id} is handling this conversation; only they can hand it back")
        if handler.escalation_id is None:
            raise FailedPrecondition("this conversation's hand-off has no escalation to resolve")
        escalation = self.escalations[handler.escalation_id]
        await self._escalation_changed(replace(escalation, status="resolved", resolved_by=me, resolution=resolution))
        return await self._set_handler(thread_id, "agent", None)

    def _reach_runner(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    def _holdable(self, thread_id: str) -> Handoff:
        """The thread's handler, if this operator may take it (it is not held by another)."""
        if thread_id not in self.transcripts and not any(thread_id in s.thread_ids for s in self.sessions):
            raise NotFound(f"there is no thread {thread_id!r}")
        handler = self.handler(thread_id)
        if handler.kind == "human" and handler.operator_id != self.principal.user_id:
            raise FailedPrecondition(f"{handler.operator_id} is handling this conversation")
        return handler

    async def _open_escalation(self, thread_id: str, reason: str) -> str:
        session = next(s for s in self.sessions if thread_id in s.thread_ids)
        escalation = EscalationInfo(
            id=f"esc_{next(self._ids):02d}",
            session_id=session.id,
            thread_id=thread_id,
            user_id=session.user_id,
            reason=reason,
            status="open",
            opened_at=NOW,
        )
        await self._escalation_changed(escalation)
        return escalation.id

    async def _claim(self, escalation_id: str) -> None:
        """Claim as session_api does: of operators racing exactly one wins."""
        escalation = self.escalations[escalation_id]
        me = self.principal.user_id
        if not escalation.pending:
            raise FailedPrecondition(f"escalation {escalation_id} is {escalation.status}")
        if escalation.status == "claimed" and escalation.claimed_by != me:
            raise FailedPrecondition(f"{escalation.claimed_by} claimed this escalation")
        await self._escalation_changed(replace(escalation, status="claimed", claimed_by=me))

    async def cancel_session(self, session: SessionInfo) -> SessionInfo:
        """session_api cancels it (reported on the feed), then the runner stops its answers."""
        current = next((s for s in self.sessions if s.id == session.id), None)
        if current is None:
            raise NotFound(f"session {session.id!r} not found")
        if current.status != "active":
            raise FailedPrecondition(f"session {session.id} is {current.status}")
        cancelled = replace(current, status="cancelled", ended_at=NOW)
        self.sessions = [cancelled if s.id == session.id else s for s in self.sessions]
        self.cancelled_sessions.append(session.id)
        await self.session_changes.put(
            SessionChange(id=f"{next(self._ids)}-0", type="session.cancelled", at=NOW, session=cancelled)
        )
        if not session.hosted:
            self._reach_runner()
            stopped = [run.id for run in self.runs if run.session_id == session.id]
            self.runs = [run for run in self.runs if run.session_id != session.id]
            self.cancelled += stopped
        return cancelled

    async def _escalation_changed(self, escalation: EscalationInfo) -> None:
        self.escalations[escalation.id] = escalation
        await self.session_changes.put(
            SessionChange(
                id=f"{next(self._ids)}-0", type=f"escalation.{escalation.status}", at=NOW, escalation=escalation
            )
        )

    async def _set_handler(self, thread_id: str, kind: str, escalation_id: str | None) -> Handoff:
        handoff = Handoff(
            thread_id=thread_id,
            kind=kind,
            operator_id=self.principal.user_id if kind == "human" else None,
            escalation_id=escalation_id,
            since=NOW,
            session_id=self.escalations[escalation_id].session_id if escalation_id else None,
        )
        self.handlers[thread_id] = handoff
        await self.thread_changes.put(handler_change(f"{next(self._ids)}-0", handoff))
        return handoff

    async def decide_card(self, thread_id: str, card_id: str, approve: bool) -> str:
        """Decide as the agent runner would: the card is replaced on the thread feed, the run completes."""
        self.decisions.append((thread_id, card_id, approve))
        if self.decision_gate is not None:
            await self.decision_gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        if self.refuse_with is not None:
            return self.refuse_with
        items = self.transcripts.get(thread_id, [])
        shown = next((item for item in items if item.id == card_id), None)
        card = action_card(shown) if shown is not None else None
        if shown is None or card is None or card_id not in self.cards:
            return NOT_PENDING
        if not card.awaiting_approval:
            return ALREADY_DECIDED
        sentence = decided_text("Approved" if approve else "Rejected", self.principal.user_id, NOW)
        _pending, decided = delete_card(
            thread_id, card_id, task_id=self.cards[card_id].arguments["task_id"], at=shown.created_at, decided=sentence
        )
        items[items.index(shown)] = decided
        change_id = f"{len(self.decisions)}-1"
        await self.thread_changes.put(
            ThreadChange(
                id=change_id,
                type="item.updated",
                thread_id=thread_id,
                item_id=card_id,
                at=NOW,
                json=decided.model_dump_json().encode(),
            )
        )
        return decision_outcome(approve, "completed")

    async def reset(self, service: str) -> None:
        self.resets.append(service)

    async def close(self) -> None:
        return None
