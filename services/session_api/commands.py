"""Subcommands of session_api: ``session-api`` (the server) and ``token`` (development tokens)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from services.session_api.auth import mint_development_token
from services.session_api.server import DEFAULT_PORT, SessionApiConfig, serve
from switchboard.config import env_str
from switchboard.errors import InvalidArgument
from switchboard.principal import OPERATOR_ROLE

DEVELOPMENT_WARNING = (
    "!! DEVELOPMENT TOKEN: signed with SWITCHBOARD_JWT_SECRET for local use only. In production your identity "
    "provider issues tokens; never mint them by hand. !!"
)


def _serve(args: argparse.Namespace) -> int:
    from switchboard.commands import storage_from_env

    with storage_from_env() as urls:
        config = SessionApiConfig.from_env(database_url=urls.database_url, redis_url=urls.redis_url)
        asyncio.run(serve(config, host=args.host, port=args.port))
    return 0


def _token(args: argparse.Namespace) -> int:
    secret = env_str("SWITCHBOARD_JWT_SECRET")
    if not secret:
        raise InvalidArgument("set SWITCHBOARD_JWT_SECRET (the secret session_api verifies HS256 tokens with)")
    if args.ttl < 1:
        raise InvalidArgument("--ttl must be at least 1 second")
    roles = [OPERATOR_ROLE] if args.operator else []
    audience = env_str("SWITCHBOARD_JWT_AUDIENCE")
    token = mint_development_token(
        secret,
        user_id=args.user,
        org_id=args.org,
        roles=roles,
        ttl_seconds=args.ttl,
        audience=audience.split(",")[0].strip() if audience else None,
        issuer=env_str("SWITCHBOARD_JWT_ISSUER"),
    )
    print(DEVELOPMENT_WARNING, file=sys.stderr)
    print(token)
    return 0


def register(subparsers: Any) -> None:
    """Add ``session-api`` and ``token``."""
    serve_parser = subparsers.add_parser("session-api", help="run the session_api gRPC server")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve_parser.set_defaults(handler=_serve)

    token = subparsers.add_parser(
        "token", help="mint a DEVELOPMENT token with SWITCHBOARD_JWT_SECRET (never for production)"
    )
    token.add_argument("--user", required=True, help="the user id (the token's sub)")
    token.add_argument("--org", default=None, help="the org id")
    token.add_argument("--operator", action="store_true", help="grant the operator role (the console)")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    token.set_defaults(handler=_token)
