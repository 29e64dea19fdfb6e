"""The agent runner process: pools, servicer, health, reflection, graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.agent_runner.catalog import AgentCatalog
from services.agent_runner.escalation import Escalations, InMemoryEscalations, SessionApiEscalations
from services.agent_runner.handoff import Handoffs, HandoffSettings
from services.agent_runner.metrics import runs_collector
from services.agent_runner.models import EnvModels, ModelConfig, ModelSource
from services.agent_runner.runs import RunLog, RunRepository, replica_id
from services.agent_runner.service import AgentRunnerService, DoubleText, RunnerLimits
from services.agent_runner.servicer import AgentRunnerServicer
from services.agent_runner.sessions import SessionApiLinks, SessionLinks
from services.agent_runner.tasks import TaskRepository
from services.session_api.client import SessionApiClient, users_verifier
from services.thread_store.client import GrpcThreadStore
from switchboard.agents_file import AgentsFile, load_agents_file
from switchboard.api.v1 import agent_runner_pb2, agent_runner_pb2_grpc
from switchboard.config import env_bool, env_float, env_int, env_str
from switchboard.errors import InvalidArgument
from switchboard.grpc_runtime import GrpcServer
from switchboard.migrate import apply_migrations
from switchboard.redis_client import create_redis
from switchboard.scrape_metrics import register_collectors
from switchboard.service_auth import ServerAuth
from switchboard.sql import create_pool

log = logging.getLogger(__name__)

SERVICE_NAME = agent_runner_pb2.DESCRIPTOR.services_by_name["AgentRunner"].full_name
DEFAULT_PORT = 50052
DOUBLE_TEXT_POLICIES: tuple[DoubleText, ...] = ("enqueue", "interrupt", "reject")
# Redis connections for appending run logs and for joiners' blocking reads. Past
# these, callers wait for a connection (backpressure) rather than fail.
LOG_POOL_SIZE = 64
JOIN_POOL_SIZE = 256


@dataclass(frozen=True)
class AgentRunnerConfig:
    """Everything the agent runner needs to start.

    Attributes:
        database_url: Postgres (runs, and the task server's tasks).
        redis_url: Redis (run event logs, cross-replica cancels and wake-ups), or None for one replica.
        thread_store_target: ``host:port`` of the thread store.
        session_api_target: ``host:port`` of session_api, or None to keep escalations in memory.
        agents_file: The agents file, or None for the default set.
        limits: History window, turn bounds, double-texting policy and leases.
        handoff: How long a user's stream stays open for a person, and a thread waits for one.
        pool_size: Postgres connections (``SWITCHBOARD_DB_POOL_SIZE``).
    """

    database_url: str
    redis_url: str | None
    thread_store_target: str
    session_api_target: str | None = None
    agents_file: Path | None = None
    limits: RunnerLimits = field(default_factory=RunnerLimits)
    handoff: HandoffSettings = field(default_factory=HandoffSettings)
    migrate: bool = True
    pool_size: int = 10

    @classmethod
    def from_env(cls, *, database_url: str, redis_url: str | None) -> AgentRunnerConfig:
        """Read ``SWITCHBOARD_THREAD_STORE``, ``SWITCHBOARD_SESSION_API``, ``SWITCHBOARD_AGENTS_FILE``,
        ``SWITCHBOARD_HISTORY_ITEMS``, ``SWITCHBOARD_MAX_TURNS``, ``SWITCHBOARD_DOUBLE_TEXT`` and
        ``SWITCHBOARD_RUN_LEASE_SECONDS``, ``SWITCHBOARD_APPROVAL_TTL_SECONDS`` and
        ``SWITCHBOARD_OPERATOR_MAY_APPROVE``, ``SWITCHBOARD_HANDOFF_STREAM_SECONDS`` and
        ``SWITCHBOARD_HANDOFF_TIMEOUT_SECONDS``."""
        agents_file = env_str("SWITCHBOARD_AGENTS_FILE")
        policy = (env_str("SWITCHBOARD_DOUBLE_TEXT") or "enqueue").strip().lower()
        if policy not in DOUBLE_TEXT_POLICIES:
            raise InvalidArgument(
                f"SWITCHBOARD_DOUBLE_TEXT must be one of {', '.join(DOUBLE_TEXT_POLICIES)}, not {policy!r}"
            )
        lease = env_float("SWITCHBOARD_RUN_LEASE_SECONDS", 10.0, minimum=1.0)
        if lease > 15:
            raise InvalidArgument(
                "SWITCHBOARD_RUN_LEASE_SECONDS must be at most 15 (a dead replica's runs wait that long)"
            )
        return cls(
            database_url=database_url,
            redis_url=redis_url,
            thread_store_target=env_str("SWITCHBOARD_THREAD_STORE", "127.0.0.1:50051") or "127.0.0.1:50051",
            session_api_target=env_str("SWITCHBOARD_SESSION_API"),
            agents_file=Path(agents_file) if agents_file else None,
            limits=RunnerLimits(
                history_items=env_int("SWITCHBOARD_HISTORY_ITEMS", 200, minimum=2),
                history_tokens=env_int("SWITCHBOARD_HISTORY_TOKENS", 8000, minimum=200),
                attachment_inline_bytes=env_int("SWITCHBOARD_ATTACHMENT_INLINE_BYTES", 32768),
                model_images=env_bool("SWITCHBOARD_MODEL_IMAGES", True),
                max_turns=env_int("SWITCHBOARD_MAX_TURNS", 12, minimum=1),
                double_text=policy,
                lease_seconds=lease,
                approval_ttl_seconds=env_float("SWITCHBOARD_APPROVAL_TTL_SECONDS", 86400.0, minimum=1.0),
                operator_may_approve=env_bool("SWITCHBOARD_OPERATOR_MAY_APPROVE", False),
            ),
            handoff=HandoffSettings.from_env(),
            pool_size=env_int("SWITCHBOARD_DB_POOL_SIZE", 10, minimum=1),
        )


async def build_agent_runner(
    config: AgentRunnerConfig,
    *,
    models: ModelSource | None = None,
    escalations: Escalations | None = None,
    sessions: SessionLinks | None = None,
    agents: AgentsFile | None = None,
    store: GrpcThreadStore | None = None,
    users_session_api: str | None = None,
) -> tuple[GrpcServer, AgentRunnerService]:
    """Open pools and assemble the server (not started yet). Tests pass their own models, sinks and
    sessions; without session_api (and none passed) conversations are not tracked in sessions."""
    # End users' tokens on this API are verified by session_api (tests may name one without the
    # runner using it for sessions and escalations).
    auth = ServerAuth.from_env("agent_runner", users=users_verifier(users_session_api or config.session_api_target))
    agents = agents or load_agents_file(config.agents_file)
    env_models: EnvModels | None = None
    if models is None:
        env_models = EnvModels(ModelConfig.from_env())
        models = env_models
    if config.migrate:
        await asyncio.to_thread(apply_migrations, config.database_url)
    pool = await create_pool(config.database_url, max_size=config.pool_size)
    closers: list[Any] = []
    session_client: SessionApiClient | None = None
    if config.session_api_target:
        session_client = SessionApiClient(config.session_api_target)
        closers.append(session_client.close)
    if escalations is None:
        if session_client is not None:
            escalations = SessionApiEscalations(session_client)
        else:
            log.warning("no SWITCHBOARD_SESSION_API: escalations are only logged in memory")
            escalations = InMemoryEscalations()
    thread_store = store or GrpcThreadStore(config.thread_store_target)
    if sessions is None and session_client is not None:
        sessions = SessionApiLinks(session_client)
    redis_clients = []
    run_log: RunLog | None = None
    repository = RunRepository(pool, holder=replica_id(), lease_seconds=config.limits.lease_seconds)
    if config.redis_url:
        # A run waits for its log append before its client sees the events: a
        # second, not the cache's quarter, before the log counts as down.
        writer = create_redis(config.redis_url, timeout=1.0, pool_size=LOG_POOL_SIZE)
        reader = create_redis(config.redis_url, timeout=30.0, pool_size=JOIN_POOL_SIZE)
        subscriber = create_redis(config.redis_url, timeout=30.0)
        redis_clients = [writer, reader, subscriber]
        run_log = RunLog(writer, reader)
    else:
        log.warning("no REDIS_URL: runs can be joined and cancelled quickly only on the replica that holds them")
    handoffs = Handoffs(thread_store, escalations, sessions, config.handoff)
    catalog = AgentCatalog(agents, models, TaskRepository(pool), handoffs)
    service = AgentRunnerService(
        store=thread_store,
        catalog=catalog,
        runs=repository,
        log=run_log,
        sessions=sessions,
        limits=config.limits,
        handoffs=handoffs,
        signal_clients=(redis_clients[0], redis_clients[2]) if redis_clients else None,
    )
    await service.start_background()

    async def close() -> None:
        await service.close()
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
        agent_runner_pb2_grpc.add_AgentRunnerServicer_to_server(AgentRunnerServicer(service), server)

    return GrpcServer(name=SERVICE_NAME, register=register, on_stop=close, auth=auth), service


async def serve(config: AgentRunnerConfig, *, host: str, port: int) -> None:
    """Run the agent runner until SIGTERM/SIGINT."""
    server, _service = await build_agent_runner(config)
    register_collectors(runs_collector(config.database_url))  # runs by status, counted at scrape time
    await server.serve_until_signalled(
        host, port, metrics_port=env_int("SWITCHBOARD_AGENT_RUNNER_METRICS_PORT", 0, minimum=0)
    )
