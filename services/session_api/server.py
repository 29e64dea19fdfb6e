"""The session_api process: pools, servicer, health, reflection, graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from services.session_api.auth import AuthConfig, TokenVerifier
from services.session_api.feed import SessionFeed
from services.session_api.hosted import HostedChatKit, HostedWorkflows
from services.session_api.liveness import SessionLiveness
from services.session_api.metrics import session_api_collectors
from services.session_api.repository import QUERIES_DIR, SessionRepository
from services.session_api.service import SessionLimits, SessionService
from services.session_api.servicer import SessionApiServicer
from services.session_api.webhook_admin import WebhookAdmin
from services.session_api.webhooks import WebhookConfig, WebhookRepository, start_delivery
from switchboard.agents_file import load_agents_file
from switchboard.api.v1 import session_api_pb2, session_api_pb2_grpc
from switchboard.config import env_float, env_int, env_str
from switchboard.grpc_runtime import GrpcServer
from switchboard.migrate import apply_migrations
from switchboard.principal import Principal
from switchboard.redis_client import RedisPools, create_service_redis
from switchboard.scrape_metrics import register_collectors
from switchboard.service_auth import ServerAuth
from switchboard.sql import Queries, create_pool

log = logging.getLogger(__name__)

SERVICE_NAME = session_api_pb2.DESCRIPTOR.services_by_name["SessionApi"].full_name
DEFAULT_PORT = 50053


@dataclass(frozen=True)
class SessionApiConfig:
    """Everything session_api needs to start.

    Attributes:
        database_url: Postgres.
        redis_url: Redis, or None to run without watch and cross-replica revocation.
        auth: Token verification and session tokens.
        limits: Size limits.
        session_status_ttl_seconds: How long a replica trusts "this session is active".
        migrate: Apply pending migrations at start-up.
        pool_size: Postgres connections.
        redis_pools: Redis connections for commands and for watches (bounded; past them a call waits).
        metrics_port: Serve Prometheus metrics over HTTP on this port (0: off).
        webhooks: Outgoing webhooks: the deployment's endpoint and how this replica delivers.
        agents_file: The agents file (``SWITCHBOARD_AGENTS_FILE``; None: the default set), read for
            the agents that are OpenAI-hosted ChatKit workflows.
    """

    database_url: str
    redis_url: str | None
    auth: AuthConfig = field(default_factory=AuthConfig)
    limits: SessionLimits = field(default_factory=SessionLimits)
    session_status_ttl_seconds: float = 5.0
    migrate: bool = True
    pool_size: int = 10
    redis_pools: RedisPools = field(default_factory=RedisPools)
    metrics_port: int = 0
    webhooks: WebhookConfig = field(default_factory=WebhookConfig)
    agents_file: Path | None = None

    @classmethod
    def from_env(cls, *, database_url: str, redis_url: str | None) -> SessionApiConfig:
        """Read the ``SWITCHBOARD_*`` variables of authentication, limits and metrics."""
        return cls(
            database_url=database_url,
            redis_url=redis_url,
            auth=AuthConfig.from_env(),
            limits=SessionLimits.from_env(),
            session_status_ttl_seconds=env_float("SWITCHBOARD_SESSION_STATUS_TTL_SECONDS", 5.0),
            pool_size=env_int("SWITCHBOARD_DB_POOL_SIZE", 10, minimum=1),
            redis_pools=RedisPools.from_env(),
            metrics_port=env_int("SWITCHBOARD_SESSION_API_METRICS_PORT", 0),
            webhooks=WebhookConfig.from_env(),
            agents_file=Path(agents_file) if (agents_file := env_str("SWITCHBOARD_AGENTS_FILE")) else None,
        )


async def build_session_api(config: SessionApiConfig) -> tuple[GrpcServer, SessionService]:
    """Open pools and assemble the server (not started yet).

    Raises:
        InvalidArgument: authentication is on and ``SWITCHBOARD_INTERNAL_SECRET`` is missing or short.
    """
    auth = ServerAuth.from_env("session_api", users=None)
    if config.migrate:
        await asyncio.to_thread(apply_migrations, config.database_url)
    pool = await create_pool(config.database_url, max_size=config.pool_size)
    queries = Queries.load(QUERIES_DIR)
    repository = SessionRepository(pool, queries)
    # Every replica delivers webhooks (SKIP LOCKED shares the work); see services/session_api/webhooks.py.
    webhooks = WebhookRepository(pool, queries)
    stop_webhooks = await start_delivery(
        database_url=config.database_url, repository=webhooks, queries=queries, config=config.webhooks
    )
    liveness = SessionLiveness(repository.session_status, active_ttl_seconds=config.session_status_ttl_seconds)
    verifier = TokenVerifier(config.auth, liveness.is_active)
    feed: SessionFeed | None = None
    clients = []
    if config.redis_url:
        client, blocking = create_service_redis(config.redis_url, config.redis_pools)
        clients = [client, blocking]
        feed = SessionFeed(client, blocking)
        feed.listen_for_revocations(liveness.mark_finished, liveness.forget_active)
    else:
        log.warning(
            "no REDIS_URL: session_api runs without the live watch, and a cancelled session's client secret "
            "may still pass on other replicas for SWITCHBOARD_SESSION_STATUS_TTL_SECONDS"
        )
    # Hosted sessions: which agents OpenAI runs, and OpenAI's ChatKit API (OPENAI_API_KEY).
    workflows = HostedWorkflows.from_agents(load_agents_file(config.agents_file), HostedWorkflows.default_from_env())
    hosted = HostedChatKit.from_env()
    service = SessionService(repository, verifier, liveness, feed, config.limits, workflows=workflows, hosted=hosted)

    async def user_principal(token: str) -> Principal:
        # session_api is the one place that knows sessions: it verifies users' tokens itself.
        return (await verifier.verify(token)).principal

    auth.users = user_principal

    async def close() -> None:
        await stop_webhooks()
        if hosted is not None:
            await hosted.close()
        if feed is not None:
            await feed.close()
        for c in clients:
            await c.aclose()
        await pool.close()

    servicer = SessionApiServicer(service, WebhookAdmin(webhooks, config.webhooks))

    def register(server: object) -> None:
        session_api_pb2_grpc.add_SessionApiServicer_to_server(servicer, server)

    return GrpcServer(name=SERVICE_NAME, register=register, on_stop=close, auth=auth), service


async def serve(config: SessionApiConfig, *, host: str, port: int) -> None:
    """Run session_api until SIGTERM/SIGINT."""
    server, service = await build_session_api(config)
    # Escalations waiting and the session feed's lag, read at scrape time.
    register_collectors(*session_api_collectors(config.database_url, service.feed))
    await server.serve_until_signalled(host, port, metrics_port=config.metrics_port)
