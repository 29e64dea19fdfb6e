import datetime

from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from switchboard.api.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ThreadSort(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    THREAD_SORT_UNSPECIFIED: _ClassVar[ThreadSort]
    THREAD_SORT_CREATED_AT: _ClassVar[ThreadSort]
    THREAD_SORT_RECENT_ACTIVITY: _ClassVar[ThreadSort]
THREAD_SORT_UNSPECIFIED: ThreadSort
THREAD_SORT_CREATED_AT: ThreadSort
THREAD_SORT_RECENT_ACTIVITY: ThreadSort

class Thread(_message.Message):
    __slots__ = ("id", "user_id", "org_id", "scope", "title", "status", "json", "created_at", "updated_at", "revision", "handler")
    ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    id: str
    user_id: str
    org_id: str
    scope: str
    title: str
    status: str
    json: bytes
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    revision: int
    handler: Handler
    def __init__(self, id: _Optional[str] = ..., user_id: _Optional[str] = ..., org_id: _Optional[str] = ..., scope: _Optional[str] = ..., title: _Optional[str] = ..., status: _Optional[str] = ..., json: _Optional[bytes] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revision: _Optional[int] = ..., handler: _Optional[_Union[Handler, _Mapping]] = ...) -> None: ...

class Handler(_message.Message):
    __slots__ = ("kind", "operator_id", "escalation_id", "since", "until")
    KIND_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_ID_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    kind: str
    operator_id: str
    escalation_id: str
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    def __init__(self, kind: _Optional[str] = ..., operator_id: _Optional[str] = ..., escalation_id: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ThreadItem(_message.Message):
    __slots__ = ("id", "thread_id", "type", "json", "created_at", "author")
    ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    id: str
    thread_id: str
    type: str
    json: bytes
    created_at: _timestamp_pb2.Timestamp
    author: str
    def __init__(self, id: _Optional[str] = ..., thread_id: _Optional[str] = ..., type: _Optional[str] = ..., json: _Optional[bytes] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., author: _Optional[str] = ...) -> None: ...

class Attachment(_message.Message):
    __slots__ = ("id", "thread_id", "mime_type", "json", "created_at", "has_content", "content")
    ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    HAS_CONTENT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    id: str
    thread_id: str
    mime_type: str
    json: bytes
    created_at: _timestamp_pb2.Timestamp
    has_content: bool
    content: bytes
    def __init__(self, id: _Optional[str] = ..., thread_id: _Optional[str] = ..., mime_type: _Optional[str] = ..., json: _Optional[bytes] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., has_content: _Optional[bool] = ..., content: _Optional[bytes] = ...) -> None: ...

class GetThreadRequest(_message.Message):
    __slots__ = ("principal", "thread_id")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    thread_id: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., thread_id: _Optional[str] = ...) -> None: ...

class SaveThreadRequest(_message.Message):
    __slots__ = ("principal", "thread_json", "scope")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    THREAD_JSON_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    thread_json: bytes
    scope: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., thread_json: _Optional[bytes] = ..., scope: _Optional[str] = ...) -> None: ...

class ListThreadsRequest(_message.Message):
    __slots__ = ("principal", "limit", "after", "order", "sort", "scope", "org_wide")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    SORT_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    ORG_WIDE_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    limit: int
    after: str
    order: _common_pb2.SortOrder
    sort: ThreadSort
    scope: str
    org_wide: bool
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., limit: _Optional[int] = ..., after: _Optional[str] = ..., order: _Optional[_Union[_common_pb2.SortOrder, str]] = ..., sort: _Optional[_Union[ThreadSort, str]] = ..., scope: _Optional[str] = ..., org_wide: _Optional[bool] = ...) -> None: ...

class ListThreadsResponse(_message.Message):
    __slots__ = ("threads", "has_more", "after")
    THREADS_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    threads: _containers.RepeatedCompositeFieldContainer[Thread]
    has_more: bool
    after: str
    def __init__(self, threads: _Optional[_Iterable[_Union[Thread, _Mapping]]] = ..., has_more: _Optional[bool] = ..., after: _Optional[str] = ...) -> None: ...

class DeleteThreadRequest(_message.Message):
    __slots__ = ("principal", "thread_id")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    thread_id: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., thread_id: _Optional[str] = ...) -> None: ...

class WriteItemRequest(_message.Message):
    __slots__ = ("principal", "thread_id", "item_json")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_JSON_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    thread_id: str
    item_json: bytes
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., thread_id: _Optional[str] = ..., item_json: _Optional[bytes] = ...) -> None: ...

class GetItemRequest(_message.Message):
    __slots__ = ("principal", "thread_id", "item_id")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    thread_id: str
    item_id: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., thread_id: _Optional[str] = ..., item_id: _Optional[str] = ...) -> None: ...

class ListItemsRequest(_message.Message):
    __slots__ = ("principal", "thread_id", "limit", "after", "order", "if_none_match")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    IF_NONE_MATCH_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    thread_id: str
    limit: int
    after: str
    order: _common_pb2.SortOrder
    if_none_match: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., thread_id: _Optional[str] = ..., limit: _Optional[int] = ..., after: _Optional[str] = ..., order: _Optional[_Union[_common_pb2.SortOrder, str]] = ..., if_none_match: _Optional[str] = ...) -> None: ...

