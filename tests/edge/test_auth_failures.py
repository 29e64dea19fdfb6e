"""Failed sign-ins are limited per client address: past the budget an address gets 429 without its
token reaching session_api, other addresses are untouched, and successful sign-ins cost nothing.

The unit tests run on a clock the test moves; the HTTP test runs a real edge process against an
in-memory session_api that counts ``Authenticate`` calls, and refills so slowly (one failure per
10 s) that no verdict depends on how fast this machine sends requests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from services.edge.auth import Authenticator, ClientAddresses, RateLimited, RateLimiter, SignInThrottle
from services.edge.config import EdgeConfig
from services.session_api.client import VerifiedToken
from switchboard.api.v1 import session_api_pb2, session_api_pb2_grpc
from switchboard.errors import InvalidArgument, Unauthenticated
from switchboard.principal import Principal
from switchboard.proto_convert import principal_to_proto, timestamp
from tests.conftest import free_port
from tests.e2e.conftest import start_service

GOOD = "good-token-of-alice"


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingSessionApi:
    """session_api's ``authenticate``, in memory: tokens starting with ``good-`` are alice's."""

    def __init__(self) -> None:
        self.calls = 0

    async def authenticate(self, token: str) -> VerifiedToken:
        self.calls += 1
        if not token.startswith("good-"):
            raise Unauthenticated("the token is not valid")
        return VerifiedToken(
            principal=Principal(user_id="alice"),
            expires_at=datetime.now(UTC) + timedelta(seconds=600),
            kind="identity_provider",
        )


def throttle(sessions: CountingSessionApi, clock: FakeClock, *, per_minute: int = 30, cache: int = 0) -> SignInThrottle:
    authenticator = Authenticator(sessions, session_seconds=5.0, max_entries=cache)  # type: ignore[arg-type]
    failures = RateLimiter(per_second=per_minute / 60.0, burst=per_minute, clock=clock)
    return SignInThrottle(authenticator, failures)


def bearer(token: str) -> str:
    return f"Bearer {token}"


# -- the budget of one address -------------------------------------------------------------


async def test_past_its_failures_an_address_is_refused_without_asking_session_api() -> None:
    sessions, clock = CountingSessionApi(), FakeClock()
    sign_in = throttle(sessions, clock, per_minute=30)
    for attempt in range(30):
        with pytest.raises(Unauthenticated):
            await sign_in.principal(bearer(f"forged-{attempt}"), address="203.0.113.7")
    assert sessions.calls == 30
    with pytest.raises(RateLimited) as refused:
        await sign_in.principal(bearer("forged-30"), address="203.0.113.7")
    assert sessions.calls == 30
    assert refused.value.retry_after == pytest.approx(2.0)  # 30 a minute: one every 2 s
    assert "203.0.113.7" not in refused.value.message


async def test_a_refused_address_is_refused_for_every_request_even_a_good_token() -> None:
    sessions, clock = CountingSessionApi(), FakeClock()
    sign_in = throttle(sessions, clock, per_minute=3)
    for attempt in range(3):
        with pytest.raises(Unauthenticated):
            await sign_in.principal(bearer(f"forged-{attempt}"), address="203.0.113.7")
    with pytest.raises(RateLimited):
        await sign_in.principal(bearer(GOOD), address="203.0.113.7")
    assert sessions.calls == 3


async def test_a_token_verified_before_passes_from_a_refused_address_without_a_call() -> None:
    sessions, clock = CountingSessionApi(), FakeClock()
    sign_in = throttle(sessions, clock, per_minute=3, cache=100)
    assert (await sign_in.principal(bearer(GOOD), address="203.0.113.7")).user_id == "alice"
    for attempt in range(3):  # someone else behind the same address
        with pytest.raises(Unauthenticated):
            await sign_in.principal(bearer(f"forged-{attempt}"), address="203.0.113.7")
    calls = sessions.calls
    assert (await sign_in.principal(bearer(GOOD), address="203.0.113.7")).user_id == "alice"
    with pytest.raises(RateLimited):
        await sign_in.principal(bearer("good-but-never-seen"), address="203.0.113.7")
    assert sessions.calls == calls  # neither asked session_api


async def test_another_address_still_signs_in_while_one_is_refused() -> None:
    sessions, clock = CountingSessionApi(), FakeClock()
    sign_in = throttle(sessions, clock, per_minute=3)
    for attempt in range(4):
        with pytest.raises((Unauthenticated, RateLimited)):
            await sign_in.principal(bearer(f"forged-{attempt}"), address="203.0.113.7")
    principal = await sign_in.principal(bearer(GOOD), address="198.51.100.9")
    assert principal.user_id == "alice"


async def test_after_the_bucket_refills_a_bad_token_is_asked_about_and_refused_with_401_again() -> None:
    sessions, clock = CountingSessionApi(), FakeClock()
    sign_in = throttle(sessions, clock, per_minute=3)  # one failure back every 20 s
    for attempt in range(3):
        with pytest.raises(Unauthenticated):
            await sign_in.principal(bearer(f"forged-{attempt}"), address="203.0.113.7")
    clock.now += 19.9
    with pytest.raises(RateLimited) as refused:
        await sign_in.principal(bearer("forged-3"), address="203.0.113.7")
    assert refused.value.retry_after == pytest.approx(0.1)
    clock.now += 0.1
    with pytest.raises(Unauthenticated):
        await sign_in.principal(bearer("forged-4"), address="203.0.113.7")
    assert sessions.calls == 4
    with pytest.raises(RateLimited):  # one came back, one was spent
        await sign_in.principal(bearer("forged-5"), address="203.0.113.7")


async def test_successful_sign_ins_take_nothing_from_the_budget() -> None:
    sessions, clock = CountingSessionApi(), FakeClock()
    sign_in = throttle(sessions, clock, per_minute=3)
    for user in range(500):  # many users behind one address, each signing in for the first time
        await sign_in.principal(bearer(f"good-{user}"), address="192.0.2.1")
    for attempt in range(3):
        with pytest.raises(Unauthenticated):
            await sign_in.principal(bearer(f"forged-{attempt}"), address="192.0.2.1")
    with pytest.raises(RateLimited):
        await sign_in.principal(bearer("forged-3"), address="192.0.2.1")


async def test_a_request_without_a_token_counts_as_a_failure_and_costs_no_call() -> None:
    sessions, clock = CountingSessionApi(), FakeClock()
    sign_in = throttle(sessions, clock, per_minute=2)
    for header in (None, "Basic dXNlcjpwYXNz"):
        with pytest.raises(Unauthenticated):
            await sign_in.principal(header, address="203.0.113.7")
    with pytest.raises(RateLimited):
        await sign_in.principal(None, address="203.0.113.7")
    assert sessions.calls == 0


async def test_failures_already_under_way_when_the_limit_is_reached_are_owed() -> None:
    clock = FakeClock()
    failures = RateLimiter(per_second=1.0, burst=2, clock=clock)
    for _ in range(5):  # five requests passed the check before any of them failed
        failures.charge("203.0.113.7")
    with pytest.raises(RateLimited) as refused:
        failures.ensure_available("203.0.113.7")
    # Two were within the budget; the debt stops at minus the burst: 3 s until one is back.
    assert refused.value.retry_after == pytest.approx(3.0)


def test_only_addresses_that_owe_something_are_kept_and_never_more_than_the_bound() -> None:
    clock = FakeClock()
    failures = RateLimiter(per_second=1.0, burst=5, max_keys=100, clock=clock)
    for host in range(1000):
        failures.ensure_available(f"10.0.{host // 256}.{host % 256}")  # good traffic: nothing kept
    assert len(failures) == 0
    for host in range(1000):
        failures.charge(f"10.0.{host // 256}.{host % 256}")
    assert len(failures) == 100
    clock.now += 60  # refilled: the next look forgets the address
    failures.ensure_available("10.0.3.231")
    assert len(failures) == 99


# -- which address a request comes from ----------------------------------------------------


def test_without_trusted_proxies_the_peer_is_the_client_and_forwarded_for_is_ignored() -> None:
    addresses = ClientAddresses()
    assert addresses.key("192.0.2.10", ["198.51.100.1"]) == "192.0.2.10"


def test_forwarded_for_from_a_peer_that_is_not_a_trusted_proxy_is_ignored() -> None:
    addresses = ClientAddresses([ipaddress.ip_network("10.0.0.0/8")])
    assert addresses.key("192.0.2.10", ["198.51.100.1"]) == "192.0.2.10"


def test_behind_trusted_proxies_the_client_is_the_first_hop_from_the_right_they_do_not_cover() -> None:
    addresses = ClientAddresses([ipaddress.ip_network("10.0.0.0/8")])
    # The client wrote "1.1.1.1" itself; the outer proxy appended the client's real address
    # (198.51.100.1), the inner proxy the outer one's (10.0.0.5).
    assert addresses.key("10.0.0.9", ["1.1.1.1, 198.51.100.1", "10.0.0.5"]) == "198.51.100.1"


def test_when_every_hop_is_a_trusted_proxy_the_leftmost_is_the_client() -> None:
    addresses = ClientAddresses([ipaddress.ip_network("10.0.0.0/8")])
    assert addresses.key("10.0.0.9", ["10.1.1.1, 10.0.0.5"]) == "10.1.1.1"
    assert addresses.key("10.0.0.9", []) == "10.0.0.9"


def test_a_hop_that_is_not_an_address_ends_the_chain_at_the_last_trusted_proxy() -> None:
    addresses = ClientAddresses([ipaddress.ip_network("10.0.0.0/8")])
    assert addresses.key("10.0.0.9", ["unknown, 10.0.0.5"]) == "10.0.0.5"


def test_proxies_writing_ports_and_ipv4_mapped_addresses_give_the_plain_address() -> None:
    addresses = ClientAddresses([ipaddress.ip_network("127.0.0.1/32")])
    assert addresses.key("127.0.0.1", ["198.51.100.1:51234"]) == "198.51.100.1"
    assert addresses.key("::ffff:192.0.2.10") == "192.0.2.10"


def test_ipv6_clients_are_counted_per_slash_64() -> None:
    addresses = ClientAddresses([ipaddress.ip_network("::1/128")])
    first = addresses.key("2001:db8:1:2::1")
    assert first == addresses.key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert addresses.key("::1", ["[2001:db8:1:3::7]:443"]) == "2001:db8:1:3::/64"


# -- settings --------------------------------------------------------------------------------


def test_the_settings_are_read_and_a_malformed_proxy_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    assert EdgeConfig.from_env().auth_failures_per_minute == 30
    assert EdgeConfig.from_env().trusted_proxies == ()
    monkeypatch.setenv("SWITCHBOARD_EDGE_AUTH_FAILURES_PER_MINUTE", "5")
    monkeypatch.setenv("SWITCHBOARD_EDGE_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.7 ,::1")
    config = EdgeConfig.from_env()
    assert config.auth_failures_per_minute == 5
    assert [str(n) for n in config.trusted_proxies] == ["10.0.0.0/8", "192.0.2.7/32", "::1/128"]
    monkeypatch.setenv("SWITCHBOARD_EDGE_TRUSTED_PROXIES", "10.0.0.0/8, the-load-balancer")
    with pytest.raises(InvalidArgument, match="the-load-balancer"):
        EdgeConfig.from_env()


async def test_with_the_limit_off_failures_are_never_refused() -> None:
    sessions = CountingSessionApi()
    authenticator = Authenticator(sessions, session_seconds=5.0, max_entries=0)  # type: ignore[arg-type]
    sign_in = SignInThrottle(authenticator, None)
    for attempt in range(100):
        with pytest.raises(Unauthenticated):
            await sign_in.principal(bearer(f"forged-{attempt}"), address="203.0.113.7")
    assert sessions.calls == 100


# -- over HTTP, against a real edge ----------------------------------------------------------

PER_MINUTE = 6  # one failure back every 10 s


class FakeSessionApi(session_api_pb2_grpc.SessionApiServicer):  # type: ignore[misc]
    """session_api over gRPC, in memory: counts ``Authenticate`` calls; alice has one session."""

    def __init__(self) -> None:
        self.sessions = CountingSessionApi()

    async def Authenticate(self, request: Any, context: Any) -> session_api_pb2.AuthenticateResponse:
        try:
            verified = await self.sessions.authenticate(request.token)
            return session_api_pb2.AuthenticateResponse(
                principal=principal_to_proto(verified.principal),
                expires_at=timestamp(verified.expires_at),
                kind=session_api_pb2.TOKEN_KIND_IDENTITY_PROVIDER,
            )
        except Unauthenticated as error:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, error.message)
            raise

    async def GetSession(self, request: Any, context: Any) -> session_api_pb2.Session:
        return session_api_pb2.Session(
            id=request.session_id,
            user_id=request.principal.user_id,
            channel="web",
            status=session_api_pb2.SESSION_STATUS_ACTIVE,
            created_at=Timestamp(seconds=int(time.time())),
        )


@pytest.fixture
async def session_api() -> AsyncIterator[tuple[FakeSessionApi, int]]:
    servicer = FakeSessionApi()
    server = grpc.aio.server()
    session_api_pb2_grpc.add_SessionApiServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield servicer, port
    await server.stop(0)


async def start_edge(session_api_port: int, **settings: str) -> tuple[subprocess.Popen[str], str]:
    """A real edge process on the fake session_api, once it answers ``/healthz``."""
    env = dict(os.environ)
    env.update(
        SWITCHBOARD_SESSION_API=f"127.0.0.1:{session_api_port}",
        SWITCHBOARD_THREAD_STORE=f"127.0.0.1:{free_port()}",  # nothing listens: not needed here
        SWITCHBOARD_AGENT_RUNNER=f"127.0.0.1:{free_port()}",
        SWITCHBOARD_EDGE_AUTH_FAILURES_PER_MINUTE=str(PER_MINUTE),
        SWITCHBOARD_AUTH_CACHE_SIZE="0",
        SWITCHBOARD_LOG_LEVEL="WARNING",
    )
    env.pop("SWITCHBOARD_EDGE_TRUSTED_PROXIES", None)
    env.update(settings)
    port = free_port()
    process = start_service("edge", port, env)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, timeout=2) as http:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                stop_edge(process)
                raise AssertionError("the edge did not answer /healthz in 60 s")
            try:
                if (await http.get("/healthz")).status_code == 200:
                    return process, url
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)


def stop_edge(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
async def edge(session_api: tuple[FakeSessionApi, int]) -> AsyncIterator[str]:
    """An edge behind "a proxy" (this test, on 127.0.0.1) whose X-Forwarded-For it believes."""
    process, url = await start_edge(session_api[1], SWITCHBOARD_EDGE_TRUSTED_PROXIES="127.0.0.1,::1")
    yield url
    stop_edge(process)


@pytest.fixture
async def edge_without_proxies(session_api: tuple[FakeSessionApi, int]) -> AsyncIterator[str]:
    """An edge whose deployment names no proxy."""
    process, url = await start_edge(session_api[1])
    yield url
    stop_edge(process)


def from_address(address: str, token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-Forwarded-For": address}


async def test_over_http_bad_tokens_from_one_address_end_in_429_without_reaching_session_api(
    session_api: tuple[FakeSessionApi, int], edge: str
) -> None:
    counting = session_api[0].sessions
    attacker, user = "203.0.113.7", "198.51.100.9"
    async with httpx.AsyncClient(base_url=edge, timeout=10) as http:
        for attempt in range(PER_MINUTE):
            reply = await http.get("/chatkit/sessions/s1", headers=from_address(attacker, f"forged-{attempt}"))
            assert reply.status_code == 401, reply.text
        assert counting.calls == PER_MINUTE

        refused = await http.get("/chatkit/sessions/s1", headers=from_address(attacker, "forged-next"))
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert attacker not in refused.text and "127.0.0.1" not in refused.text
        retry_after = int(refused.headers["Retry-After"])
        assert 1 <= retry_after <= 60 / PER_MINUTE
        also_refused = await http.get("/chatkit/sessions/s1", headers=from_address(attacker, GOOD))
        assert also_refused.status_code == 429
        assert counting.calls == PER_MINUTE  # neither reached session_api

        welcome = await http.get("/chatkit/sessions/s1", headers=from_address(user, GOOD))
        assert welcome.status_code == 200, welcome.text
        assert welcome.json()["user_id"] == "alice"
        assert counting.calls == PER_MINUTE + 1

        await asyncio.sleep(retry_after)  # one failure's worth has come back
        again = await http.get("/chatkit/sessions/s1", headers=from_address(attacker, "forged-later"))
        assert again.status_code == 401, again.text
        assert counting.calls == PER_MINUTE + 2
        spent = await http.get("/chatkit/sessions/s1", headers=from_address(attacker, "forged-last"))
        assert spent.status_code == 429
        assert counting.calls == PER_MINUTE + 2


async def test_over_http_forwarded_for_is_not_believed_unless_the_deployment_names_its_proxies(
    session_api: tuple[FakeSessionApi, int], edge_without_proxies: str
) -> None:
    counting = session_api[0].sessions
    async with httpx.AsyncClient(base_url=edge_without_proxies, timeout=10) as http:
        for attempt in range(PER_MINUTE):  # a new made-up address each time: all are the peer's failures
            spoofed = from_address(f"198.51.100.{attempt}", f"forged-{attempt}")
            assert (await http.get("/chatkit/sessions/s1", headers=spoofed)).status_code == 401
        refused = await http.get("/chatkit/sessions/s1", headers=from_address("198.51.100.99", "forged"))
        assert refused.status_code == 429
    assert counting.calls == PER_MINUTE
