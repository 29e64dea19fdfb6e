"""Every gRPC service verifies who calls it: table-driven refusals and acceptances per service,
against the running stack (authentication on, as ``switchboard up`` always runs it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from switchboard.api.v1 import agent_runner_pb2, common_pb2, session_api_pb2, thread_store_pb2
from switchboard.api.v1.agent_runner_pb2_grpc import AgentRunnerStub
from switchboard.api.v1.session_api_pb2_grpc import SessionApiStub
from switchboard.api.v1.thread_store_pb2_grpc import ThreadStoreStub
from switchboard.principal import Principal
from switchboard.service_auth import SERVICE_KEY_ID, mint_service_token
from tests.conftest import INTERNAL_SECRET
from tests.e2e.conftest import Stack, create_request, new_user, stream_events

ORG = "e2e"
OK = grpc.StatusCode.OK
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED


@dataclass(frozen=True)
class World:
    """Alice, who has a thread, and Bob, who is someone else."""

    stack: Stack
    alice: str
    bob: str
    thread_id: str


@pytest.fixture(scope="module")
def world(stack: Stack) -> World:
    import asyncio

    alice, bob = new_user(), new_user()

    async def first_thread() -> str:
        async with httpx.AsyncClient(base_url=stack.edge, timeout=30) as http:
            events = await stream_events(http, stack.token(alice), create_request("hello"))
        return events[0].thread.id  # type: ignore[union-attr]

    return World(stack, alice, bob, asyncio.run(first_thread()))


def _principal(user_id: str, *, roles: tuple[str, ...] = (), org: str = ORG) -> common_pb2.Principal:
    return common_pb2.Principal(user_id=user_id, org_id=org, roles=list(roles))


# One read per service: (stub class, method, request for a body principal (None: no principal field)).
Call = tuple[Any, str, Callable[[World, common_pb2.Principal | None], Any]]
CALLS: dict[str, Call] = {
    "thread_store": (
        ThreadStoreStub,
        "ListThreads",
        lambda w, p: thread_store_pb2.ListThreadsRequest(principal=p) if p else thread_store_pb2.ListThreadsRequest(),
    ),
    "session_api": (
        SessionApiStub,
        "ListEscalations",
        lambda w, p: (
            session_api_pb2.ListEscalationsRequest(principal=p) if p else session_api_pb2.ListEscalationsRequest()
        ),
    ),
    "agent_runner": (
        AgentRunnerStub,
        "ListRuns",
        lambda w, p: (
            agent_runner_pb2.ListRunsRequest(principal=p, thread_id=w.thread_id)
            if p
            else agent_runner_pb2.ListRunsRequest(thread_id=w.thread_id)
        ),
    ),
}
# A scope that is not the one the call needs, per service.
OTHER_SCOPE = {"thread_store": "runs:read", "session_api": "threads:read", "agent_runner": "sessions:read"}
ANOTHER_AUDIENCE = {"thread_store": "session_api", "session_api": "agent_runner", "agent_runner": "thread_store"}


def _service_token(audience: str, *, secret: str = INTERNAL_SECRET, **kwargs: Any) -> str:
    token, _ = mint_service_token(secret.encode(), audience=audience, service="billing-worker", **kwargs)
    return token


def _as(w: World, user: str, **kwargs: Any) -> Principal:
    return Principal(user_id=user, org_id=ORG, **kwargs)


@dataclass(frozen=True)
class Case:
    """One way to call: the authorization metadata value (None: none), the body's principal, the status."""

    name: str
    authorization: Callable[[World, str], str | None]
    body: Callable[[World], common_pb2.Principal | None]
    expected: grpc.StatusCode


