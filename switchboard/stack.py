"""``switchboard up``: the whole stack from one command.

Checks that every port is free (naming the process that holds one), checks
``DATABASE_URL``/``REDIS_URL`` (or starts embedded Postgres and Redis), applies
migrations, starts every service as a child process, waits until each is
healthy, prints how to reach it, restarts a child that dies (with back-off), and
on Ctrl-C/SIGTERM (at any moment, start-up included) stops everything cleanly.
Data survives: the next ``up`` finds the same Postgres data directory.

Decisions:

- A service counts as healthy only when *its own child process* listens on its
  port (asked of the kernel through psutil) and then answers its health check.
  A server of another stack on the same port never makes this one "up", and no
  probe connects to a port before the child listens on it, so a probe can never
  take a service's port (a TCP connection to a free port of this host can pick
  that very port as its source and connect to itself).
- Children run in their own process group, so a Ctrl-C in the terminal reaches
  ``up`` alone and ``up`` stops them in order; each child also asks the kernel
  for SIGTERM when ``up`` dies (``PR_SET_PDEATHSIG``, see ``switchboard.cli``),
  so even ``kill -9`` of ``up`` leaves no service running.
- Each child's output is relayed line by line, prefixed with its name.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from switchboard.cli import DEFAULT_PORTS, DIE_WITH_PARENT_ENV
from switchboard.config import StorageConfig, env_bool, env_str
from switchboard.embedded import EmbeddedUrls
from switchboard.errors import FailedPrecondition, InvalidArgument

HEALTH_TIMEOUT = 60.0
MAX_BACKOFF = 30.0
PROBE_TIMEOUT = 1.0
TOKEN_TTL_SECONDS = 12 * 3600
COLORS = ("36", "35", "33", "32")  # cyan, magenta, yellow, green


class StackFailed(Exception):
    """A child could not be started; the message says which and why."""


@dataclass
class Child:
    """A service the stack runs and watches."""

    name: str
    command: str
    port: int
    http: bool = False  # health at GET /healthz instead of gRPC health
    color: str = "0"
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)
    # Where Prometheus scrapes a gRPC service (0 until ``up`` picks one); the edge serves /metrics itself.
    metrics_port: int = 0

    @property
    def target(self) -> str:
        """Where it listens."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """How a client reaches it."""
        return f"http://{self.target}" if self.http else f"grpc://{self.target}"

    @property
    def port_variable(self) -> str:
        """The environment variable that sets its port."""
        return f"SWITCHBOARD_{self.name.upper()}_PORT"

    @property
    def metrics_variable(self) -> str:
        """The environment variable that sets its metrics port (gRPC services)."""
        return f"SWITCHBOARD_{self.name.upper()}_METRICS_PORT"

    @property
    def metrics_url(self) -> str:
        """Where Prometheus scrapes it."""
        port = self.port if self.http else self.metrics_port
        return f"http://127.0.0.1:{port}/metrics"


# In start-up order: the agent runner and the edge call the other two.
SERVICES = ("thread_store", "session_api", "agent_runner", "edge")


def _port_setting(variable: str, default: int) -> int:
    raw = env_str(variable, str(default)) or str(default)
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise InvalidArgument(f"{variable}={raw!r} is not a port number (1-65535)")
    return int(raw)


def stack_children() -> list[Child]:
    """The services of the stack, with ports from ``SWITCHBOARD_<NAME>_PORT`` and the gRPC services'
    metrics ports from ``SWITCHBOARD_<NAME>_METRICS_PORT`` (unset: ``assign_metrics_ports`` picks free ones).

    Raises:
        InvalidArgument: a port setting is not a port number, or two services were given the same port.
    """
    children = []
    for name, color in zip(SERVICES, COLORS, strict=True):
        child = Child(name, name.replace("_", "-"), 0, http=name == "edge", color=color)
        child.port = _port_setting(child.port_variable, DEFAULT_PORTS[name])
        if not child.http and env_str(child.metrics_variable):
            child.metrics_port = _port_setting(child.metrics_variable, 0)
        children.append(child)
    seen: dict[int, str] = {}
    for child in children:
        for port, variable in _ports_of(child):
            if port in seen:
                raise InvalidArgument(f"{seen[port]} and {variable} are both {port}: give each service its own port")
            seen[port] = variable
    return children


def _ports_of(child: Child) -> list[tuple[int, str]]:
    """The ports a child listens on, each with the setting that chose it."""
    ports = [(child.port, child.port_variable)]
    if child.metrics_port:
        ports.append((child.metrics_port, child.metrics_variable))
    return ports


def assign_metrics_ports(children: list[Child], host: str) -> None:
    """Give each gRPC service without a ``SWITCHBOARD_<NAME>_METRICS_PORT`` a free port for its metrics.

    Decision: free ports rather than fixed defaults, so several stacks (and test suites) run side by side;
    ``up`` prints them and writes them for Prometheus (``write_prometheus_targets``), and a deployment that
    wants fixed ones sets the variables.
    """
    taken = {port for child in children for port, _ in _ports_of(child)}
    for child in children:
        if child.http or child.metrics_port:
            continue
        while not child.metrics_port or child.metrics_port in taken:
            with socket.socket() as probe:
                probe.bind((host, 0))
                child.metrics_port = int(probe.getsockname()[1])
        taken.add(child.metrics_port)


def write_prometheus_targets(children: list[Child], data_dir: Path) -> Path:
    """Write where every process serves its metrics as a Prometheus ``file_sd_configs`` file (rewritten
    by each ``up``; Prometheus rereads it when it changes).

    Returns:
        The file's path.
    """
    targets = [
        {
            "targets": [child.metrics_url.removeprefix("http://").removesuffix("/metrics")],
            "labels": {"service": child.name},
        }
        for child in children
    ]
    path = data_dir / "prometheus-targets.json"
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(targets, indent=2) + "\n")
    return path


# --- ports -------------------------------------------------------------------------------------------------------


def port_holder(port: int) -> str:
    """Who listens on TCP ``port`` of this host: "pid 123 (python -m switchboard.cli edge ...)", or a hint."""
    import psutil

    try:
        connections = psutil.net_connections(kind="inet")
    except psutil.Error:
        connections = []
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid is None:
                break
            try:
                process = psutil.Process(conn.pid)
                command = " ".join(process.cmdline()) or process.name()
            except psutil.Error:
                command = "a process that just exited"
            if len(command) > 100:
                command = command[:97] + "..."
            return f"pid {conn.pid} ({command})"
    return f"another process (see which with: ss -ltnp 'sport = :{port}')"


def check_ports_free(children: list[Child], host: str) -> None:
    """Bind each service's port once, as its server will.

    Raises:
        FailedPrecondition: a port is taken; one line per port, naming the process and the setting to change.
    """
    problems = []
    for child in children:
        for port, variable in _ports_of(child):
            try:
                family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
            except socket.gaierror as error:
                raise InvalidArgument(f"--host {host!r} is not an address of this machine ({error.strerror})") from None
            with socket.socket(family, kind, proto) as probe:
                # SO_REUSEADDR as the servers set it: a port in TIME_WAIT is free, one with a listener is not.
                # No SO_REUSEPORT: a gRPC server of another stack (which sets it) must make this bind fail.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(address)
                except OSError as error:
                    holder = port_holder(port)
                    problems.append(
                        f"port {port} ({child.name}) is taken by {holder}: stop it, or set "
                        f"{variable} to a free port ({error.strerror})"
                    )
    if problems:
        raise FailedPrecondition("\n  ".join(problems))


# --- children ----------------------------------------------------------------------------------------------------


def child_environment(urls: EmbeddedUrls, children: list[Child], data_dir: Path) -> dict[str, str]:
    """The environment every child starts with: the storage URLs, the JWT secret, where the others are.

    Decisions: with no identity provider configured (``SWITCHBOARD_JWT_SECRET`` / ``SWITCHBOARD_JWKS_URL``)
    the children share a development secret kept in the data dir; the playground is on unless
    ``SWITCHBOARD_PLAYGROUND`` says otherwise.
    """
    env = {**os.environ, "DATABASE_URL": urls.database_url, "REDIS_URL": urls.redis_url}
    if uses_development_secret(env):
        env["SWITCHBOARD_JWT_SECRET"] = development_secret(data_dir)
    if not env.get("SWITCHBOARD_INTERNAL_SECRET"):
        # The key of the service tokens between the children (gRPC authentication is always on under up).
        env["SWITCHBOARD_INTERNAL_SECRET"] = development_secret(data_dir, "internal-secret")
    for child in children:
        if not child.http:
            env.setdefault(f"SWITCHBOARD_{child.name.upper()}", child.target)
            if child.metrics_port:
                env[child.metrics_variable] = str(child.metrics_port)
    env.setdefault("SWITCHBOARD_PLAYGROUND", "on")
    env["PYTHONUNBUFFERED"] = "1"  # lines reach the relay as they are written
    env[DIE_WITH_PARENT_ENV] = str(os.getpid())
    return env


def uses_development_secret(env: dict[str, str]) -> bool:
    """Whether no identity provider is configured, so ``up`` signs tokens with its development secret."""
    return not (env.get("SWITCHBOARD_JWT_SECRET") or env.get("SWITCHBOARD_JWKS_URL"))


def development_secret(data_dir: Path, name: str = "dev-jwt-secret") -> str:
    """A secret kept in the data directory: the JWT secret of a stack with no identity provider
    configured, or (``name="internal-secret"``) the services' internal key."""
    path = data_dir / name
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def _relay(child: Child, stream: IO[bytes], out: IO[str]) -> None:
    """Copy a child's output line by line, each prefixed with the child's name."""
    colored = out.isatty()
    prefix = f"\033[{child.color}m{child.name:<13}|\033[0m " if colored else f"{child.name:<13}| "
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip("\r\n")
        with contextlib.suppress(ValueError, OSError):  # our stdout closed while stopping
            out.write(prefix + line + "\n")
            out.flush()
    stream.close()


