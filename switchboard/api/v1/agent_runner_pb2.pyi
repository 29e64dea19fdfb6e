import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from switchboard.api.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Handoff(_message.Message):
    __slots__ = ("thread_id", "kind", "operator_id", "escalation_id", "since", "until", "session_id")
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_ID_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    thread_id: str
    kind: str
    operator_id: str
    escalation_id: str
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    session_id: str
    def __init__(self, thread_id: _Optional[str] = ..., kind: _Optional[str] = ..., operator_id: _Optional[str] = ..., escalation_id: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., session_id: _Optional[str] = ...) -> None: ...

class EscalateRequest(_message.Message):
    __slots__ = ("principal", "thread_id", "reason")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    thread_id: str
    reason: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., thread_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class TakeOverRequest(_message.Message):
    __slots__ = ("principal", "thread_id", "escalation_id")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_ID_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    thread_id: str
    escalation_id: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., thread_id: _Optional[str] = ..., escalation_id: _Optional[str] = ...) -> None: ...

class OperatorMessageRequest(_message.Message):
    __slots__ = ("principal", "thread_id", "text")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    thread_id: str
    text: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., thread_id: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class OperatorMessage(_message.Message):
    __slots__ = ("item_json",)
    ITEM_JSON_FIELD_NUMBER: _ClassVar[int]
    item_json: bytes
    def __init__(self, item_json: _Optional[bytes] = ...) -> None: ...

class HandBackRequest(_message.Message):
    __slots__ = ("principal", "thread_id", "resolution")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    thread_id: str
    resolution: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., thread_id: _Optional[str] = ..., resolution: _Optional[str] = ...) -> None: ...

class RunRequest(_message.Message):
    __slots__ = ("principal", "thread_id", "user_message_json", "retry_after_item_id", "continue_thread", "approval", "agent_id", "run_id", "create_thread_json", "scope")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    USER_MESSAGE_JSON_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    CONTINUE_THREAD_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_THREAD_JSON_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    thread_id: str
    user_message_json: bytes
    retry_after_item_id: str
    continue_thread: bool
    approval: ApprovalDecision
    agent_id: str
    run_id: str
    create_thread_json: bytes
    scope: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., thread_id: _Optional[str] = ..., user_message_json: _Optional[bytes] = ..., retry_after_item_id: _Optional[str] = ..., continue_thread: _Optional[bool] = ..., approval: _Optional[_Union[ApprovalDecision, _Mapping]] = ..., agent_id: _Optional[str] = ..., run_id: _Optional[str] = ..., create_thread_json: _Optional[bytes] = ..., scope: _Optional[str] = ...) -> None: ...

class ApprovalDecision(_message.Message):
    __slots__ = ("card_id", "approve", "answer")
    CARD_ID_FIELD_NUMBER: _ClassVar[int]
    APPROVE_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    card_id: str
    approve: bool
    answer: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, card_id: _Optional[str] = ..., approve: _Optional[bool] = ..., answer: _Optional[_Iterable[str]] = ...) -> None: ...

class RunEvents(_message.Message):
    __slots__ = ("run_id", "events_json", "first_seq", "status")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_JSON_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEQ_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    events_json: _containers.RepeatedScalarFieldContainer[bytes]
    first_seq: int
    status: str
    def __init__(self, run_id: _Optional[str] = ..., events_json: _Optional[_Iterable[bytes]] = ..., first_seq: _Optional[int] = ..., status: _Optional[str] = ...) -> None: ...

class JoinRequest(_message.Message):
    __slots__ = ("principal", "thread_id", "run_id", "after_seq")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    thread_id: str
    run_id: str
    after_seq: int
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., thread_id: _Optional[str] = ..., run_id: _Optional[str] = ..., after_seq: _Optional[int] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("principal", "run_id", "thread_id", "session_id")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    run_id: str
    thread_id: str
    session_id: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., run_id: _Optional[str] = ..., thread_id: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class CancelResponse(_message.Message):
    __slots__ = ("run_ids",)
    RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    run_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, run_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("principal", "run_id")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    run_id: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., run_id: _Optional[str] = ...) -> None: ...

class RunInfo(_message.Message):
    __slots__ = ("id", "thread_id", "user_id", "org_id", "session_id", "agent_id", "status", "error", "holder", "lease_expires_at", "created_at", "started_at", "ended_at", "last_seq", "input_item_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    INPUT_ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    thread_id: str
    user_id: str
    org_id: str
    session_id: str
    agent_id: str
    status: str
    error: str
    holder: str
    lease_expires_at: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    ended_at: _timestamp_pb2.Timestamp
    last_seq: int
    input_item_id: str
    def __init__(self, id: _Optional[str] = ..., thread_id: _Optional[str] = ..., user_id: _Optional[str] = ..., org_id: _Optional[str] = ..., session_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., status: _Optional[str] = ..., error: _Optional[str] = ..., holder: _Optional[str] = ..., lease_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ended_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seq: _Optional[int] = ..., input_item_id: _Optional[str] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("principal", "thread_id", "limit", "after")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    thread_id: str
    limit: int
    after: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., thread_id: _Optional[str] = ..., limit: _Optional[int] = ..., after: _Optional[str] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs", "has_more", "after")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[RunInfo]
    has_more: bool
    after: str
    def __init__(self, runs: _Optional[_Iterable[_Union[RunInfo, _Mapping]]] = ..., has_more: _Optional[bool] = ..., after: _Optional[str] = ...) -> None: ...
