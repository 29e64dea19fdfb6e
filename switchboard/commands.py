"""Shared subcommands: ``migrate`` and ``up``."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import Any

from switchboard.config import StorageConfig
from switchboard.embedded import EmbeddedUrls, storage_urls
from switchboard.migrate import apply_migrations


@contextlib.contextmanager
def storage_from_env() -> Iterator[EmbeddedUrls]:
    """Postgres and Redis from ``DATABASE_URL``/``REDIS_URL``, or embedded servers for those unset."""
    config = StorageConfig.from_env()
    with storage_urls(config.database_url, config.redis_url, config.data_dir) as urls:
        yield urls


def _migrate(args: argparse.Namespace) -> int:
    with storage_from_env() as urls:
        applied = apply_migrations(urls.database_url)
    print(f"applied {len(applied)} migration(s): {', '.join(applied)}" if applied else "database is up to date")
    return 0


def _up(args: argparse.Namespace) -> int:
    from switchboard.stack import run_stack

    return run_stack(host=args.host)


def register(subparsers: Any) -> None:
    """Add ``migrate`` and ``up``."""
    migrate = subparsers.add_parser("migrate", help="apply pending database migrations")
    migrate.set_defaults(handler=_migrate)
    up = subparsers.add_parser("up", help="run the whole stack (embedded Postgres/Redis unless configured)")
    up.add_argument("--host", default="127.0.0.1", help="address the services listen on")
    up.set_defaults(handler=_up)
