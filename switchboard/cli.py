"""The ``switchboard`` command: one subcommand per process, plus tools.

Every subcommand is declared here (its arguments, what it does, the environment
it reads) and names its handler as ``"module:function"``, imported only when
that subcommand runs: ``switchboard --help`` and ``switchboard <command> --help``
import nothing but the standard library (a budget of 0.5 s, measured by
``make bench`` and checked loosely by tests/test_cli.py).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

PROG = "switchboard"
DEFAULT_PORTS = {"thread_store": 50051, "agent_runner": 50052, "session_api": 50053, "edge": 8000}
DIE_WITH_PARENT_ENV = "SWITCHBOARD_DIE_WITH_PARENT"

# The environment each kind of command reads (shown under "environment:" in its --help).
STORAGE_ENV = {
    "DATABASE_URL": "PostgreSQL URL (unset: the embedded Postgres under SWITCHBOARD_DATA_DIR)",
    "REDIS_URL": "Redis URL (unset: the embedded Redis)",
    "SWITCHBOARD_DATA_DIR": "where embedded servers keep their data (default ./.switchboard)",
}
LOG_ENV = {
    "SWITCHBOARD_LOG_LEVEL": "log level (default INFO)",
    "SWITCHBOARD_LOG_FORMAT": "text (default) or json: one object per line with service, request_id, user_id",
}
JWT_ENV = {
    "SWITCHBOARD_JWT_SECRET": "HS256 secret tokens are signed with",
    "SWITCHBOARD_JWT_AUDIENCE": "the aud claim to write (the first of a comma-separated list)",
    "SWITCHBOARD_JWT_ISSUER": "the iss claim to write",
}
PORT_ENV = {
    f"SWITCHBOARD_{name.upper()}_PORT": f"port of {name} (default {port})" for name, port in DEFAULT_PORTS.items()
}
TARGET_ENV = {
    "SWITCHBOARD_THREAD_STORE": "where thread_store is (host:port)",
    "SWITCHBOARD_SESSION_API": "where session_api is (host:port)",
    "SWITCHBOARD_AGENT_RUNNER": "where the agent runner is (host:port)",
}
README_HINT = "Every setting is listed in README.md, section Configuration."
# The processes that trace when OTEL_EXPORTER_OTLP_ENDPOINT (or _TRACES_ENDPOINT) is set.
TRACED_SERVICES = frozenset({"thread-store", "session-api", "agent-runner", "edge"})


def configure_logging(command: str) -> None:
    """Log to stderr as ``SWITCHBOARD_LOG_FORMAT`` (text or json) at ``SWITCHBOARD_LOG_LEVEL`` (default INFO),
    each line naming the service (the subcommand) and, where known, the request, user and thread."""
    from switchboard.observability import setup_logging

    setup_logging(command.replace("-", "_"))


def version() -> str:
    """The installed version of switchboard."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("switchboard")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"


def _epilog(*groups: dict[str, str], more: str = README_HINT) -> str:
    lines = ["environment:"]
    for group in groups:
        lines += [f"  {name:<34} {meaning}" for name, meaning in group.items()]
    return "\n".join([*lines, "", more])


def _port_default(name: str) -> int:
    raw = os.environ.get(f"SWITCHBOARD_{name.upper()}_PORT", "").strip()
    return int(raw) if raw.isdigit() else DEFAULT_PORTS[name]


def _target_default(name: str) -> str:
    """Where a service is: ``SWITCHBOARD_<NAME>``, else this host at the port ``up`` gives it."""
    return os.environ.get(f"SWITCHBOARD_{name.upper()}", "").strip() or f"127.0.0.1:{_port_default(name)}"


