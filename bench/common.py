"""What the benchmarks share: storage for the run, child servers, timing and tables."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from switchboard.embedded import embedded_postgres, embedded_redis
from switchboard.principal import Principal
from switchboard.service_auth import mint_service_token
from tests.conftest import migrated_database

# The run's internal key: every child server authenticates its gRPC calls with it (as in
# production), and the bench's own clients mint their service tokens with it.
os.environ.setdefault("SWITCHBOARD_INTERNAL_SECRET", secrets.token_urlsafe(48))


def service_metadata(audience: str, principal: Principal | None = None) -> tuple[tuple[str, str], ...]:
    """Call metadata for a raw stub: a service token for ``audience``, acting for ``principal``
    (or as a service that may call anything), reused for the whole run as a client reuses one."""
    secret = os.environ["SWITCHBOARD_INTERNAL_SECRET"].encode()
    token, _ = mint_service_token(
        secret, audience=audience, service="bench", principal=principal, scopes=("*",), seconds=3600
    )
    return (("authorization", f"Bearer {token}"),)


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
        url = stack.enter_context(migrated_database(server_url, "sbbench"))
        yield url, redis_url


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


# -- the stack as processes: every service its own process, as in production ----------

STACK_JWT_SECRET = "bench-edge-secret-that-is-long-enough-for-hs256-0123456789"
STACK_ORG = "bench"


def stack_token(user_id: str, *, operator: bool = False) -> str:
    """A bearer token the stack's session_api accepts: ``user_id`` in the bench's org (an operator's on request)."""
    from services.session_api.auth import mint_development_token

    roles = ["operator"] if operator else None
    return mint_development_token(STACK_JWT_SECRET, user_id=user_id, org_id=STACK_ORG, roles=roles, ttl_seconds=3600)


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header of a bearer token."""
    return {"Authorization": f"Bearer {token}"}


def stack_env(database_url: str, redis_url: str, *, thread_store: int, session_api: int) -> dict[str, str | None]:
    """What every server of the stack runs with: the storage, the JWT secret, the offline model, no rate limit."""
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SWITCHBOARD_JWT_SECRET": STACK_JWT_SECRET,
        "SWITCHBOARD_MODEL": "offline",
        "OPENAI_API_KEY": None,
        "OPENAI_BASE_URL": None,
        "SWITCHBOARD_THREAD_STORE": f"127.0.0.1:{thread_store}",
        "SWITCHBOARD_SESSION_API": f"127.0.0.1:{session_api}",
        "SWITCHBOARD_EDGE_RATE_PER_SECOND": "1000000",
        "SWITCHBOARD_EDGE_RATE_BURST": "1000000",
    }


@dataclass(frozen=True)
class Server:
    """A child server of a bench: how to start it and how to tell it is up.

    Attributes:
        name: What the bench calls it.
        command: Its command line.
        env: Its own variables over the stack's (None removes one).
        grpc_target: The gRPC target whose health check says it is up, or None.
        http_url: The base URL whose ``GET /healthz`` says it is up, or None.
    """

    name: str
    command: list[str]
    env: Mapping[str, str | None] = field(default_factory=dict)
    grpc_target: str | None = None
    http_url: str | None = None


def grpc_service(name: str, subcommand: str, port: int, **env: str | None) -> Server:
    """``switchboard <subcommand> --port PORT``, up once its gRPC health check says SERVING."""
    return Server(name, switchboard_command(subcommand, "--port", str(port)), env, grpc_target=f"127.0.0.1:{port}")


def edge_service(name: str, port: int, runner_port: int, **env: str | None) -> Server:
    """``switchboard edge --port PORT`` in front of the agent runner on ``runner_port``, up once /healthz answers."""
    env = {"SWITCHBOARD_AGENT_RUNNER": f"127.0.0.1:{runner_port}", **env}
    return Server(name, switchboard_command("edge", "--port", str(port)), env, http_url=f"http://127.0.0.1:{port}")


def start_servers(
    stack: contextlib.ExitStack, servers: Sequence[Server], env: Mapping[str, str | None]
) -> dict[str, subprocess.Popen[bytes]]:
    """Start every server with ``env`` and its own variables, stopped when ``stack`` closes; processes by name."""
    return {s.name: stack.enter_context(child_process(s.command, {**env, **s.env})) for s in servers}


async def wait_servers(
    servers: Sequence[Server], processes: Mapping[str, subprocess.Popen[bytes]], *, timeout: float = 90.0
) -> None:
    """Wait until every server says it is up; fail at once when one exits."""

    async def exited() -> None:
        while True:
            for name, process in processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with code {process.returncode} while starting; see above")
            await asyncio.sleep(0.2)

    checks = [wait_healthy(s.grpc_target, timeout=timeout) for s in servers if s.grpc_target]
    checks += [wait_http(s.http_url, timeout=timeout) for s in servers if s.http_url]
    healthy = asyncio.gather(*checks)
    watch = asyncio.ensure_future(exited())
    either: list[asyncio.Future[Any]] = [healthy, watch]
    try:
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        healthy.cancel()
    for task in either:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise RuntimeError("the stack did not start") from task.exception()


async def wait_http(url: str, *, timeout: float = 60.0) -> None:
    """Wait until ``url`` answers ``GET /healthz`` with 200."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=1) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/healthz")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer /healthz within {timeout:.0f}s")
            await asyncio.sleep(0.1)


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
            await asyncio.sleep(0.1)


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
