"""Hostile input, generated: nothing a client sends gets a 5xx from the edge, and nothing a
caller sends gets INTERNAL or UNKNOWN from a gRPC service.

Hypothesis with a fixed seed (``derandomize``) and a bounded budget, so the suite stays
deterministic and under a minute; the stack runs as processes.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote

import grpc
import httpx
import pytest
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switchboard.api.v1 import agent_runner_pb2, common_pb2, session_api_pb2, thread_store_pb2
from switchboard.api.v1.agent_runner_pb2_grpc import AgentRunnerStub
from switchboard.api.v1.session_api_pb2_grpc import SessionApiStub
from switchboard.api.v1.thread_store_pb2_grpc import ThreadStoreStub
from tests.e2e.conftest import Stack, bearer, service_metadata

FUZZ = settings(
    max_examples=120,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
CHATKIT_TYPES = [
    "threads.create",
    "threads.add_user_message",
    "threads.get_by_id",
    "threads.list",
    "threads.update",
    "threads.delete",
    "threads.retry_after_item",
    "threads.custom_action",
    "threads.sync_custom_action",
    "threads.add_client_tool_output",
    "threads.add_structured_input",
    "items.list",
    "items.feedback",
    "attachments.create",
    "attachments.delete",
    "input.transcribe",
    "nonsense",
]
# Text a hostile client likes: NULs, lone surrogates, control characters, huge numbers in strings.
HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["\x00", "a\x00b", "\ud800", "9999-12-31T23:59:59.999999", "0001-01-01T00:00:00+14:00", "../..", "%00"]
    ),
)
JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    HOSTILE_TEXT,
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(HOSTILE_TEXT, children, max_size=4),
    max_leaves=12,
)
PARAMS = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries(
        {},
        optional={
            "thread_id": HOSTILE_TEXT,
            "item_id": HOSTILE_TEXT,
            "limit": JSON_LEAVES,
            "after": HOSTILE_TEXT,
            "order": HOSTILE_TEXT,
            "input": st.fixed_dictionaries(
                {
                    "content": st.lists(
                        st.fixed_dictionaries({"type": st.just("input_text"), "text": HOSTILE_TEXT}), max_size=2
                    ),
                    "attachments": st.lists(HOSTILE_TEXT, max_size=2),
                    "inference_options": st.just({}),
                }
            ),
            "action": st.fixed_dictionaries({"type": HOSTILE_TEXT, "payload": JSON_VALUES}),
            "name": HOSTILE_TEXT,
            "size": JSON_LEAVES,
            "mime_type": HOSTILE_TEXT,
        },
    ),
)


def _wire(text: str) -> str:
    """Text as it can travel in a URL or header (a lone surrogate cannot be encoded at all)."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _post(client: httpx.Client, token: str, body: bytes) -> httpx.Response:
    with client.stream("POST", "/chatkit", content=body, headers=bearer(token)) as reply:
        reply.read()
        return reply


