from switchboard.api.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunRequest(_message.Message):
    __slots__ = ("principal", "thread_id", "user_message_json", "retry_after_item_id", "inference_options_json", "agent_id", "run_id")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    USER_MESSAGE_JSON_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_OPTIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    thread_id: str
    user_message_json: bytes
    retry_after_item_id: str
    inference_options_json: bytes
    agent_id: str
    run_id: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., thread_id: _Optional[str] = ..., user_message_json: _Optional[bytes] = ..., retry_after_item_id: _Optional[str] = ..., inference_options_json: _Optional[bytes] = ..., agent_id: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class RunEvents(_message.Message):
    __slots__ = ("run_id", "events_json")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_JSON_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    events_json: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, run_id: _Optional[str] = ..., events_json: _Optional[_Iterable[bytes]] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("principal", "run_id")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    run_id: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., run_id: _Optional[str] = ...) -> None: ...

class CancelResponse(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...