class _Commands:
    """Adds subcommands with one shape: a help line, a description, the environment, a lazy handler."""

    def __init__(self, subparsers: Any) -> None:
        self.subparsers = subparsers

    def add(
        self, name: str, handler: str, help: str, description: str, *env: dict[str, str]
    ) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = self.subparsers.add_parser(
            name,
            help=help,
            description=description,
            epilog=_epilog(*env),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.set_defaults(handler=handler)
        return parser

    def server(self, name: str, handler: str, service: str, help: str, description: str, *env: dict[str, str]) -> None:
        parser = self.add(name, handler, help, description, *env)
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
        parser.add_argument(
            "--port",
            type=int,
            default=DEFAULT_PORTS[service],
            help="port to listen on (default %(default)s; under 'up': $SWITCHBOARD_" + service.upper() + "_PORT)",
        )


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (standard library only: every handler is imported when it runs)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="A self-hosted backend for OpenAI ChatKit. Start with 'switchboard up'.",
        epilog="'switchboard COMMAND --help' says what a command does and which environment it reads.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = _Commands(subparsers)

    up = commands.add(
        "up",
        "switchboard.stack:up_command",
        "run the whole stack (embedded Postgres/Redis unless configured)",
        "Start Postgres and Redis (embedded unless DATABASE_URL/REDIS_URL are set), apply migrations, run\n"
        "thread_store, session_api, agent_runner and the edge, wait until each is healthy and print how to\n"
        "reach them, with development tokens when no identity provider is configured. A port that is taken\n"
        "is refused naming its process. Ctrl-C stops everything; data is kept for the next 'up'.",
        STORAGE_ENV,
        PORT_ENV,
        {
            "SWITCHBOARD_JWT_SECRET / _JWKS_URL": "your identity provider (unset: a development secret)",
            "SWITCHBOARD_PLAYGROUND": "the chat page at / (default on under 'up')",
            "SWITCHBOARD_<SERVICE>_METRICS_PORT": "Prometheus port of a gRPC service (unset: a free one, printed)",
        },
        LOG_ENV,
    )
    up.add_argument("--host", default="127.0.0.1", help="address the services listen on (default %(default)s)")

    commands.server(
        "thread-store",
        "services.thread_store.commands:serve_command",
        "thread_store",
        "run the thread store gRPC server",
        "Threads, items and attachments in Postgres, with Redis as the hot cache and the change feed.",
        STORAGE_ENV,
        {"SWITCHBOARD_CACHE / _CACHE_TTL_SECONDS / _REDIS_TIMEOUT": "the cache (see README)"},
        LOG_ENV,
    )
    commands.server(
        "session-api",
        "services.session_api.commands:serve_command",
        "session_api",
        "run the session_api gRPC server",
        "Authentication (JWT), sessions, UI-event audit, escalations, metrics and the live watch.",
        STORAGE_ENV,
        {
            "SWITCHBOARD_JWT_SECRET": "HS256 secret of your identity provider",
            "SWITCHBOARD_JWKS_URL": "or a JWKS URL (RS256, ES256, EdDSA)",
            "SWITCHBOARD_JWT_AUDIENCE / _ISSUER": "accepted aud / required iss",
            "SWITCHBOARD_CHATKIT_WORKFLOW_ID / _VERSION": "an OpenAI-hosted workflow for sessions naming no agent",
            "OPENAI_API_KEY": "OpenAI's ChatKit API, for agents that are hosted workflows",
        },
        LOG_ENV,
    )
    commands.server(
        "agent-runner",
        "services.agent_runner.commands:serve_command",
        "agent_runner",
        "run the agent runner gRPC server",
        "Runs agents (OpenAI Agents SDK) with MCP tools and streams ChatKit events; durable runs.",
        STORAGE_ENV,
        {
            "OPENAI_API_KEY / OPENAI_BASE_URL": "the model server (unset: the offline model)",
            "SWITCHBOARD_MODEL": "the agents' default model (openai:<model> or offline)",
            "SWITCHBOARD_AGENTS_FILE": "the agents (default switchboard/agents.toml)",
        },
        {k: v for k, v in TARGET_ENV.items() if "AGENT_RUNNER" not in k},
        LOG_ENV,
    )
    commands.server(
        "edge",
        "services.edge.commands:serve_command",
        "edge",
        "run the ChatKit HTTP edge",
        "POST /chatkit (the ChatKit protocol), the REST endpoints, /docs, and the playground at /.",
        TARGET_ENV,
        {
            "SWITCHBOARD_EDGE_CORS_ORIGINS": "browser origins allowed to call the edge",
            "SWITCHBOARD_EDGE_PUBLIC_URL": "the edge's URL as browsers reach it",
            "SWITCHBOARD_PLAYGROUND": "the chat page at / (default off; on under 'up')",
        },
        LOG_ENV,
    )

    tasks = commands.add(
        "mcp-tasks",
        "services.agent_runner.commands:tasks_command",
        "serve one user's tasks as an MCP server over stdio (for desktop MCP clients)",
        "The built-in task tools (add, list, delete) of one user, over MCP stdio.",
        STORAGE_ENV,
    )
    tasks.add_argument("--user", required=True, help="the user whose tasks the server exposes")

    token = commands.add(
        "token",
        "switchboard.cli:token_command",
        "mint a DEVELOPMENT user token, or a service token for the gRPC API (--service)",
        "Print a bearer token on stdout, and when it expires on stderr.\n"
        "--user: a user's token signed with SWITCHBOARD_JWT_SECRET (for local use: in production your identity\n"
        "provider issues them). --service NAME --scope S: a service token signed with the internal key, for\n"
        "one service (--audience, else the one the scopes name), acting as NAME with those scopes.",
        {
            **JWT_ENV,
            "SWITCHBOARD_INTERNAL_SECRET": "the services' internal key (default: the data dir's internal-secret)",
            "SWITCHBOARD_DATA_DIR": "where 'up' keeps its development secrets",
        },
    )
    add_token_arguments(token)

    health = commands.add(
        "health",
        "switchboard.commands:health",
        "exit 0 when a service answers its health check (container HEALTHCHECKs, probes)",
        "Check one service: a gRPC server's health service (SERVING) or the edge's /healthz.\n"
        "The target is --target, else SWITCHBOARD_HEALTH_TARGET: grpc://host:port or http://host:port/healthz.",
        {"SWITCHBOARD_HEALTH_TARGET": "what to check (grpc://127.0.0.1:50051 or http://127.0.0.1:8000/healthz)"},
    )
    health.add_argument("--target", default=None, help="grpc://host:port or http(s)://host:port/path")
    health.add_argument("--timeout", type=float, default=3.0, help="seconds (default %(default)s)")

    migrate = commands.add(
        "migrate",
        "switchboard.commands:migrate",
        "apply pending database migrations",
        "Apply pending migrations (every service also applies them at start-up).",
        STORAGE_ENV,
    )
    del migrate

    threads = commands.add(
        "threads",
        "services.thread_store.commands:transfer_command",
        "export or import a user's threads as JSON Lines",
        "Move a user's threads, items and attachments between deployments as JSON Lines, with a progress\n"
        "bar on a terminal. An import checks the whole file before it writes any of it.",
        STORAGE_ENV,
    )
    threads.add_argument("direction", choices=["export", "import"])
    threads.add_argument("--user", required=True, help="the user whose threads move")
    threads.add_argument("--org", default=None, help="import: the org the threads belong to")
    threads.add_argument("--file", default="-", help="file to write or read ('-': stdout/stdin)")

    webhooks = commands.add(
        "webhooks",
        "services.session_api.webhook_commands:webhooks_command",
        "manage an org's webhook endpoints, their deliveries and redelivery",
        "add, list, remove or test an org's webhook endpoints (Standard Webhooks signatures), list an\n"
        "endpoint's deliveries with their attempts, send events again (one, or every dead-lettered one), or\n"
        "print a new whsec_ secret. Calls session_api as an operator of --org (README: Webhooks).",
        {"SWITCHBOARD_INTERNAL_SECRET": "the internal key (default: the one 'up' keeps in the data dir)"},
        {"SWITCHBOARD_TOKEN": "else: an operator's token, or a service token with webhooks:admin"},
        TARGET_ENV,
    )
    webhooks.add_argument("action", choices=["add", "list", "remove", "test", "deliveries", "redeliver", "secret"])
    webhooks.add_argument("--org", default=None, help="the org whose endpoints these are")
    webhooks.add_argument("--url", default=None, help="add: where events are POSTed")
    webhooks.add_argument("--event", action="append", default=[], help="add: an event type (repeatable; none: all)")
    webhooks.add_argument("--description", default="", help="add: what the endpoint is for")
    webhooks.add_argument("--secret", default=None, help="add: a whsec_ secret to use (default: a new one)")
    webhooks.add_argument("--endpoint", default=None, help="the endpoint id (see 'list')")
    webhooks.add_argument("--event-id", default=None, help="redeliver: one event (default: every dead letter)")
    webhooks.add_argument("--status", default=None, choices=["pending", "delivered", "dead"], help="deliveries: filter")
    webhooks.add_argument("--limit", type=int, default=50, help="deliveries: how many (default %(default)s)")
    webhooks.add_argument("--session-api", default=_target_default("session_api"), help="session_api host:port")

    retention = commands.add(
        "retention",
        "services.thread_store.retention_commands:retention_command",
        "retention: sweep now (or --dry-run), set an org's policy, legal holds",
        "sweep: delete threads inactive past retention (items, attachments, cache, feed; a thread.deleted\n"
        "webhook each) and old audit events, or list them with --dry-run. policy: an org's days ('default'\n"
        "follows the deployment, 0 keeps forever). hold/release/holds: legal holds on a thread or a user,\n"
        "never swept. thread_store also sweeps by itself (README: Retention).",
        STORAGE_ENV,
        {
            "SWITCHBOARD_RETENTION_THREAD_DAYS": "the default for threads (0: keep forever)",
            "SWITCHBOARD_RETENTION_AUDIT_DAYS": "the default for audit events (0: keep forever)",
        },
    )
    retention.add_argument("action", choices=["sweep", "policy", "policies", "hold", "release", "holds"])
    retention.add_argument("--dry-run", action="store_true", help="sweep: list what would go, delete nothing")
    retention.add_argument("--org", default=None, help="policy: the org")
    retention.add_argument("--thread-days", default=None, help="policy: days, 0 (forever) or 'default'")
    retention.add_argument("--audit-days", default=None, help="policy: days, 0 (forever) or 'default'")
    retention.add_argument("--thread", default=None, help="hold/release: a thread id")
    retention.add_argument("--user", default=None, help="hold/release: a user id")
    retention.add_argument("--reason", default="", help="hold: why (kept with the hold)")

    console = commands.add(
        "console",
        "tui.commands:_console",
        "the operator console: live sessions, escalations, take-over (a terminal UI)",
        "The operator console in the terminal. It finds the services where 'switchboard up' puts them\n"
        "(the same *_PORT settings), and a development operator token when 'up' runs on its development secret.",
        {"SWITCHBOARD_OPERATOR_TOKEN": "the operator token (default: a development token)"},
        TARGET_ENV,
        {k: v for k, v in PORT_ENV.items() if "EDGE" not in k},
        {"SWITCHBOARD_DATA_DIR": "where 'up' keeps its development secret"},
    )
    console.add_argument(
        "--token", default=None, help="operator bearer token (default: $SWITCHBOARD_OPERATOR_TOKEN, or a dev token)"
    )
    for name in ("session_api", "thread_store", "agent_runner"):
        console.add_argument(
            f"--{name.replace('_', '-')}",
            default=_target_default(name),
            help=f"{name} host:port (default: $SWITCHBOARD_{name.upper()}, else "
            f"127.0.0.1:$SWITCHBOARD_{name.upper()}_PORT; now %(default)s)",
        )
    return parser


# --- tokens --------------------------------------------------------------------------------------------------------

DEVELOPMENT_WARNING = (
    "!! DEVELOPMENT TOKEN: signed with SWITCHBOARD_JWT_SECRET for local use only. In production your identity "
    "provider issues tokens; never mint them by hand. !!"
)


def add_token_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``switchboard token`` (one place, so a new kind of token is one more argument)."""
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="a user's token: the user id (the token's sub)")
    who.add_argument("--service", help="a service token: the calling service's name (e.g. billing-worker)")
    parser.add_argument("--org", default=None, help="the org id (a service token: bound to this org)")
    parser.add_argument("--operator", action="store_true", help="grant the operator role (the console)")
    parser.add_argument(
        "--scope", action="append", default=[], help="a service token's scope, e.g. threads:read (repeatable)"
    )
    parser.add_argument(
        "--audience",
        default=None,
        help="the service a service token is for: thread_store, session_api, agent_runner or edge"
        " (default: the one its scopes name)",
    )
    parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default %(default)s)")


def mint_token(secret: str, *, user: str, org: str | None, operator: bool = False, ttl: int) -> tuple[str, int]:
    """A development token as the identity provider would sign it, and when it expires (Unix seconds)."""
    from services.session_api.auth import mint_development_token
    from switchboard.config import env_str
    from switchboard.principal import OPERATOR_ROLE

    audience = env_str("SWITCHBOARD_JWT_AUDIENCE")
    expires_at = int(time.time()) + ttl
    token = mint_development_token(
        secret,
        user_id=user,
        org_id=org,
        roles=[OPERATOR_ROLE] if operator else [],
        ttl_seconds=ttl,
        audience=audience.split(",")[0].strip() if audience else None,
        issuer=env_str("SWITCHBOARD_JWT_ISSUER"),
    )
    return token, expires_at


def token_command(args: argparse.Namespace) -> int:
    """``switchboard token``: the token on stdout, the warning and its expiry on stderr."""
    from switchboard.config import env_str
    from switchboard.errors import InvalidArgument
    from switchboard.stack import describe_expiry

    if args.ttl < 1:
        raise InvalidArgument("--ttl must be at least 1 second")
    if args.service is not None:
        return service_token_command(args)
    if args.scope or args.audience:
        raise InvalidArgument("--scope and --audience are for service tokens: add --service NAME")
    secret = env_str("SWITCHBOARD_JWT_SECRET")
    if not secret:
        raise InvalidArgument(
            "set SWITCHBOARD_JWT_SECRET (the secret session_api verifies HS256 tokens with); under "
            "'switchboard up' with no identity provider it is the file dev-jwt-secret in the data dir"
        )
    token, expires_at = mint_token(secret, user=args.user, org=args.org, operator=args.operator, ttl=args.ttl)
    print(DEVELOPMENT_WARNING, file=sys.stderr)
    print(f"this token of {args.user!r} expires {describe_expiry(expires_at)}", file=sys.stderr)
    print(token)
    return 0


# Which service a family of scopes is for (a service token names one audience).
_SCOPE_AUDIENCE = {
    "threads": "thread_store",
    "sessions": "session_api",
    "escalations": "session_api",
    "runs": "agent_runner",
    "handoffs": "agent_runner",
    "webhooks": "session_api",
}


def service_token_command(args: argparse.Namespace) -> int:
    """``switchboard token --service``: a service token for the gRPC API (or the edge's service routes)."""
    from pathlib import Path

    from switchboard.config import env_str
    from switchboard.errors import InvalidArgument
    from switchboard.service_auth import check_secret, mint_service_token
    from switchboard.stack import describe_expiry

    if args.operator:
        raise InvalidArgument("--operator is for user tokens; a service token has scopes (--scope)")
    if not args.scope:
        raise InvalidArgument("name what the service may do: --scope threads:read (repeatable; '*' for everything)")
    audience = args.audience
    if audience is None:
        audiences = {_SCOPE_AUDIENCE.get(scope.split(":", 1)[0]) for scope in args.scope}
        if len(audiences) != 1 or None in audiences:
            raise InvalidArgument("these scopes are for several services (or none): choose one with --audience")
        audience = audiences.pop()
    secret = env_str("SWITCHBOARD_INTERNAL_SECRET")
    if not secret:
        kept = Path(env_str("SWITCHBOARD_DATA_DIR", ".switchboard") or ".switchboard") / "internal-secret"
        if not kept.exists():
            raise InvalidArgument(
                "set SWITCHBOARD_INTERNAL_SECRET (the deployment's internal key); under 'switchboard up' it is the"
                f" file internal-secret in the data dir ({kept} does not exist: has 'up' run here?)"
            )
        secret = kept.read_text().strip()
    token, expires_at = mint_service_token(
        check_secret(secret),
        audience=audience,
        service=args.service,
        scopes=args.scope,
        org_id=args.org,
        seconds=args.ttl,
    )
    print(f"a service token of {args.service!r} for {audience} ({' '.join(args.scope)})", file=sys.stderr)
    print(f"it expires {describe_expiry(int(expires_at))}", file=sys.stderr)
    print(token)
    return 0


# --- running -------------------------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Under ``switchboard up``: ask the kernel for SIGTERM when ``up`` dies, even by SIGKILL (Linux)."""
    expected = os.environ.pop(DIE_WITH_PARENT_ENV, "")
    if not expected.isdigit() or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != int(expected):  # up died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


def resolve_handler(spec: str) -> Callable[[argparse.Namespace], int | None]:
    """Import ``"module:function"``."""
    module, _, name = spec.partition(":")
    handler: Callable[[argparse.Namespace], int | None] = getattr(importlib.import_module(module), name)
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    """Run a subcommand; errors a user can fix print one clear line and exit 2."""
    args = build_parser().parse_args(argv)
    _die_with_parent()
    from switchboard.errors import SwitchboardError

    try:
        configure_logging(str(getattr(args, "command", "") or "switchboard"))
    except SwitchboardError as error:
        print(f"switchboard: {error.message}", file=sys.stderr)
        return 2

    traced = False
    if args.command in TRACED_SERVICES:
        from switchboard.tracing import setup_tracing

        traced = setup_tracing(
            args.command.replace("-", "_"), http=args.command == "edge", agents=args.command == "agent-runner"
        )
    try:
        result = resolve_handler(args.handler)(args)
    except SwitchboardError as error:
        print(f"switchboard {args.command}: {error.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        if traced:
            from switchboard.tracing import shutdown_tracing

            shutdown_tracing()
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
