"""``switchboard console``: the operator console in the terminal.

The operator token comes from ``--token``, else ``SWITCHBOARD_OPERATOR_TOKEN``,
else (for a local ``switchboard up`` stack with no identity provider) a
development operator token minted from the secret ``switchboard up`` keeps in
its data directory (``$SWITCHBOARD_DATA_DIR/dev-jwt-secret``, default
``.switchboard/``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import jwt

from switchboard.config import StorageConfig, env_str
from switchboard.errors import InvalidArgument
from switchboard.principal import OPERATOR_ROLE

DEFAULT_SESSION_API = "127.0.0.1:50053"
DEFAULT_THREAD_STORE = "127.0.0.1:50051"
DEFAULT_AGENT_RUNNER_PORT = "50052"
DEV_SECRET_FILE = "dev-jwt-secret"
DEV_OPERATOR = "dev-operator"
DEV_ORG = "dev"
NO_TOKEN = (
    "no operator token: pass --token, set SWITCHBOARD_OPERATOR_TOKEN, or run 'switchboard up' first "
    "(with no identity provider configured it keeps a development secret in {data_dir}, from which the console "
    "mints a development operator token); 'switchboard token --user you --org yours --operator' mints one by hand"
)


def development_operator_token(data_dir: Path, *, ttl_seconds: int = 12 * 3600) -> str | None:
    """An HS256 operator token signed with the development secret of ``switchboard up``, if it left one.

    Signed as ``switchboard token --operator`` signs (``sub``, ``org_id``, ``roles``,
    and the audience/issuer session_api is configured with, if any).
    """
    path = data_dir / DEV_SECRET_FILE
    if not path.is_file():
        return None
    secret = path.read_text().strip()
    if not secret:
        return None
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": DEV_OPERATOR,
        "org_id": DEV_ORG,
        "roles": [OPERATOR_ROLE],
        "iat": now,
        "exp": now + ttl_seconds,
    }
    audience = env_str("SWITCHBOARD_JWT_AUDIENCE")
    if audience:
        claims["aud"] = audience.split(",")[0].strip()
    issuer = env_str("SWITCHBOARD_JWT_ISSUER")
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm="HS256")


def resolve_token(flag: str | None, *, data_dir: Path | None = None) -> str:
    """The operator token to use: the flag, the environment, or a development token.

    Raises:
        InvalidArgument: none can be found; the message says what to do.
    """
    if flag:
        return flag
    from_env = env_str("SWITCHBOARD_OPERATOR_TOKEN")
    if from_env:
        return from_env
    directory = data_dir or StorageConfig.from_env().data_dir
    minted = development_operator_token(directory)
    if minted:
        return minted
    raise InvalidArgument(NO_TOKEN.format(data_dir=directory))


def default_agent_runner() -> str:
    """Where the agent runner is: ``$SWITCHBOARD_AGENT_RUNNER``, else on this host at the port
    ``switchboard up`` gives it (``$SWITCHBOARD_AGENT_RUNNER_PORT``, default 50052)."""
    port = env_str("SWITCHBOARD_AGENT_RUNNER_PORT", DEFAULT_AGENT_RUNNER_PORT)
    return env_str("SWITCHBOARD_AGENT_RUNNER") or f"127.0.0.1:{port}"


def _console(args: argparse.Namespace) -> int:
    from tui.app import ConsoleApp
    from tui.backend import GrpcConsoleBackend, OperatorToken
    from tui.logs import c_stderr_to, default_log_file

    token = resolve_token(args.token)
    renew = None
    if not args.token and not env_str("SWITCHBOARD_OPERATOR_TOKEN"):
        directory = StorageConfig.from_env().data_dir
        renew = lambda: development_operator_token(directory)  # noqa: E731 - a development token, minted again
    backend = GrpcConsoleBackend(
        token=OperatorToken(token, renew=renew),
        session_api=args.session_api,
        thread_store=args.thread_store,
        agent_runner=args.agent_runner,
    )
    log_file = default_log_file()
    with c_stderr_to(log_file):
        ConsoleApp(backend, log_file=log_file).run()
    return 0


def register(subparsers: Any) -> None:
    """Add ``console``."""
    parser = subparsers.add_parser(
        "console", help="the operator console: live sessions, escalations, take-over (a terminal UI)"
    )
    parser.add_argument(
        "--token", default=None, help="operator bearer token (default: $SWITCHBOARD_OPERATOR_TOKEN, or a dev token)"
    )
    parser.add_argument(
        "--session-api",
        default=env_str("SWITCHBOARD_SESSION_API", DEFAULT_SESSION_API),
        help="session_api host:port (default: $SWITCHBOARD_SESSION_API or %(default)s)",
    )
    parser.add_argument(
        "--thread-store",
        default=env_str("SWITCHBOARD_THREAD_STORE", DEFAULT_THREAD_STORE),
        help="thread_store host:port (default: $SWITCHBOARD_THREAD_STORE or %(default)s)",
    )
    parser.add_argument(
        "--agent-runner",
        default=default_agent_runner(),
        help=(
            "agent runner host:port, for taking over, replying to and handing back conversations and for "
            "approving or rejecting action cards "
            "(default: $SWITCHBOARD_AGENT_RUNNER, else 127.0.0.1:$SWITCHBOARD_AGENT_RUNNER_PORT; now %(default)s)"
        ),
    )
    parser.set_defaults(handler=_console)
