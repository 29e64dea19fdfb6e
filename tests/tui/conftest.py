"""Fixtures of the console tests: real session_api and thread_store servers, on real Postgres and Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt
import pytest
from chatkit.types import ThreadMetadata
from textual.pilot import Pilot

from services.session_api.client import SessionApiClient
from services.thread_store.client import GrpcThreadStore
from switchboard.principal import Principal
from tests.session_api.conftest import (  # noqa: F401 - the fixture is used through its name
    AUDIENCE,
    HS_SECRET,
    ISSUER,
    IdentityProvider,
    RunningSessionApi,
    auth_config,
    identity_provider,
    start_session_api,
)
from tests.thread_store.conftest import RunningThreadStore, start_thread_store
from tests.thread_store.helpers import Ctx, user_message
from tui.app import ConsoleApp
from tui.backend import GrpcConsoleBackend

NO_RUNNER = "127.0.0.1:1"  # nothing listens there: a decision fails as "unavailable"


def operator_token(user_id: str, org_id: str, *, roles: tuple[str, ...] = ("operator",)) -> str:
    """A token the test identity provider signs for an operator."""
    now = int(time.time())
    claims = {"sub": user_id, "org_id": org_id, "roles": list(roles), "aud": AUDIENCE, "iss": ISSUER}
    return jwt.encode({**claims, "iat": now, "exp": now + 600}, HS_SECRET, algorithm="HS256")


async def wait_for(
    pilot: Pilot[None], condition: Callable[[], object], *, timeout: float = 5.0, what: str = ""
) -> float:
    """Let the app run until ``condition()`` holds; returns how long it took.

    Raises:
        AssertionError: it did not hold within ``timeout`` seconds.
    """
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout}s: {what or condition}")
        await pilot.pause(0.01)
    return time.monotonic() - start


@dataclass
class Stack:
    """session_api and thread_store, and clients a test uses to act as users."""

    session_api: RunningSessionApi
    thread_store: RunningThreadStore

    @property
    def sessions(self) -> SessionApiClient:
        """A session_api client (what the edge would call)."""
        return self.session_api.client

    @property
    def threads(self) -> GrpcThreadStore:
        """A thread_store client (what the edge's ChatKit store is)."""
        return self.thread_store.store

    def console(
        self, org_id: str, *, operator: str | None = None, token: str | None = None, agent_runner: str = NO_RUNNER
    ) -> ConsoleApp:
        """The console of an operator of ``org_id``, connected to this stack (and to an agent runner, if given)."""
        backend = GrpcConsoleBackend(
            token=token or operator_token(operator or f"op-{uuid.uuid4().hex[:6]}", org_id),
            session_api=self.session_api.target,
            thread_store=self.thread_store.target,
            agent_runner=agent_runner,
            timeout=3.0,
        )
        return ConsoleApp(backend, metrics_interval=0.5)

    async def user_thread(self, user: Principal, text: str) -> str:
        """A thread of ``user`` with their first message."""
        ctx = Ctx(user_id=user.user_id, org_id=user.org_id)
        thread = ThreadMetadata(id=f"thr_{uuid.uuid4().hex[:12]}", created_at=datetime.now(UTC), title="help")
        await self.threads.save_thread(thread, ctx)
        await self.threads.add_thread_item(thread.id, user_message(thread.id, text, at=datetime.now(UTC)), ctx)
        return thread.id


async def start_stack(database_url: str, redis_url: str, jwks_url: str) -> Stack:
    """Start both services on free ports."""
    session_api = await start_session_api(database_url, redis_url, auth_config(jwks_url))
    # The console calls thread_store with the operator's token, which thread_store asks session_api about.
    thread_store = await start_thread_store(database_url, redis_url, session_api_target=session_api.target)
    return Stack(session_api=session_api, thread_store=thread_store)


async def stop_stack(stack: Stack) -> None:
    """Stop both services and close the test's clients."""
    await stack.session_api.client.close()
    await stack.thread_store.store.close()
    await stack.session_api.server.stop(grace=0)
    await stack.thread_store.server.stop(grace=0)


@pytest.fixture(scope="session")
async def stack(database_url: str, redis_url: str, identity_provider: IdentityProvider) -> AsyncIterator[Stack]:  # noqa: F811
    """session_api and thread_store shared by the console tests."""
    running = await start_stack(database_url, redis_url, identity_provider.jwks.url)
    yield running
    await stop_stack(running)


@pytest.fixture
def org() -> str:
    """An org no other test uses (each test watches its own org)."""
    return f"org-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def new_user(org: str) -> Callable[[], Principal]:
    """Make a fresh user of the test's org."""
    return lambda: Principal(user_id=f"user-{uuid.uuid4().hex[:8]}", org_id=org)


def notices(app: ConsoleApp) -> list[str]:
    """The notifications the console shows now."""
    return [notification.message for notification in app._notifications]


async def connected(pilot: Pilot[None], app: ConsoleApp) -> None:
    """Wait until both feeds are live (the session watch has started and thread_store answered)."""
    await wait_for(
        pilot,
        lambda: all(s.state == "connected" for s in app.connections.values()),
        what="the console connects to both services",
    )


Action = Callable[[], Awaitable[object]]
