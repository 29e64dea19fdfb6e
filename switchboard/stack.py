"""``switchboard up``: the whole stack from one command.

Starts Postgres and Redis (embedded unless ``DATABASE_URL``/``REDIS_URL`` are
set), applies migrations, starts every service as a child process, waits until
each is healthy, prints how to reach it, restarts a child that dies (with
back-off), and on Ctrl-C/SIGTERM stops everything cleanly. Data survives: the
next ``up`` finds the same Postgres data directory.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from switchboard.commands import storage_from_env
from switchboard.config import StorageConfig
from switchboard.migrate import apply_migrations

HEALTH_TIMEOUT = 60.0
MAX_BACKOFF = 30.0


@dataclass
class Child:
    """A service the stack runs and watches."""

    name: str
    command: str
    port: int
    http: bool = False  # health at GET /healthz instead of gRPC health
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)

    @property
    def target(self) -> str:
        """Where it listens."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """How a client reaches it."""
        return f"http://{self.target}" if self.http else f"grpc://{self.target}"


def stack_children() -> list[Child]:
    """The services of the stack, with ports from ``SWITCHBOARD_<NAME>_PORT``."""
    specs = [
        ("thread_store", "thread-store", 50051),
        ("session_api", "session-api", 50053),
        ("agent_runner", "agent-runner", 50052),
        ("edge", "edge", 8000),
    ]
    return [
        Child(name, cmd, int(os.environ.get(f"SWITCHBOARD_{name.upper()}_PORT", port)), http=name == "edge")
        for name, cmd, port in specs
    ]


def development_secret(data_dir: Path) -> str:
    """A JWT secret kept in the data directory, for a stack with no identity provider configured."""
    path = data_dir / "dev-jwt-secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def _mint(env: dict[str, str], *args: str) -> str:
    command = [sys.executable, "-m", "switchboard.cli", "token", *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else f"(could not mint: {done.stderr.strip()})"


def _start(child: Child, env: dict[str, str], host: str) -> None:
    args = [sys.executable, "-m", "switchboard.cli", child.command, "--host", host, "--port", str(child.port)]
    child.process = subprocess.Popen(args, env=env)
    child.started_at = time.monotonic()


def _healthy(child: Child) -> bool:
    if child.http:
        try:
            with urllib.request.urlopen(f"{child.url}/healthz", timeout=1) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False
    with grpc.insecure_channel(child.target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def _wait_healthy(children: list[Child]) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT
    waiting = list(children)
    while waiting:
        for child in list(waiting):
            if child.process is not None and child.process.poll() is not None:
                raise RuntimeError(
                    f"{child.name} exited with code {child.process.returncode} while starting; its log is above"
                )
            if _healthy(child):
                print(f"  {child.name:<13} healthy on {child.target}", flush=True)
                waiting.remove(child)
        if waiting and time.monotonic() > deadline:
            names = ", ".join(c.name for c in waiting)
            raise RuntimeError(f"{names} did not become healthy within {HEALTH_TIMEOUT:.0f}s; see the log above")
        time.sleep(0.2)


def _stop(children: list[Child]) -> None:
    for child in children:
        if child.process is not None and child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    for child in children:
        if child.process is not None:
            try:
                child.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.process.kill()


def run_stack(*, host: str = "127.0.0.1") -> int:
    """Run the stack until interrupted; returns the exit code."""
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print("==> starting storage (embedded Postgres/Redis unless DATABASE_URL/REDIS_URL are set)", flush=True)
    with storage_from_env() as urls:
        print("==> applying migrations", flush=True)
        apply_migrations(urls.database_url)
        env = {**os.environ, "DATABASE_URL": urls.database_url, "REDIS_URL": urls.redis_url}
        dev_secret = not (env.get("SWITCHBOARD_JWT_SECRET") or env.get("SWITCHBOARD_JWKS_URL"))
        if dev_secret:
            env["SWITCHBOARD_JWT_SECRET"] = development_secret(StorageConfig.from_env().data_dir)
        children = stack_children()
        ports = {c.name: c.port for c in children}
        env.setdefault("SWITCHBOARD_THREAD_STORE", f"127.0.0.1:{ports['thread_store']}")
        env.setdefault("SWITCHBOARD_SESSION_API", f"127.0.0.1:{ports['session_api']}")
        env.setdefault("SWITCHBOARD_AGENT_RUNNER", f"127.0.0.1:{ports['agent_runner']}")
        print("==> starting services", flush=True)
        for child in children:
            _start(child, env, host)
        try:
            _wait_healthy(children)
        except RuntimeError as error:
            print(f"switchboard up: {error}", file=sys.stderr)
            _stop(children)
            return 1
        _print_ready(children, env if dev_secret else None)
        while not stopping:
            _supervise(children, env, host)
            time.sleep(0.5)
        print("\n==> stopping services", flush=True)
        _stop(children)
    print("==> stopped; data is kept for the next 'switchboard up'", flush=True)
    return 0


def _supervise(children: list[Child], env: dict[str, str], host: str) -> None:
    now = time.monotonic()
    for child in children:
        proc = child.process
        if proc is not None and proc.poll() is not None:
            # Back off exponentially, but forgive a child that ran for a minute.
            if now - child.started_at > 60:
                child.restarts = 0
            delay = min(MAX_BACKOFF, 0.5 * 2**child.restarts)
            print(f"!! {child.name} exited with code {proc.returncode}; restarting in {delay:.1f}s", flush=True)
            child.process = None
            child.restarts += 1
            child.next_start = now + delay
        if child.process is None and now >= child.next_start:
            _start(child, env, host)


def _print_ready(children: list[Child], dev_env: dict[str, str] | None) -> None:
    for child in children:
        print(f"  {child.name:<13} {child.url}")
    edge = next(c for c in children if c.name == "edge")
    print(f"\nChatKit endpoint: {edge.url}/chatkit   (API docs: {edge.url}/docs)")
    if dev_env is not None:
        print("\nNo SWITCHBOARD_JWT_SECRET or SWITCHBOARD_JWKS_URL: using a DEVELOPMENT secret kept in the data dir.")
        print(f"  user token (dev-user, org dev):  {_mint(dev_env, '--user', 'dev-user', '--org', 'dev')}")
        operator = _mint(dev_env, "--user", "dev-operator", "--org", "dev", "--operator")
        print(f"  operator token (dev-operator):   {operator}")
        print("\nOpen the operator console (it finds the development secret itself):  make console")
    else:
        print("\nOpen the operator console:  switchboard console --token <an operator token>")
    print("\nSwitchboard is up.", flush=True)
    print("Press Ctrl-C to stop.\n", flush=True)
