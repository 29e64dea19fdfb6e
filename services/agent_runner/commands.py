"""Subcommands of the agent runner: ``agent-runner`` and ``mcp-tasks``."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from services.agent_runner.server import DEFAULT_PORT, AgentRunnerConfig, serve


def _serve(args: argparse.Namespace) -> int:
    from switchboard.commands import storage_from_env

    with storage_from_env() as urls:
        config = AgentRunnerConfig.from_env(database_url=urls.database_url, redis_url=urls.redis_url)
        asyncio.run(serve(config, host=args.host, port=args.port))
    return 0


async def _serve_tasks(database_url: str, user: str) -> None:
    from services.agent_runner.tasks import TaskRepository, build_task_server
    from switchboard.migrate import apply_migrations
    from switchboard.sql import create_pool

    await asyncio.to_thread(apply_migrations, database_url)
    pool = await create_pool(database_url, max_size=2)
    try:
        await build_task_server(TaskRepository(pool), user).run_stdio_async()
    finally:
        await pool.close()


def _tasks(args: argparse.Namespace) -> int:
    from switchboard.commands import storage_from_env

    with storage_from_env() as urls:
        asyncio.run(_serve_tasks(urls.database_url, args.user))
    return 0


def register(subparsers: Any) -> None:
    """Add ``agent-runner`` and ``mcp-tasks``."""
    serve_parser = subparsers.add_parser("agent-runner", help="run the agent runner gRPC server")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve_parser.set_defaults(handler=_serve)

    tasks = subparsers.add_parser(
        "mcp-tasks", help="serve one user's tasks as an MCP server over stdio (for desktop MCP clients)"
    )
    tasks.add_argument("--user", required=True, help="the user whose tasks the server exposes")
    tasks.set_defaults(handler=_tasks)