@FUZZ
@given(kind=st.sampled_from(CHATKIT_TYPES), params=PARAMS, raw=st.booleans())
def test_no_chatkit_request_gets_a_5xx(stack: Stack, kind: str, params: Any, raw: bool) -> None:
    token = stack.token(f"fuzz-{uuid.uuid4().hex[:8]}")
    body = json.dumps({"type": kind, "params": params}, allow_nan=True).encode()
    if raw:  # the same bytes, cut short: malformed JSON
        body = body[: max(1, len(body) // 2)]
    with httpx.Client(base_url=stack.edge, timeout=30) as client:
        reply = _post(client, token, body)
    assert reply.status_code < 500, (reply.status_code, body[:200], reply.text[:300])


@FUZZ
@given(
    path=st.sampled_from(
        [
            "/api/conversations",
            "/api/conversations/{x}/messages",
            "/api/threads/{x}/runs",
            "/chatkit/threads/{x}/stream",
            "/chatkit/sessions/{x}",
            "/chatkit/attachments/{x}",
        ]
    ),
    segment=HOSTILE_TEXT,
    query=st.dictionaries(st.sampled_from(["limit", "after", "order", "scope"]), HOSTILE_TEXT, max_size=3),
    last_event_id=st.one_of(st.none(), HOSTILE_TEXT),
)
def test_no_rest_read_gets_a_5xx(
    stack: Stack, path: str, segment: str, query: dict[str, str], last_event_id: str | None
) -> None:
    token = stack.token(f"fuzz-{uuid.uuid4().hex[:8]}")
    url = path.replace("{x}", quote(_wire(segment), safe="") or "x")
    headers = bearer(token)
    if last_event_id is not None and _wire(last_event_id).isprintable() and last_event_id.isascii():
        headers["Last-Event-ID"] = last_event_id
    query = {key: _wire(value) for key, value in query.items()}
    with httpx.Client(base_url=stack.edge, timeout=30) as client:
        reply = client.get(url, params=query, headers=headers)
    assert reply.status_code < 500, (reply.status_code, url, query, reply.text[:300])


@FUZZ
@given(
    body=JSON_VALUES,
    path=st.sampled_from(
        [
            "/chatkit/sessions",
            "/chatkit/sessions/{x}/events",
            "/chatkit/sessions/{x}/cancel",
            "/chatkit/threads/{x}/cancel",
        ]
    ),
)
def test_no_rest_write_gets_a_5xx(stack: Stack, body: Any, path: str) -> None:
    token = stack.token(f"fuzz-{uuid.uuid4().hex[:8]}")
    content = json.dumps(body, allow_nan=True).encode()
    with httpx.Client(base_url=stack.edge, timeout=30) as client:
        reply = client.post(path.replace("{x}", "sess_fuzz"), content=content, headers=bearer(token))
    assert reply.status_code < 500, (reply.status_code, path, content[:200], reply.text[:300])


def _fill(message: Any, draw: Any, depth: int = 0) -> Any:
    """Set every field of a request message from hostile values (principals mostly valid)."""
    for field in message.DESCRIPTOR.fields:
        if field.message_type is not None:
            if field.message_type.full_name == common_pb2.Principal.DESCRIPTOR.full_name:
                user = draw(st.one_of(st.just("fuzz-user"), HOSTILE_TEXT))
                getattr(message, field.name).CopyFrom(common_pb2.Principal(user_id=user.replace("\ud800", "?")))
            elif depth < 2 and not field.is_repeated and draw(st.booleans()):
                _fill(getattr(message, field.name), draw, depth + 1)
            continue
        if field.is_repeated:
            continue
        if field.type == FieldDescriptor.TYPE_STRING:
            setattr(message, field.name, draw(HOSTILE_TEXT).encode("utf-8", "replace").decode("utf-8"))
        elif field.type == FieldDescriptor.TYPE_BYTES:
            value = draw(
                st.one_of(st.binary(max_size=64), JSON_VALUES.map(lambda v: json.dumps(v, allow_nan=True).encode()))
            )
            setattr(message, field.name, value)
        elif field.type == FieldDescriptor.TYPE_BOOL:
            setattr(message, field.name, draw(st.booleans()))
        elif field.type in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_ENUM):
            setattr(message, field.name, draw(st.integers(min_value=-5, max_value=2000)))
        elif field.type in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64):
            setattr(message, field.name, draw(st.integers(min_value=0, max_value=2**40)))
    return message


UNARY = (
    [
        ("thread_store", ThreadStoreStub, name, getattr(thread_store_pb2, method.input_type.name))
        for name, method in thread_store_pb2.DESCRIPTOR.services_by_name["ThreadStore"].methods_by_name.items()
        if not method.server_streaming
    ]
    + [
        ("session_api", SessionApiStub, name, getattr(session_api_pb2, method.input_type.name))
        for name, method in session_api_pb2.DESCRIPTOR.services_by_name["SessionApi"].methods_by_name.items()
        if not method.server_streaming
    ]
    + [
        ("agent_runner", AgentRunnerStub, name, getattr(agent_runner_pb2, method.input_type.name))
        for name, method in agent_runner_pb2.DESCRIPTOR.services_by_name["AgentRunner"].methods_by_name.items()
        if not method.server_streaming
    ]
)