CASES = [
    Case("no credentials", lambda w, s: None, lambda w: _principal(w.alice), UNAUTHENTICATED),
    Case("garbage", lambda w, s: "Bearer not-a-token", lambda w: _principal(w.alice), UNAUTHENTICATED),
    Case("not a bearer", lambda w, s: "Basic YWxpY2U6c2VjcmV0", lambda w: _principal(w.alice), UNAUTHENTICATED),
    Case(
        "expired service token",
        lambda w, s: "Bearer " + _service_token(s, principal=_as(w, w.alice), seconds=-120),
        lambda w: _principal(w.alice),
        UNAUTHENTICATED,
    ),
    Case(
        "forged service token (another key)",
        lambda w, s: "Bearer " + _service_token(s, secret="x" * 48, principal=_as(w, w.alice)),
        lambda w: _principal(w.alice),
        UNAUTHENTICATED,
    ),
    Case(
        "unsigned service token (alg none)",
        lambda w, s: (
            "Bearer "
            + jwt.encode(
                {"iss": "switchboard", "aud": s, "svc": "x", "sub": w.alice, "iat": 0, "exp": 2**31},
                None,  # type: ignore[arg-type]
                algorithm="none",
                headers={"kid": SERVICE_KEY_ID},
            )
        ),
        lambda w: _principal(w.alice),
        UNAUTHENTICATED,
    ),
    Case(
        "service token for another audience",
        lambda w, s: "Bearer " + _service_token(ANOTHER_AUDIENCE[s], principal=_as(w, w.alice)),
        lambda w: _principal(w.alice),
        UNAUTHENTICATED,
    ),
    Case(
        "expired user token",
        lambda w, s: "Bearer " + w.stack.token(w.alice, ttl=-300),
        lambda w: _principal(w.alice),
        UNAUTHENTICATED,
    ),
    Case(
        "a user's token for another user's data",
        lambda w, s: "Bearer " + w.stack.token(w.alice),
        lambda w: _principal(w.bob),
        DENIED,
    ),
    Case(
        "operator role smuggled in the body",
        lambda w, s: "Bearer " + w.stack.token(w.alice),
        lambda w: _principal(w.alice, roles=("operator",)),
        DENIED,
    ),
    Case(
        "another org smuggled in the body",
        lambda w, s: "Bearer " + w.stack.token(w.alice),
        lambda w: _principal(w.alice, org="other-org"),
        DENIED,
    ),
    Case(
        "a token acting for one user, a body naming another",
        lambda w, s: "Bearer " + _service_token(s, principal=_as(w, w.alice)),
        lambda w: _principal(w.bob),
        DENIED,
    ),
    Case(
        "a scope that does not allow the call",
        lambda w, s: "Bearer " + _service_token(s, scopes=(OTHER_SCOPE[s],)),
        lambda w: _principal(w.alice),
        DENIED,
    ),
    Case(
        "a service token bound to another org",
        lambda w, s: "Bearer " + _service_token(s, scopes=("*",), org_id="other-org"),
        lambda w: _principal(w.alice),
        DENIED,
    ),
    Case(
        "a service identity naming nobody",
        lambda w, s: "Bearer " + _service_token(s, scopes=("*",)),
        lambda w: None,
        UNAUTHENTICATED,
    ),
    Case("the user's own token", lambda w, s: "Bearer " + w.stack.token(w.alice), lambda w: _principal(w.alice), OK),
    Case(
        "the user's own token, no body principal", lambda w, s: "Bearer " + w.stack.token(w.alice), lambda w: None, OK
    ),
    Case(
        "a token acting for the user",
        lambda w, s: "Bearer " + _service_token(s, principal=_as(w, w.alice)),
        lambda w: _principal(w.alice),
        OK,
    ),
    Case(
        "a service identity with the call's scope family",
        lambda w, s: "Bearer " + _service_token(s, scopes=(f"{_family(s)}:*",), org_id=ORG),
        lambda w: _principal(w.alice),
        OK,
    ),
]


def _family(service: str) -> str:
    return {"thread_store": "threads", "session_api": "escalations", "agent_runner": "runs"}[service]


@pytest.fixture(scope="module")
def channels(stack: Stack) -> Iterator[dict[str, grpc.Channel]]:
    opened = {name: grpc.insecure_channel(f"127.0.0.1:{stack.ports[name]}") for name in CALLS}
    yield opened
    for channel in opened.values():
        channel.close()


def _code_of(call: Callable[[], Any]) -> tuple[grpc.StatusCode, Any]:
    try:
        return OK, call()
    except grpc.RpcError as error:
        return error.code(), error  # type: ignore[attr-defined]


@pytest.mark.parametrize("service", list(CALLS))
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_service_refuses_wrong_credentials_and_accepts_the_right_ones(
    world: World, channels: dict[str, grpc.Channel], service: str, case: Case
) -> None:
    stub_class, method, request_for = CALLS[service]
    authorization = case.authorization(world, service)
    metadata = (("authorization", authorization),) if authorization is not None else None
    request = request_for(world, case.body(world))
    code, reply = _code_of(
        lambda: getattr(stub_class(channels[service]), method)(request, timeout=10, metadata=metadata)
    )
    assert code == case.expected, (service, case.name, reply)
    if code == OK and service == "thread_store":
        assert world.thread_id in [t.id for t in reply.threads]  # Alice's own data, and only hers
    if code == OK and service == "session_api":
        assert all(e.user_id == world.alice for e in reply.escalations)


