"""What the console shows, as plain values: sessions, escalations, thread changes, metrics.

The backend converts the clients' types into these once (the fields a view
shows, with its defaults), so an in-memory backend can produce them too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chatkit.types import ThreadItem

from services.agent_runner.client import Handoff, Run
from services.session_api.client import DurationStats, Escalation, Session, SessionMetrics
from services.session_api.client import SessionChange as SessionApiChange
from services.thread_store.client import ChangeEvent, HandledThread

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The change feed's event when a thread's handler changes (its json: kind, operator_id, escalation_id, since, until).
THREAD_HANDLER = "thread.handler"
HANDLER_KINDS = ("agent", "waiting", "human")
# The agent runner stores operators' replies as assistant messages with ids starting so.
OPERATOR_ITEM_PREFIX = "msg_op_"
THREAD_WRITES = ("thread.created", "thread.updated")
_MARKDOWN_MARKS = re.compile(r"\*\*|__|`+|^#+\s|^\s*[-*]\s", re.MULTILINE)
ITEM_WRITES = ("item.added", "item.updated")


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One chat session as the console lists it."""

    id: str
    user_id: str
    org_id: str
    agent_id: str
    channel: str
    status: str
    created_at: datetime
    ended_at: datetime | None = None
    thread_ids: tuple[str, ...] = ()
    hosted: bool = False  # an OpenAI-hosted ChatKit workflow's session: read-only, through OpenAI

    @property
    def thread_id(self) -> str | None:
        """The thread the session used last, if any."""
        return self.thread_ids[-1] if self.thread_ids else None

    @classmethod
    def of(cls, s: Session) -> SessionInfo:
        """A session as the console lists it."""
        return cls(
            id=s.id,
            user_id=s.user_id,
            org_id=s.org_id or "",
            agent_id=s.agent_id or "default",
            channel=s.channel or "web",
            status=s.status,
            created_at=s.created_at,
            ended_at=s.ended_at,
            thread_ids=s.thread_ids,
            hosted=s.hosted is not None,
        )


@dataclass(frozen=True, slots=True)
class HostedConversation:
    """A hosted session's conversation as OpenAI's ChatKit threads API returns it, read-only.

    Attributes:
        messages: (who, text) per item, oldest first: ``user``, ``agent``, or the item's type
            for what is not a message (widgets, tasks), with what text it has.
    """

    id: str
    title: str
    messages: tuple[tuple[str, str], ...]

    @classmethod
    def from_openai(cls, thread: dict[str, Any], items: list[dict[str, Any]]) -> HostedConversation:
        """Convert OpenAI's ChatKit thread and thread items (JSON objects)."""
        messages = []
        for item in items:
            kind = str(item.get("type", ""))
            parts = [p.get("text", "") for p in item.get("content") or [] if isinstance(p, dict)]
            text = " ".join(str(t) for t in parts if t) or str(item.get("text") or "")
            who = {"chatkit.user_message": "user", "chatkit.assistant_message": "agent"}.get(
                kind, kind.removeprefix("chatkit.")
            )
            messages.append((who, text))
        return cls(id=str(thread.get("id", "")), title=str(thread.get("title") or "Untitled"), messages=tuple(messages))


@dataclass(frozen=True, slots=True)
class EscalationInfo:
    """One escalation (a conversation handed to a human)."""

    id: str
    session_id: str
    thread_id: str
    user_id: str
    reason: str
    status: str
    opened_at: datetime
    claimed_by: str = ""
    resolved_by: str = ""
    resolution: str = ""

    @property
    def pending(self) -> bool:
        """Whether it still waits for an operator to finish it (open or claimed)."""
        return self.status in ("open", "claimed")

    @classmethod
    def of(cls, e: Escalation) -> EscalationInfo:
        """An escalation as the console lists it."""
        return cls(
            id=e.id,
            session_id=e.session_id,
            thread_id=e.thread_id,
            user_id=e.user_id,
            reason=e.reason,
            status=e.status,
            opened_at=e.opened_at,
            claimed_by=e.claimed_by or "",
            resolved_by=e.resolved_by or "",
            resolution=e.resolution,
        )


