"""An in-memory console backend with fixed data, for layout snapshots and keyboard tests (the live tests use real
services)."""

from __future__ import annotations

import asyncio
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
from switchboard.principal import Principal
from tui.backend import ALREADY_DECIDED, NOT_PENDING, SESSION_API, THREAD_STORE, decision_outcome, operator_reply
from tui.cards import action_card
from tui.data import Durations, EscalationInfo, MetricsSnapshot, SessionChange, SessionInfo, ThreadChange

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
    """A ``ConsoleBackend`` over fixed data; feeds are queues a test may push into."""

    def __init__(self) -> None:
        self.principal = Principal(user_id="op-kim", org_id="acme", roles=("operator",))
        self.sessions = demo_sessions()
        self.escalations = {e.id: e for e in demo_escalations()}
        self.transcripts: dict[str, list[ThreadItem]] = {"thr_alice": demo_transcript()}
        self.session_changes: asyncio.Queue[SessionChange] = asyncio.Queue()
        self.thread_changes: asyncio.Queue[ThreadChange] = asyncio.Queue()
        self.cards: dict[str, PendingApproval] = {}
        self.decisions: list[tuple[str, str, bool]] = []
        self.refuse_with: str | None = None  # a refusal of tui.backend every decision gets, when set
        self.fail_with: Exception | None = None  # an error every decision raises, when set
        self.decision_gate: asyncio.Event | None = None  # decisions wait for it, when set (a slow runner)
        self.resets: list[str] = []

    def add_card(self, thread_id: str, card_id: str, *, task_id: str, at: datetime, decided: str | None = None) -> None:
        """Put a delete-task card into a thread's transcript (decided: already closed with that sentence)."""
        pending, card = delete_card(thread_id, card_id, task_id=task_id, at=at, decided=decided)
        self.cards[card_id] = pending
        self.transcripts.setdefault(thread_id, []).append(card)

    @property
    def targets(self) -> dict[str, str]:
        return {SESSION_API: "memory", THREAD_STORE: "memory"}

    async def sign_in(self) -> Principal:
        return self.principal

    async def watch_sessions(self) -> AsyncIterator[SessionChange]:
        yield SessionChange(id="0-0", type="watch.started", at=NOW)
        while True:
            yield await self.session_changes.get()

    async def load_sessions(self) -> list[SessionInfo]:
        return list(self.sessions)

    async def load_escalations(self) -> list[EscalationInfo]:
        return sorted((e for e in self.escalations.values() if e.pending), key=lambda e: e.opened_at)

    async def load_thread_activity(self) -> dict[str, datetime]:
        return {"thr_alice": ago(430), "thr_bob": ago(30)}

    async def watch_threads(self, since: str) -> AsyncIterator[ThreadChange]:
        yield ThreadChange(id=since or "0-0", type="watch.started", thread_id="", item_id="", at=NOW)
        while True:
            yield await self.thread_changes.get()

    async def load_transcript(self, thread_id: str) -> list[ThreadItem]:
        return list(self.transcripts.get(thread_id, []))

    async def load_metrics(self) -> MetricsSnapshot:
        return demo_metrics()

    async def claim(self, escalation_id: str) -> EscalationInfo:
        claimed = replace(self.escalations[escalation_id], status="claimed", claimed_by=self.principal.user_id)
        self.escalations[escalation_id] = claimed
        return claimed

    async def resolve(self, escalation_id: str, resolution: str) -> EscalationInfo:
        resolved = replace(self.escalations[escalation_id], status="resolved", resolution=resolution)
        self.escalations[escalation_id] = resolved
        return resolved

    async def reply(self, thread_id: str, text: str) -> ThreadItem:
        item = operator_reply(thread_id, text, at=NOW)
        self.transcripts.setdefault(thread_id, []).append(item)
        return item

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
