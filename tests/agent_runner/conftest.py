"""Fixtures of the agent runner tests: real gRPC servers on real Postgres and Redis.

The model is the one thing swapped: each test sets ``runner.models.current``
to an ``agents.testing.ScriptedModel`` or the offline model.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from agents import Model
from chatkit.types import InferenceOptions, ThreadMetadata, UserMessageItem, UserMessageTextContent

from services.agent_runner.client import AgentRunnerClient
from services.agent_runner.escalation import InMemoryEscalations
from services.agent_runner.handoff import HandoffSettings
from services.agent_runner.offline_model import OfflineModel
from services.agent_runner.server import AgentRunnerConfig, build_agent_runner
from services.agent_runner.service import AgentRunnerService
from switchboard.grpc_runtime import GrpcServer
from tests.thread_store.conftest import RunningThreadStore, start_thread_store


class SwitchableModels:
    """A ``ModelSource`` whose model the test chooses."""

    def __init__(self) -> None:
        self.current: Model | None = None
        self.offline_delay = 0.0

    def use_offline(self, *, delay: float = 0.0) -> None:
        """Answer with the offline model."""
        self.current = None
        self.offline_delay = delay

    def is_offline(self, name: str | None) -> bool:
        return self.current is None

    def titles_threads(self, name: str | None) -> bool:
        return False  # a scripted model answers the conversation only (its script has no title turn)

    def model_for(self, name: str | None, *, announce_offline: bool) -> Model:
        if self.current is None:
            return OfflineModel(announce=announce_offline, chunk_delay=self.offline_delay)
        return self.current


@dataclass
class Ctx:
    """A principal as the edge passes it."""

    user_id: str
    org_id: str | None = None
    roles: tuple[str, ...] = field(default_factory=tuple)
    session_id: str | None = None


@dataclass
class RunningRunner:
    """A started agent runner, its thread store, and clients."""

    server: GrpcServer
    service: AgentRunnerService
    target: str
    client: AgentRunnerClient
    models: SwitchableModels
    escalations: InMemoryEscalations
    thread_store: RunningThreadStore


async def start_runner(
    database_url: str, redis_url: str, thread_store: RunningThreadStore, *, users_session_api: str | None = None
) -> RunningRunner:
    """An agent runner on a free port, with a switchable model and in-memory escalations (end users'
    tokens on its API verified by ``users_session_api``, if given)."""
    models = SwitchableModels()
    escalations = InMemoryEscalations()
    config = AgentRunnerConfig(
        database_url=database_url,
        redis_url=redis_url,
        thread_store_target=thread_store.target,
        migrate=False,
        # A hand-off keeps the user's stream open this long: short, so runs that escalate end soon.
        handoff=HandoffSettings(stream_seconds=2, timeout_seconds=600),
    )
    server, service = await build_agent_runner(
        config, models=models, escalations=escalations, users_session_api=users_session_api
    )
    port = await server.start("127.0.0.1", 0)
    target = f"127.0.0.1:{port}"
    return RunningRunner(server, service, target, AgentRunnerClient(target), models, escalations, thread_store)


@pytest.fixture(scope="session")
async def runner(database_url: str, redis_url: str) -> AsyncIterator[RunningRunner]:
    """One thread store and one agent runner for the session."""
    thread_store = await start_thread_store(database_url, redis_url)
    running = await start_runner(database_url, redis_url, thread_store)
    yield running
    await running.client.close()
    await running.server.stop(grace=0)
    await thread_store.store.close()
    await thread_store.server.stop(grace=0)


async def new_thread(runner: RunningRunner, ctx: Ctx, **metadata: Any) -> ThreadMetadata:
    """A saved, empty thread of ``ctx``'s user."""
    thread = ThreadMetadata(id=f"thr_{uuid.uuid4().hex[:12]}", created_at=datetime.now(UTC), metadata=metadata)
    await runner.thread_store.store.save_thread(thread, ctx)
    return thread


def user_message(thread_id: str, text: str) -> UserMessageItem:
    """A new user message."""
    return UserMessageItem(
        id=f"msg_{uuid.uuid4().hex[:12]}",
        thread_id=thread_id,
        created_at=datetime.now(UTC),
        content=[UserMessageTextContent(text=text)],
        inference_options=InferenceOptions(),
    )


async def run_to_end(runner: RunningRunner, ctx: Ctx, thread_id: str, text: str, **kwargs: Any) -> list[Any]:
    """Send a message and collect every event of the answer."""
    return [
        e
        async for e in runner.client.run(ctx, thread_id=thread_id, user_message=user_message(thread_id, text), **kwargs)
    ]


def assistant_text(events: list[Any]) -> str:
    """The text of the finished assistant messages of a run."""
    return "\n".join(
        c.text
        for e in events
        if e.type == "thread.item.done" and e.item.type == "assistant_message"
        for c in e.item.content
    )