class ListItemsResponse(_message.Message):
    __slots__ = ("items", "has_more", "after", "version", "not_modified")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NOT_MODIFIED_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ThreadItem]
    has_more: bool
    after: str
    version: str
    not_modified: bool
    def __init__(self, items: _Optional[_Iterable[_Union[ThreadItem, _Mapping]]] = ..., has_more: _Optional[bool] = ..., after: _Optional[str] = ..., version: _Optional[str] = ..., not_modified: _Optional[bool] = ...) -> None: ...

class DeleteItemRequest(_message.Message):
    __slots__ = ("principal", "thread_id", "item_id")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    thread_id: str
    item_id: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., thread_id: _Optional[str] = ..., item_id: _Optional[str] = ...) -> None: ...

class BeginTurnRequest(_message.Message):
    __slots__ = ("principal", "thread_id", "create_thread_json", "scope", "user_message_json", "retry_after_item_id", "session_id", "title_if_empty", "history_limit")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_THREAD_JSON_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    USER_MESSAGE_JSON_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_IF_EMPTY_FIELD_NUMBER: _ClassVar[int]
    HISTORY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    thread_id: str
    create_thread_json: bytes
    scope: str
    user_message_json: bytes
    retry_after_item_id: str
    session_id: str
    title_if_empty: str
    history_limit: int
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., thread_id: _Optional[str] = ..., create_thread_json: _Optional[bytes] = ..., scope: _Optional[str] = ..., user_message_json: _Optional[bytes] = ..., retry_after_item_id: _Optional[str] = ..., session_id: _Optional[str] = ..., title_if_empty: _Optional[str] = ..., history_limit: _Optional[int] = ...) -> None: ...

class BeginTurnResponse(_message.Message):
    __slots__ = ("thread", "items")
    THREAD_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    thread: Thread
    items: _containers.RepeatedCompositeFieldContainer[ThreadItem]
    def __init__(self, thread: _Optional[_Union[Thread, _Mapping]] = ..., items: _Optional[_Iterable[_Union[ThreadItem, _Mapping]]] = ...) -> None: ...

class SaveAttachmentRequest(_message.Message):
    __slots__ = ("principal", "attachment_json", "set_content", "content")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENT_JSON_FIELD_NUMBER: _ClassVar[int]
    SET_CONTENT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    attachment_json: bytes
    set_content: bool
    content: bytes
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., attachment_json: _Optional[bytes] = ..., set_content: _Optional[bool] = ..., content: _Optional[bytes] = ...) -> None: ...

class GetAttachmentRequest(_message.Message):
    __slots__ = ("principal", "attachment_id", "include_content")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENT_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_CONTENT_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    attachment_id: str
    include_content: bool
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., attachment_id: _Optional[str] = ..., include_content: _Optional[bool] = ...) -> None: ...

class DeleteAttachmentRequest(_message.Message):
    __slots__ = ("principal", "attachment_id")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENT_ID_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    attachment_id: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., attachment_id: _Optional[str] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("principal", "thread_id", "org", "since")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    ORG_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    thread_id: str
    org: bool
    since: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., thread_id: _Optional[str] = ..., org: _Optional[bool] = ..., since: _Optional[str] = ...) -> None: ...

class ChangeEvent(_message.Message):
    __slots__ = ("id", "type", "thread_id", "item_id", "user_id", "org_id", "revision", "at", "json")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ORG_ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    thread_id: str
    item_id: str
    user_id: str
    org_id: str
    revision: int
    at: _timestamp_pb2.Timestamp
    json: bytes
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., thread_id: _Optional[str] = ..., item_id: _Optional[str] = ..., user_id: _Optional[str] = ..., org_id: _Optional[str] = ..., revision: _Optional[int] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., json: _Optional[bytes] = ...) -> None: ...

class SetHandlerRequest(_message.Message):
    __slots__ = ("principal", "thread_id", "kind", "escalation_id", "waiting_seconds", "expect_kind")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_ID_FIELD_NUMBER: _ClassVar[int]
    WAITING_SECONDS_FIELD_NUMBER: _ClassVar[int]
    EXPECT_KIND_FIELD_NUMBER: _ClassVar[int]
    principal: _common_pb2.Principal
    thread_id: str
    kind: str
    escalation_id: str
    waiting_seconds: int
    expect_kind: str
    def __init__(self, principal: _Optional[_Union[_common_pb2.Principal, _Mapping]] = ..., thread_id: _Optional[str] = ..., kind: _Optional[str] = ..., escalation_id: _Optional[str] = ..., waiting_seconds: _Optional[int] = ..., expect_kind: _Optional[str] = ...) -> None: ...

class ExpireWaitingRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class ExpireWaitingResponse(_message.Message):
    __slots__ = ("threads",)
    THREADS_FIELD_NUMBER: _ClassVar[int]
    threads: _containers.RepeatedCompositeFieldContainer[Thread]
    def __init__(self, threads: _Optional[_Iterable[_Union[Thread, _Mapping]]] = ...) -> None: ...
