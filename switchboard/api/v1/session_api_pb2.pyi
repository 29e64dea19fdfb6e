import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from switchboard.api.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TokenKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOKEN_KIND_UNSPECIFIED: _ClassVar[TokenKind]
    TOKEN_KIND_IDENTITY_PROVIDER: _ClassVar[TokenKind]
    TOKEN_KIND_SESSION: _ClassVar[TokenKind]

class SessionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SESSION_STATUS_UNSPECIFIED: _ClassVar[SessionStatus]
    SESSION_STATUS_ACTIVE: _ClassVar[SessionStatus]
    SESSION_STATUS_ENDED: _ClassVar[SessionStatus]
    SESSION_STATUS_CANCELLED: _ClassVar[SessionStatus]

class EscalationStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ESCALATION_STATUS_UNSPECIFIED: _ClassVar[EscalationStatus]
    ESCALATION_STATUS_OPEN: _ClassVar[EscalationStatus]
    ESCALATION_STATUS_CLAIMED: _ClassVar[EscalationStatus]
    ESCALATION_STATUS_RESOLVED: _ClassVar[EscalationStatus]
TOKEN_KIND_UNSPECIFIED: TokenKind
TOKEN_KIND_IDENTITY_PROVIDER: TokenKind
TOKEN_KIND_SESSION: TokenKind
SESSION_STATUS_UNSPECIFIED: SessionStatus
SESSION_STATUS_ACTIVE: SessionStatus
SESSION_STATUS_ENDED: SessionStatus
SESSION_STATUS_CANCELLED: SessionStatus
ESCALATION_STATUS_UNSPECIFIED: EscalationStatus
ESCALATION_STATUS_OPEN: EscalationStatus
ESCALATION_STATUS_CLAIMED: EscalationStatus
ESCALATION_STATUS_RESOLVED: EscalationStatus

class AuthenticateRequest(_message.Message):
    __slots__ = ("token",)
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: str
    def __init__(self, token: _Optional[str] = ...) -> None: ...

class AuthenticateResponse(_message.Message):
    __slots__ = ("principal", "expires_at", "kind")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    expires_at: _timestamp_pb2.Timestamp
    kind: TokenKind
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[_Union[TokenKind, str]] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ("id", "user_id", "org_id", "channel", "agent_id", "status", "created_at", "ended_at", "metadata_json", "thread_ids", "mode", "hosted")
    ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    THREAD_IDS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    HOSTED_FIELD_NUMBER: _ClassVar[int]
    id: str
    user_id: str
    org_id: str
    channel: str
    agent_id: str
    status: SessionStatus
    created_at: _timestamp_pb2.Timestamp
    ended_at: _timestamp_pb2.Timestamp
    metadata_json: bytes
    thread_ids: _containers.RepeatedScalarFieldContainer[str]
    mode: str
    hosted: HostedSession
    def __init__(self, id: _Optional[str] = ..., user_id: _Optional[str] = ..., org_id: _Optional[str] = ..., channel: _Optional[str] = ..., agent_id: _Optional[str] = ..., status: _Optional[_Union[SessionStatus, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ended_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metadata_json: _Optional[bytes] = ..., thread_ids: _Optional[_Iterable[str]] = ..., mode: _Optional[str] = ..., hosted: _Optional[_Union[HostedSession, _Mapping]] = ...) -> None: ...

class HostedSession(_message.Message):
    __slots__ = ("openai_session_id", "workflow_id", "status", "expires_at", "openai_user")
    OPENAI_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    OPENAI_USER_FIELD_NUMBER: _ClassVar[int]
    openai_session_id: str
    workflow_id: str
    status: str
    expires_at: _timestamp_pb2.Timestamp
    openai_user: str
    def __init__(self, openai_session_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., status: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., openai_user: _Optional[str] = ...) -> None: ...

class ClientSecret(_message.Message):
    __slots__ = ("token", "expires_at")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    token: str
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, token: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateSessionRequest(_message.Message):
    __slots__ = ("principal", "channel", "agent_id", "metadata_json", "thread_id")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    channel: str
    agent_id: str
    metadata_json: bytes
    thread_id: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., channel: _Optional[str] = ..., agent_id: _Optional[str] = ..., metadata_json: _Optional[bytes] = ..., thread_id: _Optional[str] = ...) -> None: ...

class CreateSessionResponse(_message.Message):
    __slots__ = ("session", "client_secret")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SECRET_FIELD_NUMBER: _ClassVar[int]
    session: Session
    client_secret: ClientSecret
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ..., client_secret: _Optional[_Union[ClientSecret, _Mapping]] = ...) -> None: ...

