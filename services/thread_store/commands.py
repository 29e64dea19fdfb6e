"""Subcommands of the thread store: ``thread-store`` and ``threads export|import``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from services.thread_store.server import DEFAULT_PORT, ThreadStoreConfig, build_thread_store, serve
from services.thread_store.transfer import export_user, import_user
from switchboard.errors import InvalidArgument
from switchboard.principal import Principal


def _serve(args: argparse.Namespace) -> int:
    from switchboard.commands import storage_from_env

    with storage_from_env() as urls:
        config = ThreadStoreConfig.from_env(database_url=urls.database_url, redis_url=urls.redis_url)
        asyncio.run(serve(config, host=args.host, port=args.port))
    return 0


async def _export(args: argparse.Namespace, database_url: str, redis_url: str | None) -> int:
    server, service = await build_thread_store(ThreadStoreConfig(database_url=database_url, redis_url=redis_url))
    principal = Principal.create(user_id=args.user)
    out = open(args.file, "w") if args.file != "-" else sys.stdout  # noqa: SIM115
    lines = 0
    try:
        async for line in export_user(service, principal):
            out.write(line + "\n")
            lines += 1
    finally:
        if out is not sys.stdout:
            out.close()
        await server.stop()
    print(f"exported {lines} line(s) of user {args.user!r}", file=sys.stderr)
    return 0


async def _import(args: argparse.Namespace, database_url: str, redis_url: str | None) -> int:
    try:
        source = open(args.file, "rb") if args.file != "-" else sys.stdin.buffer  # noqa: SIM115
    except OSError as error:
        raise InvalidArgument(f"cannot read {args.file}: {error.strerror}") from None

    def report(phase: str, line: int) -> None:
        print(f"{phase} {line} line(s)", file=sys.stderr, flush=True)

    try:
        principal = Principal.create(user_id=args.user, org_id=args.org)
        server, service = await build_thread_store(ThreadStoreConfig(database_url=database_url, redis_url=redis_url))
        try:
            # Every line is checked before any is written: a bad line leaves the store as it was.
            counts = await import_user(service, principal, source, progress=report)
        finally:
            await server.stop()
    finally:
        if source is not sys.stdin.buffer:
            source.close()
    print(
        f"imported {counts.threads} thread(s), {counts.items} item(s), {counts.attachments} attachment(s)"
        f" as user {args.user!r}",
        file=sys.stderr,
    )
    return 0


def _transfer(args: argparse.Namespace) -> int:
    from switchboard.commands import storage_from_env

    with storage_from_env() as urls:
        run = _export if args.direction == "export" else _import
        return asyncio.run(run(args, urls.database_url, urls.redis_url))


def register(subparsers: Any) -> None:
    """Add ``thread-store`` and ``threads``."""
    serve_parser = subparsers.add_parser("thread-store", help="run the thread store gRPC server")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve_parser.set_defaults(handler=_serve)

    threads = subparsers.add_parser("threads", help="export or import a user's threads as JSON Lines")
    threads.add_argument("direction", choices=["export", "import"])
    threads.add_argument("--user", required=True, help="the user whose threads move")
    threads.add_argument("--org", default=None, help="import: the org the threads belong to")
    threads.add_argument("--file", default="-", help="file to write or read ('-': stdout/stdin)")
    threads.set_defaults(handler=_transfer)
