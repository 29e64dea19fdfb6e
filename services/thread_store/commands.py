"""Handlers of the thread store's subcommands, ``thread-store`` and ``threads export|import`` (declared in
``switchboard.cli``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from services.thread_store.server import ThreadStoreConfig, build_thread_store, serve
from services.thread_store.transfer import export_user, import_user
from switchboard.errors import InvalidArgument
from switchboard.principal import Principal
from switchboard.progress import line_progress


def serve_command(args: argparse.Namespace) -> int:
    """``switchboard thread-store``."""
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
        with line_progress() as progress:
            task = progress.add_task("exporting", total=None)
            async for line in export_user(service, principal):
                out.write(line + "\n")
                lines += 1
                progress.advance(task)
    finally:
        if out is not sys.stdout:
            out.close()
        await server.stop()
    print(f"exported {lines} line(s) of user {args.user!r}", file=sys.stderr)
    return 0


def _count_lines(source: BinaryIO) -> int | None:
    """The lines of a regular file (read once, then rewound), or None for a pipe."""
    if not source.seekable():
        return None
    count = 0
    last = b"\n"
    for chunk in iter(lambda: source.read(1 << 20), b""):
        count += chunk.count(b"\n")
        last = chunk[-1:]
    source.seek(0)
    return count + (last != b"\n")


async def _import(args: argparse.Namespace, database_url: str, redis_url: str | None) -> int:
    try:
        source: BinaryIO = open(args.file, "rb") if args.file != "-" else sys.stdin.buffer  # noqa: SIM115
    except OSError as error:
        raise InvalidArgument(f"cannot read {args.file}: {error.strerror}") from None

    try:
        total = _count_lines(source)
        principal = Principal.create(user_id=args.user, org_id=args.org)
        server, service = await build_thread_store(ThreadStoreConfig(database_url=database_url, redis_url=redis_url))
        with line_progress() as progress:
            checking = progress.add_task("checking", total=total)
            writing = progress.add_task("writing", total=total, start=False)

            def counted(lines: Iterable[bytes]) -> Iterator[bytes]:
                for line in lines:
                    progress.advance(checking)
                    yield line

            def report(phase: str, line: int) -> None:
                if phase == "written":
                    progress.start_task(writing)
                    progress.update(writing, completed=line)

            try:
                # Every line is checked before any is written: a bad line leaves the store as it was.
                counts = await import_user(service, principal, counted(source), progress=report)
                progress.update(writing, completed=total)
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


def transfer_command(args: argparse.Namespace) -> int:
    """``switchboard threads export|import``."""
    from switchboard.commands import storage_from_env

    with storage_from_env() as urls:
        run = _export if args.direction == "export" else _import
        return asyncio.run(run(args, urls.database_url, urls.redis_url))
