"""What the console shows, as plain values: sessions, escalations, thread changes, metrics.

The backend converts protobuf replies into these once, so widgets and tests
never touch generated code, and an in-memory backend can produce them too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from services.agent_runner.client import Handoff
from switchboard.api.v1 import session_api_pb2 as spb
from switchboard.api.v1 import thread_store_pb2 as tpb
from switchboard.errors import InvalidArgument
from switchboard.proto_convert import enum_name

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The change feed's event when a thread's handler changes (its json: kind, operator_id, escalation_id, since, until).
THREAD_HANDLER = "thread.handler"
HANDLER_KINDS = ("agent", "waiting", "human")


def _name(enum: Any, value: int, prefix: str) -> str:
    """A status as the console shows it ("unknown" for one this console does not know)."""
    try:
        return enum_name(enum, value, prefix) or "unknown"
    except InvalidArgument:
        return "unknown"


def _when(ts: Timestamp, *, present: bool = True) -> datetime | None:
    if not present or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return ts.ToDatetime(tzinfo=UTC)


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

    @property
    def thread_id(self) -> str | None:
        """The thread the session used last, if any."""
        return self.thread_ids[-1] if self.thread_ids else None

    @classmethod
    def from_proto(cls, s: spb.Session) -> SessionInfo:
        """Convert a ``Session`` message."""
        return cls(
            id=s.id,
            user_id=s.user_id,
            org_id=s.org_id,
            agent_id=s.agent_id or "default",
            channel=s.channel or "web",
            status=_name(spb.SessionStatus, s.status, "SESSION_STATUS_"),
            created_at=_when(s.created_at) or EPOCH,
            ended_at=_when(s.ended_at, present=s.HasField("ended_at")),
            thread_ids=tuple(s.thread_ids),
        )


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
    def from_proto(cls, e: spb.Escalation) -> EscalationInfo:
        """Convert an ``Escalation`` message."""
        return cls(
            id=e.id,
            session_id=e.session_id,
            thread_id=e.thread_id,
            user_id=e.user_id,
            reason=e.reason,
            status=_name(spb.EscalationStatus, e.status, "ESCALATION_STATUS_"),
            opened_at=_when(e.opened_at) or EPOCH,
            claimed_by=e.claimed_by,
            resolved_by=e.resolved_by,
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
    def from_proto(cls, c: spb.SessionChange) -> SessionChange:
        """Convert a ``SessionChange`` message."""
        which = c.WhichOneof("subject")
        return cls(
            id=c.id,
            type=c.type,
            at=_when(c.at) or EPOCH,
            session=SessionInfo.from_proto(c.session) if which == "session" else None,
            escalation=EscalationInfo.from_proto(c.escalation) if which == "escalation" else None,
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
    def from_proto(cls, e: tpb.ChangeEvent) -> ThreadChange:
        """Convert a ``ChangeEvent`` message."""
        return cls(
            id=e.id,
            type=e.type,
            thread_id=e.thread_id,
            item_id=e.item_id,
            at=_when(e.at) or EPOCH,
            json=e.json,
        )


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
    def from_proto(cls, m: spb.SessionMetrics, *, at: datetime) -> MetricsSnapshot:
        """Convert a ``SessionMetrics`` message taken at ``at``."""

        def durations(d: spb.DurationStats) -> Durations:
            return Durations(count=d.count, p50=d.p50_seconds, p90=d.p90_seconds)

        return cls(
            at=at,
            total_sessions=m.total_sessions,
            by_status={c.key: c.count for c in m.by_status},
            cancel_rate=m.cancel_rate,
            time_to_escalation=durations(m.time_to_escalation),
            time_to_claim=durations(m.time_to_claim),
            time_to_resolution=durations(m.time_to_resolution),
        )


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
