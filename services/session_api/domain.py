"""Sessions, session events and escalations, and the validation of what clients send.

Nothing here touches gRPC, Postgres or Redis.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar

from switchboard.errors import InvalidArgument, ResourceExhausted
from switchboard.principal import Principal

T = TypeVar("T")

SessionStatus = Literal["active", "ended", "cancelled"]
EscalationStatus = Literal["open", "claimed", "resolved"]

SESSION_STATUSES: tuple[SessionStatus, ...] = ("active", "ended", "cancelled")
ESCALATION_STATUSES: tuple[EscalationStatus, ...] = ("open", "claimed", "resolved")
CHANNELS = ("web", "voice")

MAX_ID_LENGTH = 255
MAX_TEXT_LENGTH = 2000
MAX_AGENT_ID_LENGTH = 64

# UI events the product defines; any other name matching EVENT_TYPE is a custom event.
UI_EVENT_TYPES = ("button_click", "hitl_escalation", "cancel")
# Events only the server writes, so the audit trail cannot be forged by a client.
SERVER_EVENT_TYPES = frozenset(
    {"session_created", "session_ended", "session_cancelled", "escalation_claimed", "escalation_resolved"}
)
EVENT_TYPE = re.compile(r"[a-z][a-z0-9_.:-]{0,63}")
AGENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


@dataclass(frozen=True, slots=True)
class HostedLink:
    """A hosted session's side at OpenAI: the workflow, and the OpenAI session whose client
    secret the user holds now (each refresh makes a new one)."""

    workflow_id: str
    openai_user: str
    openai_session_id: str
    expires_at: datetime
    cancelled: bool = False

    def status(self, now: datetime) -> str:
        """``active``, ``expired`` (past its expiry: refresh makes a new one) or ``cancelled``."""
        if self.cancelled:
            return "cancelled"
        return "expired" if now >= self.expires_at else "active"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form, for the change feed."""
        return {
            "workflow_id": self.workflow_id,
            "openai_user": self.openai_user,
            "openai_session_id": self.openai_session_id,
            "expires_at": self.expires_at.isoformat(),
            "cancelled": self.cancelled,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostedLink:
        """The inverse of ``to_dict``."""
        return cls(
            workflow_id=data["workflow_id"],
            openai_user=data["openai_user"],
            openai_session_id=data["openai_session_id"],
            expires_at=datetime.fromisoformat(data["expires_at"]),
            cancelled=bool(data["cancelled"]),
        )


@dataclass(frozen=True, slots=True)
class Session:
    """A chat session from start to end."""

    id: str
    user_id: str
    org_id: str | None
    channel: str
    agent_id: str
    status: SessionStatus
    created_at: datetime
    ended_at: datetime | None
    metadata_json: bytes
    thread_ids: tuple[str, ...] = field(default_factory=tuple)
    hosted: HostedLink | None = None

    @property
    def mode(self) -> str:
        """``hosted`` (an OpenAI ChatKit workflow) or ``self_hosted``."""
        return "hosted" if self.hosted is not None else "self_hosted"

    @property
    def is_active(self) -> bool:
        """Whether the session still accepts work (and its client secret still works)."""
        return self.status == "active"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form, for the change feed."""
        return {
            "id": self.id,
            "user_id": self.user_id,
            "org_id": self.org_id,
            "channel": self.channel,
            "agent_id": self.agent_id,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "metadata": self.metadata_json.decode(),
            "thread_ids": list(self.thread_ids),
            "hosted": self.hosted.to_dict() if self.hosted else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Session:
        """The inverse of ``to_dict``."""
        return cls(
            id=data["id"],
            user_id=data["user_id"],
            org_id=data["org_id"],
            channel=data["channel"],
            agent_id=data["agent_id"],
            status=data["status"],
            created_at=datetime.fromisoformat(data["created_at"]),
            ended_at=datetime.fromisoformat(data["ended_at"]) if data["ended_at"] else None,
            metadata_json=data["metadata"].encode(),
            thread_ids=tuple(data["thread_ids"]),
            hosted=HostedLink.from_dict(data["hosted"]) if data.get("hosted") else None,
        )


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """One entry of a session's append-only audit trail."""

    id: int
    session_id: str
    type: str
    actor_user_id: str
    payload_json: bytes
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Escalation:
    """A request for a human to take over a session's thread."""

    id: str
    session_id: str
    thread_id: str
    user_id: str
    org_id: str | None
    reason: str
    status: EscalationStatus
    opened_by: str
    opened_at: datetime
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    resolution: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form, for the change feed."""
        out: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            out[name] = value.isoformat() if isinstance(value, datetime) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Escalation:
        """The inverse of ``to_dict``."""
        values = dict(data)
        for name in ("opened_at", "claimed_at", "resolved_at"):
            if values.get(name):
                values[name] = datetime.fromisoformat(values[name])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class DurationStats:
    """How many durations there are and their p50/p90, in seconds."""

    count: int = 0
    p50_seconds: float = 0.0
    p90_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class SessionMetrics:
    """Figures of an org's sessions and escalations."""

    total_sessions: int
    by_status: dict[str, int]
    by_channel: dict[str, int]
    by_agent: dict[str, int]
    cancel_rate: float
    time_to_escalation: DurationStats
    time_to_claim: DurationStats
    time_to_resolution: DurationStats
    approvals: int = 0
    rejections: int = 0
    approvals_expired: int = 0
    time_to_decision: DurationStats = field(default_factory=DurationStats)
    time_handled_by_human: DurationStats = field(default_factory=DurationStats)
    hand_backs: int = 0
    handoff_timeouts: int = 0


TokenKind = Literal["identity_provider", "session"]


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """The principal a bearer token names, until when it may be trusted, and what kind of token it is."""

    principal: Principal
    expires_at: datetime
    kind: TokenKind


@dataclass(frozen=True, slots=True)
class ClientSecret:
    """A session's client secret (a JWT bound to its user and the session) and its expiry."""

    token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class CreatedSession:
    """A new session and its client secret."""

    session: Session
    client_secret: ClientSecret


@dataclass(frozen=True, slots=True)
class SessionChange:
    """One change, as a watcher receives it (or, type ``watch.started``, the start of a watch)."""

    id: str
    type: str
    at: datetime
    session: Session | None = None
    escalation: Escalation | None = None

    @property
    def session_id(self) -> str | None:
        """The session the change concerns."""
        if self.session is not None:
            return self.session.id
        return self.escalation.session_id if self.escalation is not None else None


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """Where an org's (or the deployment's) events go."""

    id: str
    org_id: str | None
    url: str
    secret: str
    event_types: tuple[str, ...]
    description: str
    created_by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class WebhookAttempt:
    """One POST of a delivery."""

    attempted_at: datetime
    status_code: int | None
    error: str
    duration_ms: int


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One event for one endpoint, and its attempts."""

    endpoint_id: str
    event_id: str
    event_seq: int
    type: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str
    delivered_at: datetime | None
    event_created_at: datetime
    attempt_list: tuple[WebhookAttempt, ...] = field(default_factory=tuple)


# -- validation ----------------------------------------------------------------


def check_text(value: str, name: str, *, required: bool = True, max_length: int = MAX_ID_LENGTH) -> str:
    """A string field a client sent: present when required, bounded, storable.

    Raises:
        InvalidArgument: it is missing, too long or holds a NUL character.
    """
    if not value:
        if required:
            raise InvalidArgument(f"{name} is required")
        return ""
    if len(value) > max_length:
        raise InvalidArgument(f"{name} is longer than {max_length} characters")
    if "\x00" in value:
        raise InvalidArgument(f"{name} must not contain NUL characters")
    return value


def check_channel(value: str) -> str:
    """``web`` (the default) or ``voice``."""
    channel = value or "web"
    if channel not in CHANNELS:
        raise InvalidArgument(f"channel must be one of {', '.join(CHANNELS)}, got {value[:40]!r}")
    return channel


def check_agent_id(value: str) -> str:
    """An agent id: letters, digits and ``_.:-``, up to 64 characters (empty: the default agent)."""
    if value and not AGENT_ID.fullmatch(value):
        raise InvalidArgument("agent_id must be 1-64 characters of letters, digits and _.:- (starting alphanumeric)")
    return value


def check_event_type(value: str) -> str:
    """A UI event type a client may record.

    Raises:
        InvalidArgument: malformed, or one of the types only the server writes.
    """
    if not value:
        raise InvalidArgument(f"type is required: one of {', '.join(UI_EVENT_TYPES)} or a custom type")
    if not EVENT_TYPE.fullmatch(value):
        raise InvalidArgument("type must be 1-64 characters of a-z, 0-9 and _.:- starting with a letter")
    if value in SERVER_EVENT_TYPES:
        raise InvalidArgument(f"type {value!r} is written by the server itself and cannot be recorded")
    return value


def parse_json_object(raw: bytes, name: str, *, max_bytes: int) -> bytes:
    """Validate a JSON object a client sent and return it compactly encoded.

    Empty means ``{}``.

    Raises:
        ResourceExhausted: it is larger than ``max_bytes``.
        InvalidArgument: it is not a JSON object Postgres can store.
    """
    if not raw:
        return b"{}"
    if len(raw) > max_bytes:
        raise ResourceExhausted(f"{name} is {len(raw)} bytes; the limit is {max_bytes}")
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidArgument(f"{name} is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"{name} must be a JSON object")
    try:
        encoded = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (ValueError, RecursionError):
        raise InvalidArgument(
            f"{name} holds values JSON cannot represent (NaN or Infinity) or nests too deep"
        ) from None
    # Postgres jsonb cannot hold NUL characters.
    if "\\u0000" in encoded:
        raise InvalidArgument(f"{name} must not contain NUL characters")
    return encoded.encode()