class GetSessionRequest(_message.Message):
    __slots__ = ("principal", "session_id")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    session_id: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., session_id: _Optional[str] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ("principal", "status", "org_wide", "user_id", "limit", "after")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ORG_WIDE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    status: SessionStatus
    org_wide: bool
    user_id: str
    limit: int
    after: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., status: _Optional[_Union[SessionStatus, str]] = ..., org_wide: _Optional[bool] = ..., user_id: _Optional[str] = ..., limit: _Optional[int] = ..., after: _Optional[str] = ...) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("sessions", "has_more", "after")
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[Session]
    has_more: bool
    after: str
    def __init__(self, sessions: _Optional[_Iterable[_Union[Session, _Mapping]]] = ..., has_more: _Optional[bool] = ..., after: _Optional[str] = ...) -> None: ...

class RefreshSessionRequest(_message.Message):
    __slots__ = ("principal", "session_id")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    session_id: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., session_id: _Optional[str] = ...) -> None: ...

class ListHostedThreadsRequest(_message.Message):
    __slots__ = ("principal", "session_id", "limit", "after")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    session_id: str
    limit: int
    after: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., session_id: _Optional[str] = ..., limit: _Optional[int] = ..., after: _Optional[str] = ...) -> None: ...

class ListHostedThreadsResponse(_message.Message):
    __slots__ = ("threads_json", "has_more", "next_after")
    THREADS_JSON_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    NEXT_AFTER_FIELD_NUMBER: _ClassVar[int]
    threads_json: bytes
    has_more: bool
    next_after: str
    def __init__(self, threads_json: _Optional[bytes] = ..., has_more: _Optional[bool] = ..., next_after: _Optional[str] = ...) -> None: ...

class ListHostedItemsRequest(_message.Message):
    __slots__ = ("principal", "session_id", "thread_id", "limit", "after")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    session_id: str
    thread_id: str
    limit: int
    after: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., session_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., limit: _Optional[int] = ..., after: _Optional[str] = ...) -> None: ...

class ListHostedItemsResponse(_message.Message):
    __slots__ = ("items_json", "has_more", "next_after")
    ITEMS_JSON_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    NEXT_AFTER_FIELD_NUMBER: _ClassVar[int]
    items_json: bytes
    has_more: bool
    next_after: str
    def __init__(self, items_json: _Optional[bytes] = ..., has_more: _Optional[bool] = ..., next_after: _Optional[str] = ...) -> None: ...

class AttachThreadRequest(_message.Message):
    __slots__ = ("principal", "session_id", "thread_id")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    session_id: str
    thread_id: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., session_id: _Optional[str] = ..., thread_id: _Optional[str] = ...) -> None: ...

class CancelSessionRequest(_message.Message):
    __slots__ = ("principal", "session_id", "reason")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    session_id: str
    reason: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., session_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class EndSessionRequest(_message.Message):
    __slots__ = ("principal", "session_id")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    session_id: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., session_id: _Optional[str] = ...) -> None: ...

class SessionEvent(_message.Message):
    __slots__ = ("id", "session_id", "type", "actor_user_id", "payload_json", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: int
    session_id: str
    type: str
    actor_user_id: str
    payload_json: bytes
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., session_id: _Optional[str] = ..., type: _Optional[str] = ..., actor_user_id: _Optional[str] = ..., payload_json: _Optional[bytes] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecordEventRequest(_message.Message):
    __slots__ = ("principal", "session_id", "type", "payload_json")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    session_id: str
    type: str
    payload_json: bytes
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., session_id: _Optional[str] = ..., type: _Optional[str] = ..., payload_json: _Optional[bytes] = ...) -> None: ...