@dataclass(frozen=True, slots=True)
class SessionChange:
    """A change from session_api's live watch."""

    id: str
    type: str
    at: datetime
    session: SessionInfo | None = None
    escalation: EscalationInfo | None = None

    @classmethod
    def of(cls, c: SessionApiChange) -> SessionChange:
        """A change of session_api's watch."""
        return cls(
            id=c.id,
            type=c.type,
            at=c.at,
            session=SessionInfo.of(c.session) if c.session is not None else None,
            escalation=EscalationInfo.of(c.escalation) if c.escalation is not None else None,
        )


@dataclass(frozen=True, slots=True)
class ThreadChange:
    """A change from thread_store's change feed (``item.added``, ``item.updated``, ``thread.handler``, ...)."""

    id: str
    type: str
    thread_id: str
    item_id: str
    at: datetime
    json: bytes = b""

    @classmethod
    def of(cls, e: ChangeEvent) -> ThreadChange:
        """A change of thread_store's feed."""
        return cls(id=e.id, type=e.type, thread_id=e.thread_id, item_id=e.item_id, at=e.at, json=e.json)


@dataclass(frozen=True, slots=True)
class ThreadSummary:
    """What the sessions table shows of a thread: its title, the agent answering it, its handler.

    Attributes:
        agent_id: The agent that answered last (the thread's sticky ``metadata.agent_id``; '' before any).
        handler: Who answers it, as thread_store reported it (None: not reported; the agent).
    """

    id: str
    title: str = ""
    agent_id: str = ""
    updated_at: datetime = EPOCH
    handler: Handoff | None = None

    @classmethod
    def from_thread(cls, t: HandledThread) -> ThreadSummary:
        """Summarize a thread of the org-wide listing (``GrpcThreadStore.load_org_threads``)."""
        agent_id = t.thread.metadata.get("agent_id")
        handler = None
        # Only a person's involvement is taken from the listing: "agent" is what the console assumes
        # anyway, and until a hand-off says otherwise a pending escalation stands for the thread.
        if t.handler.kind in ("waiting", "human"):
            handler = Handoff(
                thread_id=t.thread.id,
                kind=t.handler.kind,
                operator_id=t.handler.operator_id,
                escalation_id=t.handler.escalation_id,
                since=t.handler.since,
                until=t.handler.until,
            )
        return cls(
            id=t.thread.id,
            title=t.thread.title or "",
            agent_id=agent_id if isinstance(agent_id, str) else "",
            updated_at=t.updated_at,
            handler=handler,
        )


def _title_and_agent(thread_json: bytes) -> tuple[str, str]:
    """The title and sticky agent of a ChatKit thread's JSON ('' for what it lacks or cannot be read)."""
    try:
        value = json.loads(thread_json) if thread_json else None
    except ValueError:
        return "", ""
    if not isinstance(value, dict):
        return "", ""
    title = value.get("title")
    metadata = value.get("metadata")
    agent = metadata.get("agent_id") if isinstance(metadata, dict) else None
    return (title if isinstance(title, str) else ""), (agent if isinstance(agent, str) else "")


def thread_written(change: ThreadChange) -> ThreadSummary | None:
    """The thread's title and agent from a ``thread.created``/``thread.updated`` change (None: another change)."""
    if change.type not in THREAD_WRITES or not change.json:
        return None
    title, agent_id = _title_and_agent(change.json)
    return ThreadSummary(id=change.thread_id, title=title, agent_id=agent_id, updated_at=change.at)


@dataclass(frozen=True, slots=True)
class LastMessage:
    """A thread's newest message, for the sessions table.

    Attributes:
        role: ``user``, ``agent`` or ``operator``.
    """

    item_id: str
    role: str
    text: str
    at: datetime

    @property
    def line(self) -> str:
        """The message on one line: whitespace squeezed, Markdown emphasis and heading marks dropped."""
        return " ".join(_MARKDOWN_MARKS.sub("", self.text).split())