def _start(child: Child, env: dict[str, str], host: str) -> None:
    args = [sys.executable, "-m", "switchboard.cli", child.command, "--host", host, "--port", str(child.port)]
    child.process = subprocess.Popen(
        args,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    child.started_at = time.monotonic()
    assert child.process.stdout is not None
    threading.Thread(
        target=_relay, args=(child, child.process.stdout, sys.stdout), name=f"relay-{child.name}", daemon=True
    ).start()


def listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` itself has a listening TCP socket on ``port``."""
    import psutil

    try:
        connections = psutil.Process(pid).net_connections(kind="inet")
    except psutil.Error:
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in connections)


def probe_http(target: str) -> bool:
    """``GET /healthz`` answers 200. Never raises."""
    host, _, port = target.rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=PROBE_TIMEOUT)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except Exception:
        return False
    finally:
        connection.close()


def probe_grpc(target: str) -> bool:
    """The gRPC health service answers SERVING. Never raises."""
    from switchboard.grpc_client import health_status

    try:
        return health_status(target, timeout=PROBE_TIMEOUT) == "SERVING"
    except Exception:
        return False


def healthy(child: Child) -> bool:
    """The child is running, listens on its port itself, and answers its health check."""
    process = child.process
    if process is None or process.poll() is not None or not listens(process.pid, child.port):
        return False
    return probe_http(child.target) if child.http else probe_grpc(child.target)


def _wait_healthy(children: list[Child], timeout: float = HEALTH_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    waiting = list(children)
    while waiting:
        for child in list(waiting):
            if child.process is not None and child.process.poll() is not None:
                raise StackFailed(
                    f"{child.name} exited with code {child.process.returncode} while starting; its log is above"
                )
            if healthy(child):
                print(f"  {child.name:<13} healthy on {child.target}", flush=True)
                waiting.remove(child)
        if waiting and time.monotonic() > deadline:
            names = ", ".join(c.name for c in waiting)
            raise StackFailed(f"{names} did not become healthy within {timeout:.0f}s; see the log above")
        time.sleep(0.1)


def _stop(children: list[Child], grace: float = 10.0) -> None:
    """SIGTERM every child (the edge first), wait, then SIGKILL what is left; a second Ctrl-C kills at once."""
    running = [c.process for c in reversed(children) if c.process is not None and c.process.poll() is None]
    for process in running:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    try:
        for process in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except KeyboardInterrupt:
        pass
    for process in running:
        if process.poll() is None:
            process.kill()
            process.wait()


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


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt wherever ``up`` is, start-up included."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# --- the stack ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DevelopmentTokens:
    """Tokens ``up`` mints with its development secret."""

    user: str
    operator: str
    expires_at: int


def _mint_tokens(env: dict[str, str]) -> DevelopmentTokens:
    from switchboard.cli import mint_token

    secret = env["SWITCHBOARD_JWT_SECRET"]
    user, expires_at = mint_token(secret, user="dev-user", org="dev", ttl=TOKEN_TTL_SECONDS)
    operator, _ = mint_token(secret, user="dev-operator", org="dev", operator=True, ttl=TOKEN_TTL_SECONDS)
    return DevelopmentTokens(user=user, operator=operator, expires_at=expires_at)


def describe_expiry(expires_at: int) -> str:
    """When a token expires, to print: '2026-01-02 03:04 UTC (in 12 h)'."""
    when = datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    left = expires_at - time.time()
    span = f"{left / 3600:.0f} h" if left >= 5400 else f"{max(0, left) / 60:.0f} min"
    return f"{when} (in {span})"


def up_command(args: argparse.Namespace) -> int:
    """``switchboard up``."""
    return run_stack(host=args.host)


def run_stack(*, host: str = "127.0.0.1") -> int:
    """Run the stack until interrupted; returns the exit code (0 after Ctrl-C, 130 if interrupted while starting).

    Raises:
        SwitchboardError: a port is taken, a setting is malformed, or DATABASE_URL/REDIS_URL is unusable.
    """
    from switchboard.commands import storage_from_env

    children = stack_children()
    check_ports_free(children, host)
    assign_metrics_ports(children, host)
    up = False
    with _interruptible():
        try:
            print("==> starting storage (embedded Postgres/Redis unless DATABASE_URL/REDIS_URL are set)", flush=True)
            with storage_from_env() as urls:
                from switchboard.migrate import apply_migrations

                print("==> applying migrations", flush=True)
                apply_migrations(urls.database_url)
                data_dir = StorageConfig.from_env().data_dir
                env = child_environment(urls, children, data_dir)
                targets = write_prometheus_targets(children, data_dir)
                tokens = _mint_tokens(env) if uses_development_secret(dict(os.environ)) else None
                if tokens is not None:
                    env.setdefault("SWITCHBOARD_PLAYGROUND_TOKEN", tokens.user)
                print("==> starting services", flush=True)
                try:
                    for child in children:
                        _start(child, env, host)
                    _wait_healthy(children)
                    _print_ready(children, tokens, targets)
                    up = True
                    while True:
                        _supervise(children, env, host)
                        time.sleep(0.5)
                finally:
                    print("==> stopping services", flush=True)
                    _stop(children)
        except StackFailed as error:
            print(f"switchboard up: {error}", file=sys.stderr, flush=True)
            return 1
        except KeyboardInterrupt:
            if not up:
                print("switchboard up: interrupted while starting; everything it started is stopped", file=sys.stderr)
                return 130
    print("==> stopped; data is kept for the next 'switchboard up'", flush=True)
    return 0


def _print_ready(children: list[Child], tokens: DevelopmentTokens | None, targets: Path) -> None:
    for child in children:
        print(f"  {child.name:<13} {child.url:<24} metrics {child.metrics_url}")
    print(f"Prometheus targets (file_sd_configs): {targets}")
    edge = next(c for c in children if c.name == "edge")
    print(f"\nChatKit endpoint: {edge.url}/chatkit   (API docs: {edge.url}/docs)")
    if env_bool("SWITCHBOARD_PLAYGROUND", True):
        print(f"Playground:       {edge.url}/   (a chat page, signed in as dev-user)")
    if tokens is not None:
        print("\nNo SWITCHBOARD_JWT_SECRET or SWITCHBOARD_JWKS_URL: using a DEVELOPMENT secret kept in the data dir.")
        print(
            f"Both tokens expire {describe_expiry(tokens.expires_at)}; mint more with 'switchboard token --user NAME'."
        )
        print(f"  user token (dev-user, org dev):  {tokens.user}")
        print(f"  operator token (dev-operator):   {tokens.operator}")
        print("\nOpen the operator console (it finds the development secret itself):  make console")
    else:
        print("\nOpen the operator console:  switchboard console --token <an operator token>")
    print("\nSwitchboard is up.", flush=True)
    print("Press Ctrl-C to stop.\n", flush=True)
