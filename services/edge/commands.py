"""Handler of ``switchboard edge`` (declared in ``switchboard.cli``)."""

from __future__ import annotations

import argparse


def serve_command(args: argparse.Namespace) -> int:
    """``switchboard edge``."""
    from services.edge.config import EdgeConfig
    from services.edge.server import serve

    serve(EdgeConfig.from_env(), host=args.host, port=args.port)
    return 0
