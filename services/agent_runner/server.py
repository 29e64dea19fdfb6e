"""The agent runner process: pools, servicer, health, reflection, graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatkit.store import Store

from services.agent_runner.agents_file import AgentsFile, load_agents_file
from services.agent_runner.catalog import AgentCatalog
from services.agent_runner.escalation import EscalationSink, InMemoryEscalations, SessionApiEscalations
from services.agent_runner.models import EnvModels, ModelConfig, ModelSource
from services.agent_runner.runs import RunRegistry
from services.agent_runner.service import AgentRunnerService, RunnerLimits
from services.agent_runner.servicer import AgentRunnerServicer
from services.agent_runner.tasks import TaskRepository
from services.thread_store.client import GrpcThreadStore
from switchboard.api.v1 import agent_runner_pb2, agent_runner_pb2_grpc
from switchboard.config import env_int, env_str
from switchboard.grpc_runtime import GrpcServer
from switchboard.migrate import apply_migrations
from switchboard.redis_client import create_redis
from switchboard.sql import create_pool

log = logging.getLogger(__name__)

SERVICE_NAME = agent_runner_pb2.DESCRIPTOR.services_by_name["AgentRunner"].full_name
DEFAULT_PORT = 50052


@dataclass(frozen=True)
class AgentRunnerConfig:
    """Everything the agent runner needs to start.

    Attributes:
        database_url: Postgres (the task server's tasks).
        redis_url: Redis (thread claims and cross-replica cancel), or None for one replica.
        thread_store_target: ``host:port`` of the thread store.
        session_api_target: ``host:port`` of session_api, or None to keep escalations in memory.
        agents_file: The agents file, or None for the default set.
        limits: History window and turn bounds.
    """

    database_url: str
    redis_url: str | None
    thread_store_target: str
    session_api_target: str | None = None
    agents_file: Path | None = None
    limits: RunnerLimits = field(default_factory=RunnerLimits)
    migrate: bool = True
    pool_size: int = 5

    @classmethod
    def from_env(cls, *, database_url: str, redis_url: str | None) -> AgentRunnerConfig:
        """Read ``SWITCHBOARD_THREAD_STORE``, ``SWITCHBOARD_SESSION_API``, ``SWITCHBOARD_AGENTS_FILE``,
        ``SWITCHBOARD_HISTORY_ITEMS`` and ``SWITCHBOARD_MAX_TURNS``."""
        agents_file = env_str("SWITCHBOARD_AGENTS_FILE")
        return cls(
            database_url=database_url,
            redis_url=redis_url,
            thread_store_target=env_str("SWITCHBOARD_THREAD_STORE", "127.0.0.1:50051") or "127.0.0.1:50051",
            session_api_target=env_str("SWITCHBOARD_SESSION_API"),
            agents_file=Path(agents_file) if agents_file else None,
            limits=RunnerLimits(
                history_items=env_int("SWITCHBOARD_HISTORY_ITEMS", 30, minimum=1),
                max_turns=env_int("SWITCHBOARD_MAX_TURNS", 12, minimum=1),
            ),
            pool_size=env_int("SWITCHBOARD_DB_POOL_SIZE", 5, minimum=1),
        )


async def build_agent_runner(
    config: AgentRunnerConfig,
    *,
    models: ModelSource | None = None,
    escalations: EscalationSink | None = None,
    agents: AgentsFile | None = None,
    store: Store[Any] | None = None,
) -> tuple[GrpcServer, AgentRunnerService]:
    """Open pools and assemble the server (not started yet). Tests pass their own models and sinks."""
    agents = agents or load_agents_file(config.agents_file)
    env_models: EnvModels | None = None
    if models is None:
        env_models = EnvModels(ModelConfig.from_env())
        models = env_models
    if config.migrate:
        await asyncio.to_thread(apply_migrations, config.database_url)
    pool = await create_pool(config.database_url, max_size=config.pool_size)
    closers: list[Any] = []
    if escalations is None:
        if config.session_api_target:
            session_api = SessionApiEscalations(config.session_api_target)
            closers.append(session_api.close)
            escalations = session_api
        else:
            log.warning("no SWITCHBOARD_SESSION_API: escalations are only logged in memory")
            escalations = InMemoryEscalations()
    thread_store = store or GrpcThreadStore(config.thread_store_target)
    redis_clients = []
    if config.redis_url:
        redis_clients = [create_redis(config.redis_url), create_redis(config.redis_url, timeout=30.0)]
        registry = RunRegistry(redis_clients[0], redis_clients[1])
    else:
        log.warning("no REDIS_URL: thread claims and cancels reach this replica only")
        registry = RunRegistry(None)
    await registry.start()
    catalog = AgentCatalog(agents, models, TaskRepository(pool), escalations)
    service = AgentRunnerService(store=thread_store, catalog=catalog, registry=registry, limits=config.limits)

    async def close() -> None:
        await registry.close()
        for closer in closers:
            await closer()
        if isinstance(thread_store, GrpcThreadStore) and store is None:
            await thread_store.close()
        if env_models is not None:
            await env_models.close()
        for client in redis_clients:
            await client.aclose()
        await pool.close()

    def register(server: Any) -> None:
        agent_runner_pb2_grpc.add_AgentRunnerServicer_to_server(AgentRunnerServicer(service), server)  # type: ignore[no-untyped-call]

    return GrpcServer(name=SERVICE_NAME, register=register, on_stop=close), service


async def serve(config: AgentRunnerConfig, *, host: str, port: int) -> None:
    """Run the agent runner until SIGTERM/SIGINT."""
    server, _service = await build_agent_runner(config)
    await server.serve_until_signalled(host, port)
