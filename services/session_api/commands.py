"""Handler of ``switchboard session-api`` (declared in ``switchboard.cli``, which also mints development tokens)."""

from __future__ import annotations

import argparse
import asyncio

from services.session_api.server import SessionApiConfig, serve


def serve_command(args: argparse.Namespace) -> int:
    """``switchboard session-api``."""
    from switchboard.commands import storage_from_env

    with storage_from_env() as urls:
        config = SessionApiConfig.from_env(database_url=urls.database_url, redis_url=urls.redis_url)
        asyncio.run(serve(config, host=args.host, port=args.port))
    return 0