@settings(FUZZ, max_examples=200)
@given(call=st.sampled_from(UNARY), data=st.data())
def test_no_grpc_request_gets_internal_or_unknown(stack: Stack, call: tuple[Any, ...], data: st.DataObject) -> None:
    service, stub_class, method, request_class = call
    request = _fill(request_class(), data.draw)
    with grpc.insecure_channel(f"127.0.0.1:{stack.ports[service]}") as channel:
        try:
            # As a service that may call anything: the request itself is what is fuzzed.
            getattr(stub_class(channel), method)(request, timeout=10, metadata=service_metadata(service))
        except grpc.RpcError as error:
            code = error.code()  # type: ignore[attr-defined]
            # DEADLINE_EXCEEDED is a hang, which no input may cause either.
            assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED), (
                service,
                method,
                str(request)[:300],
                error.details(),  # type: ignore[attr-defined]
            )


# A string field (2: thread_id, session_id, run_id...) holding bytes that are not UTF-8: protobuf refuses
# to parse it, and the caller must hear INVALID_ARGUMENT, not INTERNAL or UNKNOWN.
NOT_UTF8 = b"\x12\x02\xff\xfe"


@pytest.mark.parametrize(
    ("service", "path"),
    [
        ("thread_store", "/switchboard.api.v1.ThreadStore/GetThread"),
        ("thread_store", "/switchboard.api.v1.ThreadStore/Watch"),
        ("session_api", "/switchboard.api.v1.SessionApi/GetSession"),
        ("agent_runner", "/switchboard.api.v1.AgentRunner/GetRun"),
        ("agent_runner", "/switchboard.api.v1.AgentRunner/Join"),
    ],
)
def test_a_request_that_is_not_valid_protobuf_is_invalid_argument(stack: Stack, service: str, path: str) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{stack.ports[service]}") as channel:
        streaming = path.endswith(("/Watch", "/Join"))
        make = channel.unary_stream if streaming else channel.unary_unary
        call = make(path, request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw)
        with pytest.raises(grpc.RpcError) as refused:
            reply = call(NOT_UTF8, timeout=10, metadata=service_metadata(service))
            if streaming:
                list(reply)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value  # type: ignore[attr-defined]


STREAMING = [
    ("thread_store", ThreadStoreStub, "Watch", thread_store_pb2.WatchRequest),
    ("session_api", SessionApiStub, "Watch", session_api_pb2.WatchSessionsRequest),
    ("agent_runner", AgentRunnerStub, "Run", agent_runner_pb2.RunRequest),
    ("agent_runner", AgentRunnerStub, "Join", agent_runner_pb2.JoinRequest),
]


@settings(FUZZ, max_examples=60)
@given(call=st.sampled_from(STREAMING), data=st.data())
def test_no_streaming_request_gets_internal_unknown_or_hangs_before_it_starts(
    stack: Stack, call: tuple[Any, ...], data: st.DataObject
) -> None:
    service, stub_class, method, request_class = call
    request = _fill(request_class(), data.draw)
    started = False
    with grpc.insecure_channel(f"127.0.0.1:{stack.ports[service]}") as channel:
        replies = getattr(stub_class(channel), method)(request, timeout=5, metadata=service_metadata(service))
        try:
            for _reply in replies:
                started = True  # a live feed may go on: its first message shows it was accepted
                break
        except grpc.RpcError as error:
            code = error.code()  # type: ignore[attr-defined]
            assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (method, error.details())  # type: ignore[attr-defined]
            # A deadline is a hang unless the stream had started (a feed waiting for changes).
            assert code != grpc.StatusCode.DEADLINE_EXCEEDED or started, (method, str(request)[:300])
        finally:
            replies.cancel()
