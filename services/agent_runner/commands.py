"""Handlers of the agent runner's subcommands, ``agent-runner`` and ``mcp-tasks`` (declared in ``switchboard.cli``)."""

from __future__ import annotations

import argparse
import asyncio

from services.agent_runner.server import AgentRunnerConfig, serve


def serve_command(args: argparse.Namespace) -> int:
    """``switchboard agent-runner``."""
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


def tasks_command(args: argparse.Namespace) -> int:
    """``switchboard mcp-tasks``."""
    from switchboard.commands import storage_from_env

    with storage_from_env() as urls:
        asyncio.run(_serve_tasks(urls.database_url, args.user))
    return 0
