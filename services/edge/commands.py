"""The ``edge`` subcommand."""

from __future__ import annotations

import argparse
from typing import Any

from services.edge.config import DEFAULT_PORT


def _serve(args: argparse.Namespace) -> int:
    from services.edge.config import EdgeConfig
    from services.edge.server import serve

    serve(EdgeConfig.from_env(), host=args.host, port=args.port)
    return 0


def register(subparsers: Any) -> None:
    """Add ``edge``."""
    parser = subparsers.add_parser("edge", help="run the ChatKit HTTP edge")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.set_defaults(handler=_serve)