class ListEventsRequest(_message.Message):
    __slots__ = ("principal", "session_id", "limit", "after", "type")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    session_id: str
    limit: int
    after: int
    type: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., session_id: _Optional[str] = ..., limit: _Optional[int] = ..., after: _Optional[int] = ..., type: _Optional[str] = ...) -> None: ...

class ListEventsResponse(_message.Message):
    __slots__ = ("events", "has_more", "after")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[SessionEvent]
    has_more: bool
    after: int
    def __init__(self, events: _Optional[_Iterable[_Union[SessionEvent, _Mapping]]] = ..., has_more: _Optional[bool] = ..., after: _Optional[int] = ...) -> None: ...

class Escalation(_message.Message):
    __slots__ = ("id", "session_id", "thread_id", "user_id", "org_id", "reason", "status", "opened_by", "opened_at", "claimed_by", "claimed_at", "resolved_by", "resolved_at", "resolution")
    ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OPENED_BY_FIELD_NUMBER: _ClassVar[int]
    OPENED_AT_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_BY_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_AT_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_BY_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_AT_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    session_id: str
    thread_id: str
    user_id: str
    org_id: str
    reason: str
    status: EscalationStatus
    opened_by: str
    opened_at: _timestamp_pb2.Timestamp
    claimed_by: str
    claimed_at: _timestamp_pb2.Timestamp
    resolved_by: str
    resolved_at: _timestamp_pb2.Timestamp
    resolution: str
    def __init__(self, id: _Optional[str] = ..., session_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., user_id: _Optional[str] = ..., org_id: _Optional[str] = ..., reason: _Optional[str] = ..., status: _Optional[_Union[EscalationStatus, str]] = ..., opened_by: _Optional[str] = ..., opened_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., claimed_by: _Optional[str] = ..., claimed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resolved_by: _Optional[str] = ..., resolved_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resolution: _Optional[str] = ...) -> None: ...

class OpenEscalationRequest(_message.Message):
    __slots__ = ("principal", "session_id", "thread_id", "reason")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    session_id: str
    thread_id: str
    reason: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., session_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class GetEscalationRequest(_message.Message):
    __slots__ = ("principal", "escalation_id")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_ID_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    escalation_id: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., escalation_id: _Optional[str] = ...) -> None: ...

class ListEscalationsRequest(_message.Message):
    __slots__ = ("principal", "status", "session_id", "limit", "after")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    status: EscalationStatus
    session_id: str
    limit: int
    after: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., status: _Optional[_Union[EscalationStatus, str]] = ..., session_id: _Optional[str] = ..., limit: _Optional[int] = ..., after: _Optional[str] = ...) -> None: ...

class ListEscalationsResponse(_message.Message):
    __slots__ = ("escalations", "has_more", "after")
    ESCALATIONS_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    escalations: _containers.RepeatedCompositeFieldContainer[Escalation]
    has_more: bool
    after: str
    def __init__(self, escalations: _Optional[_Iterable[_Union[Escalation, _Mapping]]] = ..., has_more: _Optional[bool] = ..., after: _Optional[str] = ...) -> None: ...

class ClaimEscalationRequest(_message.Message):
    __slots__ = ("principal", "escalation_id")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_ID_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    escalation_id: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., escalation_id: _Optional[str] = ...) -> None: ...

class ResolveEscalationRequest(_message.Message):
    __slots__ = ("principal", "escalation_id", "resolution")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_ID_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    escalation_id: str
    resolution: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., escalation_id: _Optional[str] = ..., resolution: _Optional[str] = ...) -> None: ...

