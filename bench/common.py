"""What the benchmarks share: storage for the run, child servers, timing and tables."""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import grpc
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc

from switchboard.embedded import embedded_postgres, embedded_redis
from switchboard.migrate import apply_migrations


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def bench_storage() -> Iterator[tuple[str, str]]:
    """A fresh migrated database and a Redis: the configured servers, or embedded ones."""
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="switchboard-bench-")))
        server_url = os.environ.get("DATABASE_URL") or stack.enter_context(embedded_postgres(tmp))
        redis_url = os.environ.get("REDIS_URL") or stack.enter_context(embedded_redis(tmp))
        name = f"sbbench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        parts = urlsplit(server_url)
        url = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))
        apply_migrations(url)
        try:
            yield url, redis_url
        finally:
            with psycopg.connect(server_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def child_process(args: list[str], env: dict[str, str | None]) -> Iterator[subprocess.Popen[bytes]]:
    """Run a child process with ``env`` applied (None removes a variable); stop it on exit."""
    full = dict(os.environ)
    for key, value in env.items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    full.setdefault("SWITCHBOARD_LOG_LEVEL", "WARNING")
    proc = subprocess.Popen(args, env=full)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def switchboard_command(*args: str) -> list[str]:
    """The ``switchboard`` CLI of this interpreter."""
    return [sys.executable, "-m", "switchboard.cli", *args]


async def wait_healthy(target: str, *, timeout: float = 30.0) -> None:
    """Wait until a gRPC server answers its health check with SERVING."""
    deadline = time.monotonic() + timeout
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{target} did not become healthy within {timeout:.0f}s")
            await _sleep(0.1)


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


async def sample_latencies(call: Callable[[], Awaitable[object]], *, n: int, warmup: int = 30) -> list[float]:
    """Seconds per call, sequentially, after a warm-up."""
    for _ in range(warmup):
        await call()
    out = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        out.append(time.perf_counter() - started)
    return out


async def throughput(call: Callable[[], Awaitable[object]], *, concurrency: int, seconds: float) -> float:
    """Calls per second with ``concurrency`` callers looping for ``seconds``."""
    import asyncio

    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await call()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - started)


def pct(samples: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of samples."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median(samples: list[float]) -> float:
    """The median."""
    return statistics.median(samples)


def ms(seconds: float) -> str:
    """Seconds as milliseconds for a table."""
    return f"{seconds * 1000:8.3f} ms"


def print_table(title: str, rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> None:
    """Print aligned columns."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    print("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


@contextlib.asynccontextmanager
async def grpc_channel(target: str) -> AsyncIterator[grpc.aio.Channel]:
    """An insecure channel, closed on exit."""
    channel = grpc.aio.insecure_channel(target)
    try:
        await channel.channel_ready()
        yield channel
    finally:
        await channel.close(None)