def test_the_original_hole_is_closed(world: World, channels: dict[str, grpc.Channel]) -> None:
    """``ListThreads {"principal":{"userId":"alice"}}`` with no token returned Alice's threads."""
    stub = ThreadStoreStub(channels["thread_store"])
    with pytest.raises(grpc.RpcError) as refused:
        stub.ListThreads(thread_store_pb2.ListThreadsRequest(principal=_principal(world.alice)), timeout=10)
    assert refused.value.code() == UNAUTHENTICATED  # type: ignore[attr-defined]
    assert "credentials" in (refused.value.details() or "")  # type: ignore[attr-defined]


def test_an_end_user_cannot_call_a_service_only_method_on_their_own_thread(
    world: World, channels: dict[str, grpc.Channel]
) -> None:
    stub = ThreadStoreStub(channels["thread_store"])
    request = thread_store_pb2.SetHandlerRequest(
        principal=_principal(world.alice), thread_id=world.thread_id, kind="agent"
    )
    own = (("authorization", "Bearer " + world.stack.token(world.alice)),)
    code, reply = _code_of(lambda: stub.SetHandler(request, timeout=10, metadata=own))
    assert code == DENIED, reply
    service = (("authorization", "Bearer " + _service_token("thread_store", principal=_as(world, world.alice))),)
    code, reply = _code_of(lambda: stub.SetHandler(request, timeout=10, metadata=service))
    assert code == OK, reply  # the runner, acting for her, may
    assert reply.id == world.thread_id


@pytest.mark.parametrize("service", list(CALLS))
def test_health_and_reflection_v1_answer_without_credentials(channels: dict[str, grpc.Channel], service: str) -> None:
    health = health_pb2_grpc.HealthStub(channels[service])
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == health_pb2.HealthCheckResponse.SERVING
    # Reflection under the v1 name (grpcurl and current clients); its messages are v1alpha's on the wire.
    call = channels[service].stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    replies = list(call(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
    names = [s.name for s in replies[0].list_services_response.service]
    assert f"switchboard.api.v1.{CALLS[service][0].__name__.removesuffix('Stub')}" in names
    assert "grpc.reflection.v1.ServerReflection" in names


def _example(world: World, token: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "examples/call_grpc.py", world.alice, f"127.0.0.1:{world.stack.ports['thread_store']}"]
    env = {**os.environ, "SWITCHBOARD_TOKEN": token}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def _cli_token(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "switchboard.cli", "token", *args]
    return subprocess.run(command, env=env or dict(os.environ), capture_output=True, text=True, timeout=60, check=False)


def test_the_readme_example_lists_a_users_threads_with_a_service_token(world: World) -> None:
    minted = _cli_token("--service", "billing-worker", "--scope", "threads:read")  # as the README says
    assert minted.returncode == 0, minted.stderr
    assert "for thread_store" in minted.stderr and "expires" in minted.stderr
    allowed = _example(world, minted.stdout.strip())
    assert allowed.returncode == 0, allowed.stderr
    assert world.thread_id in allowed.stdout
    refused = _example(world, _service_token("thread_store", scopes=("runs:read",)))
    assert refused.returncode == 1 and "PERMISSION_DENIED" in refused.stderr


def test_compose_publishes_only_the_edge() -> None:
    text = (Path(__file__).parents[2] / "docker-compose.yml").read_text()
    published = re.findall(r"^  ([a-z-]+):\n(?:    .*\n)*?    ports:", text, re.M)
    assert published == ["edge"], published
    assert "SWITCHBOARD_INTERNAL_SECRET: ${SWITCHBOARD_INTERNAL_SECRET:?" in text  # required, never defaulted


def test_the_cli_mints_with_the_data_dirs_key_under_up_and_explains_mistakes(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SWITCHBOARD_INTERNAL_SECRET"}
    env["SWITCHBOARD_DATA_DIR"] = str(tmp_path)
    missing = _cli_token("--service", "w", "--scope", "threads:read", env=env)
    assert missing.returncode != 0 and "internal-secret" in missing.stderr
    (tmp_path / "internal-secret").write_text("d" * 48)  # what 'up' keeps there
    minted = _cli_token("--service", "w", "--scope", "runs:write", "--org", "acme", "--audience", "edge", env=env)
    assert minted.returncode == 0, minted.stderr
    claims = jwt.decode(minted.stdout.strip(), "d" * 48, algorithms=["HS256"], audience="edge")
    assert claims["svc"] == "w" and claims["scope"] == "runs:write" and claims["org"] == "acme"
    for args, says in [
        (("--service", "w"), "--scope"),
        (("--service", "w", "--scope", "threads:read", "--scope", "runs:read"), "--audience"),
        (("--service", "w", "--scope", "threads:fly"), "unknown scope"),
        (("--user", "u", "--scope", "threads:read"), "--service"),
    ]:
        refused = _cli_token(*args, env=env)
        assert refused.returncode != 0 and says in refused.stderr, (args, refused.stderr)