def last_message_of(item: ThreadItem) -> LastMessage | None:
    """The item as a thread's last message, if it is a user's, an agent's or an operator's message."""
    at = item.created_at if item.created_at.tzinfo is not None else item.created_at.replace(tzinfo=UTC)
    if item.type == "user_message":
        text = " ".join(getattr(part, "text", "") for part in item.content)
        return LastMessage(item.id, "user", text, at)
    if item.type == "assistant_message":
        text = "".join(part.text for part in item.content)
        role = "operator" if item.id.startswith(OPERATOR_ITEM_PREFIX) else "agent"
        return LastMessage(item.id, role, text, at)
    return None


def handoff_of(change: ThreadChange) -> Handoff | None:
    """The thread's new handler from a ``thread.handler`` change (None: the event is not one the console can read)."""
    try:
        value = json.loads(change.json) if change.json else None
    except ValueError:
        return None
    if not isinstance(value, dict) or value.get("kind") not in HANDLER_KINDS:
        return None

    def text(key: str) -> str | None:
        field = value.get(key)
        return field if isinstance(field, str) and field else None

    def moment(key: str) -> datetime | None:
        field = text(key)
        try:
            at = datetime.fromisoformat(field) if field is not None else None
        except ValueError:
            return None
        return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at

    return Handoff(
        thread_id=change.thread_id,
        kind=value["kind"],
        operator_id=text("operator_id"),
        escalation_id=text("escalation_id"),
        since=moment("since"),
        until=moment("until"),
    )


# A run's states that still hold or wait for its thread (the others are final).
ACTIVE_RUN_STATES = ("queued", "running", "waiting_approval")


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One run of the agent (one answer), as the runs view lists it."""

    id: str
    thread_id: str
    user_id: str
    session_id: str
    agent_id: str
    status: str  # queued, running, waiting_approval, completed, cancelled, failed, interrupted
    created_at: datetime
    started_at: datetime | None = None
    holder: str = ""

    @classmethod
    def of(cls, r: Run) -> RunInfo:
        """A run as the runs view lists it."""
        return cls(
            id=r.id,
            thread_id=r.thread_id,
            user_id=r.user_id,
            session_id=r.session_id or "",
            agent_id=r.agent_id,
            status=r.status or "unknown",
            created_at=r.created_at,
            started_at=r.started_at,
            holder=r.holder or "",
        )


@dataclass(frozen=True, slots=True)
class Durations:
    """How long something took: how many, median and 90th percentile (seconds)."""

    count: int = 0
    p50: float = 0.0
    p90: float = 0.0


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """The org's figures at one moment."""

    at: datetime
    total_sessions: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    cancel_rate: float = 0.0
    time_to_escalation: Durations = field(default_factory=Durations)
    time_to_claim: Durations = field(default_factory=Durations)
    time_to_resolution: Durations = field(default_factory=Durations)

    @classmethod
    def of(cls, m: SessionMetrics, *, at: datetime) -> MetricsSnapshot:
        """The figures taken at ``at``."""

        def durations(d: DurationStats) -> Durations:
            return Durations(count=d.count, p50=d.p50_seconds, p90=d.p90_seconds)

        return cls(
            at=at,
            total_sessions=m.total_sessions,
            by_status=dict(m.by_status),
            cancel_rate=m.cancel_rate,
            time_to_escalation=durations(m.time_to_escalation),
            time_to_claim=durations(m.time_to_claim),
            time_to_resolution=durations(m.time_to_resolution),
        )


def format_wait(seconds: float) -> str:
    """A duration that visibly ticks: ``26s``, ``4m07s``, ``1h05m``, ``2d03h``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def format_age(seconds: float) -> str:
    """A short, coarse duration: ``42s``, ``7m``, ``3h05m``, ``2d``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d"