class GetMetricsRequest(_message.Message):
    __slots__ = ("principal", "since", "until")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Count(_message.Message):
    __slots__ = ("key", "count")
    KEY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    key: str
    count: int
    def __init__(self, key: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class DurationStats(_message.Message):
    __slots__ = ("count", "p50_seconds", "p90_seconds")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    P50_SECONDS_FIELD_NUMBER: _ClassVar[int]
    P90_SECONDS_FIELD_NUMBER: _ClassVar[int]
    count: int
    p50_seconds: float
    p90_seconds: float
    def __init__(self, count: _Optional[int] = ..., p50_seconds: _Optional[float] = ..., p90_seconds: _Optional[float] = ...) -> None: ...

class SessionMetrics(_message.Message):
    __slots__ = ("total_sessions", "by_status", "by_channel", "by_agent", "cancel_rate", "time_to_escalation", "time_to_claim", "time_to_resolution", "approvals", "rejections", "approvals_expired", "time_to_decision", "time_handled_by_human", "hand_backs", "handoff_timeouts")
    TOTAL_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    BY_STATUS_FIELD_NUMBER: _ClassVar[int]
    BY_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    BY_AGENT_FIELD_NUMBER: _ClassVar[int]
    CANCEL_RATE_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_ESCALATION_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_CLAIM_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_FIELD_NUMBER: _ClassVar[int]
    REJECTIONS_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_EXPIRED_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_DECISION_FIELD_NUMBER: _ClassVar[int]
    TIME_HANDLED_BY_HUMAN_FIELD_NUMBER: _ClassVar[int]
    HAND_BACKS_FIELD_NUMBER: _ClassVar[int]
    HANDOFF_TIMEOUTS_FIELD_NUMBER: _ClassVar[int]
    total_sessions: int
    by_status: _containers.RepeatedCompositeFieldContainer[Count]
    by_channel: _containers.RepeatedCompositeFieldContainer[Count]
    by_agent: _containers.RepeatedCompositeFieldContainer[Count]
    cancel_rate: float
    time_to_escalation: DurationStats
    time_to_claim: DurationStats
    time_to_resolution: DurationStats
    approvals: int
    rejections: int
    approvals_expired: int
    time_to_decision: DurationStats
    time_handled_by_human: DurationStats
    hand_backs: int
    handoff_timeouts: int
    def __init__(self, total_sessions: _Optional[int] = ..., by_status: _Optional[_Iterable[_Union[Count, _Mapping]]] = ..., by_channel: _Optional[_Iterable[_Union[Count, _Mapping]]] = ..., by_agent: _Optional[_Iterable[_Union[Count, _Mapping]]] = ..., cancel_rate: _Optional[float] = ..., time_to_escalation: _Optional[_Union[DurationStats, _Mapping]] = ..., time_to_claim: _Optional[_Union[DurationStats, _Mapping]] = ..., time_to_resolution: _Optional[_Union[DurationStats, _Mapping]] = ..., approvals: _Optional[int] = ..., rejections: _Optional[int] = ..., approvals_expired: _Optional[int] = ..., time_to_decision: _Optional[_Union[DurationStats, _Mapping]] = ..., time_handled_by_human: _Optional[_Union[DurationStats, _Mapping]] = ..., hand_backs: _Optional[int] = ..., handoff_timeouts: _Optional[int] = ...) -> None: ...

class WatchSessionsRequest(_message.Message):
    __slots__ = ("principal", "org", "session_id", "since")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ORG_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    org: bool
    session_id: str
    since: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., org: _Optional[bool] = ..., session_id: _Optional[str] = ..., since: _Optional[str] = ...) -> None: ...

class SessionChange(_message.Message):
    __slots__ = ("id", "type", "at", "session", "escalation")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    at: _timestamp_pb2.Timestamp
    session: Session
    escalation: Escalation
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., session: _Optional[_Union[Session, _Mapping]] = ..., escalation: _Optional[_Union[Escalation, _Mapping]] = ...) -> None: ...

class WebhookEndpoint(_message.Message):
    __slots__ = ("id", "org_id", "url", "secret", "event_types", "description", "created_by", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    org_id: str
    url: str
    secret: str
    event_types: _containers.RepeatedScalarFieldContainer[str]
    description: str
    created_by: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., org_id: _Optional[str] = ..., url: _Optional[str] = ..., secret: _Optional[str] = ..., event_types: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ..., created_by: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AddWebhookEndpointRequest(_message.Message):
    __slots__ = ("principal", "org_id", "url", "event_types", "description", "secret")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    org_id: str
    url: str
    event_types: _containers.RepeatedScalarFieldContainer[str]
    description: str
    secret: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., org_id: _Optional[str] = ..., url: _Optional[str] = ..., event_types: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ..., secret: _Optional[str] = ...) -> None: ...

