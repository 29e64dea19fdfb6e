"""Nothing a client sends makes the server fail: every bad request gets a clear 4xx-class status."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from switchboard.api.v1 import common_pb2
from switchboard.api.v1 import session_api_pb2 as pb
from tests.session_api.conftest import RunningSessionApi

P = common_pb2.Principal(user_id="bad-input-user", org_id="bad-input-org")
OP = common_pb2.Principal(user_id="bad-input-op", org_id="bad-input-org", roles=["operator"])
NUL = "id\x00with-nul"

CASES: list[tuple[str, str, Any, grpc.StatusCode]] = [
    (
        "principal with NUL",
        "CreateSession",
        pb.CreateSessionRequest(principal=common_pb2.Principal(user_id=NUL)),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    ("no principal", "GetSession", pb.GetSessionRequest(session_id="s"), grpc.StatusCode.UNAUTHENTICATED),
    (
        "long user id",
        "ListSessions",
        pb.ListSessionsRequest(principal=common_pb2.Principal(user_id="u" * 300)),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "bad channel",
        "CreateSession",
        pb.CreateSessionRequest(principal=P, channel="fax"),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "bad agent id",
        "CreateSession",
        pb.CreateSessionRequest(principal=P, agent_id="a b"),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "metadata not an object",
        "CreateSession",
        pb.CreateSessionRequest(principal=P, metadata_json=b'"x"'),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "metadata too big",
        "CreateSession",
        pb.CreateSessionRequest(principal=P, metadata_json=b'{"a":"' + b"x" * 20000 + b'"}'),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ),
    (
        "thread id with NUL",
        "CreateSession",
        pb.CreateSessionRequest(principal=P, thread_id=NUL),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    ("empty session id", "GetSession", pb.GetSessionRequest(principal=P), grpc.StatusCode.INVALID_ARGUMENT),
    (
        "session id with NUL",
        "GetSession",
        pb.GetSessionRequest(principal=P, session_id=NUL),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "unknown session",
        "GetSession",
        pb.GetSessionRequest(principal=P, session_id="sess_nope"),
        grpc.StatusCode.NOT_FOUND,
    ),
    (
        "unknown status value",
        "ListSessions",
        pb.ListSessionsRequest(principal=P, status=42),  # type: ignore[arg-type]
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    ("negative limit", "ListSessions", pb.ListSessionsRequest(principal=P, limit=-1), grpc.StatusCode.INVALID_ARGUMENT),
    ("huge limit", "ListSessions", pb.ListSessionsRequest(principal=P, limit=10_000), grpc.StatusCode.INVALID_ARGUMENT),
    ("unknown cursor", "ListSessions", pb.ListSessionsRequest(principal=P, after="sess_nope"), grpc.StatusCode.OK),
    (
        "negative event cursor",
        "ListEvents",
        pb.ListEventsRequest(principal=P, session_id="s", after=-5),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "unknown escalation status",
        "ListEscalations",
        pb.ListEscalationsRequest(principal=OP, status=9),  # type: ignore[arg-type]
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "unknown escalation",
        "ClaimEscalation",
        pb.ClaimEscalationRequest(principal=OP, escalation_id="esc_nope"),
        grpc.StatusCode.NOT_FOUND,
    ),
    ("empty escalation id", "GetEscalation", pb.GetEscalationRequest(principal=OP), grpc.StatusCode.INVALID_ARGUMENT),
    (
        "resolution too long",
        "ResolveEscalation",
        pb.ResolveEscalationRequest(principal=OP, escalation_id="e", resolution="x" * 3000),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "metrics window reversed",
        "GetMetrics",
        pb.GetMetricsRequest(principal=OP, since={"seconds": 2_000_000_000}, until={"seconds": 1_000_000_000}),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "metrics time out of range",
        "GetMetrics",
        pb.GetMetricsRequest(principal=OP, since={"seconds": 10**12}),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "token of binary junk",
        "Authenticate",
        pb.AuthenticateRequest(token="\u00ff" * 50 + ".a.b"),
        grpc.StatusCode.UNAUTHENTICATED,
    ),
]


@pytest.mark.parametrize(("case", "method", "request_message", "expected"), CASES, ids=[c[0] for c in CASES])
async def test_bad_requests_get_a_clear_status_never_internal(
    session_api: RunningSessionApi, case: str, method: str, request_message: Any, expected: grpc.StatusCode
) -> None:
    stub = session_api.client.stub  # authenticated as a service: the body is what is bad
    call: Callable[..., Awaitable[Any]] = getattr(stub, method)
    try:
        await call(request_message, timeout=10)
        code = grpc.StatusCode.OK
        details = ""
    except grpc.aio.AioRpcError as error:
        code, details = error.code(), error.details() or ""
    assert code == expected, f"{case}: {code} {details}"
    assert "internal" not in details.lower()
