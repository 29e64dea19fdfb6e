"""Shared fixtures: real Postgres and Redis, never mocks.

``DATABASE_URL`` / ``REDIS_URL`` point at servers to use (CI uses the
machine's); when unset, embedded servers from pip packages start under a
temporary folder. Each test session gets a database of its own, so parallel
runs never see each other's rows; tests use fresh user ids for Redis keys.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

# The whole suite runs with gRPC authentication on: every server (in-process or a child
# process, which inherits this environment) verifies service tokens signed with this key,
# and every client mints them. Tests of refusals build their own credentials.
INTERNAL_SECRET = "test-internal-secret-" + uuid.uuid4().hex
os.environ["SWITCHBOARD_INTERNAL_SECRET"] = INTERNAL_SECRET
os.environ.pop("SWITCHBOARD_GRPC_AUTH", None)

from switchboard.embedded import (  # noqa: E402
    embedded_postgres,
    embedded_redis,
    start_redis_process,
    stop_process,
    wait_for_redis,
)
from switchboard.migrate import apply_migrations  # noqa: E402


def with_database(url: str, name: str) -> str:
    """``url`` with another database name."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@pytest.fixture(scope="session")
def server_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Postgres server: ``DATABASE_URL`` or an embedded one."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    with embedded_postgres(tmp_path_factory.mktemp("pg")) as embedded_url:
        yield embedded_url


@contextmanager
def migrated_database(server_database_url: str, prefix: str = "sbtest") -> Iterator[str]:
    """A fresh, migrated database on the server while the block runs, dropped after it."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server_database_url, name)
    try:
        apply_migrations(url)
        yield url
    finally:
        with psycopg.connect(server_database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def copied_database(server_database_url: str, template_url: str, prefix: str = "sbcopy") -> Iterator[str]:
    """A database copied from a migrated one (``template_url``, e.g. a module's
    ``migrated_database``) while the block runs, dropped after it: faster than migrating again."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    template = urlsplit(template_url).path.lstrip("/")
    with psycopg.connect(server_database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield with_database(server_database_url, name)
    finally:
        with psycopg.connect(server_database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(server_database_url: str) -> Iterator[str]:
    """A fresh, migrated database of this test session, dropped at the end."""
    with migrated_database(server_database_url) as url:
        yield url


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis server: ``REDIS_URL`` or an embedded one."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    with embedded_redis(tmp_path_factory.mktemp("redis")) as embedded_url:
        yield embedded_url


class PrivateRedis:
    """A redis-server this test owns and may stop and start again on the same port."""

    def __init__(self, run_dir: Path, port: int) -> None:
        self.run_dir = run_dir
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (or restart) the server."""
        self.proc = start_redis_process(self.run_dir, port=self.port)
        wait_for_redis(self.url, timeout=10, proc=self.proc)

    def stop(self) -> None:
        """Stop the server."""
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A Redis server of this test alone."""
    server = PrivateRedis(tmp_path, free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def user_id() -> str:
    """A user id no other test uses."""
    return f"user-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def unique_org() -> AsyncIterator[str]:
    """An org id no other test uses."""
    yield f"org-{uuid.uuid4().hex[:8]}"