class ListWebhookEndpointsRequest(_message.Message):
    __slots__ = ("principal", "org_id")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    org_id: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., org_id: _Optional[str] = ...) -> None: ...

class ListWebhookEndpointsResponse(_message.Message):
    __slots__ = ("endpoints",)
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    endpoints: _containers.RepeatedCompositeFieldContainer[WebhookEndpoint]
    def __init__(self, endpoints: _Optional[_Iterable[_Union[WebhookEndpoint, _Mapping]]] = ...) -> None: ...

class RemoveWebhookEndpointRequest(_message.Message):
    __slots__ = ("principal", "org_id", "endpoint_id")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    org_id: str
    endpoint_id: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., org_id: _Optional[str] = ..., endpoint_id: _Optional[str] = ...) -> None: ...

class RemoveWebhookEndpointResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TestWebhookEndpointRequest(_message.Message):
    __slots__ = ("principal", "org_id", "endpoint_id")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    org_id: str
    endpoint_id: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., org_id: _Optional[str] = ..., endpoint_id: _Optional[str] = ...) -> None: ...

class TestWebhookEndpointResponse(_message.Message):
    __slots__ = ("event_id",)
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    def __init__(self, event_id: _Optional[str] = ...) -> None: ...

class WebhookAttempt(_message.Message):
    __slots__ = ("attempted_at", "status_code", "error", "duration_ms")
    ATTEMPTED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    attempted_at: _timestamp_pb2.Timestamp
    status_code: int
    error: str
    duration_ms: int
    def __init__(self, attempted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status_code: _Optional[int] = ..., error: _Optional[str] = ..., duration_ms: _Optional[int] = ...) -> None: ...

class WebhookDelivery(_message.Message):
    __slots__ = ("endpoint_id", "event_id", "event_seq", "type", "status", "attempts", "next_attempt_at", "last_error", "delivered_at", "event_created_at", "attempt_list")
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_AT_FIELD_NUMBER: _ClassVar[int]
    EVENT_CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_LIST_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    event_id: str
    event_seq: int
    type: str
    status: str
    attempts: int
    next_attempt_at: _timestamp_pb2.Timestamp
    last_error: str
    delivered_at: _timestamp_pb2.Timestamp
    event_created_at: _timestamp_pb2.Timestamp
    attempt_list: _containers.RepeatedCompositeFieldContainer[WebhookAttempt]
    def __init__(self, endpoint_id: _Optional[str] = ..., event_id: _Optional[str] = ..., event_seq: _Optional[int] = ..., type: _Optional[str] = ..., status: _Optional[str] = ..., attempts: _Optional[int] = ..., next_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[str] = ..., delivered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., event_created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempt_list: _Optional[_Iterable[_Union[WebhookAttempt, _Mapping]]] = ...) -> None: ...

class ListWebhookDeliveriesRequest(_message.Message):
    __slots__ = ("principal", "org_id", "endpoint_id", "status", "before", "limit")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    org_id: str
    endpoint_id: str
    status: str
    before: int
    limit: int
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., org_id: _Optional[str] = ..., endpoint_id: _Optional[str] = ..., status: _Optional[str] = ..., before: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ListWebhookDeliveriesResponse(_message.Message):
    __slots__ = ("deliveries", "next_before")
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[WebhookDelivery]
    next_before: int
    def __init__(self, deliveries: _Optional[_Iterable[_Union[WebhookDelivery, _Mapping]]] = ..., next_before: _Optional[int] = ...) -> None: ...

class RedeliverWebhooksRequest(_message.Message):
    __slots__ = ("principal", "org_id", "endpoint_id", "event_id")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    org_id: str
    endpoint_id: str
    event_id: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., org_id: _Optional[str] = ..., endpoint_id: _Optional[str] = ..., event_id: _Optional[str] = ...) -> None: ...

class RedeliverWebhooksResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...
