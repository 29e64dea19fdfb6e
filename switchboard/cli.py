"""The ``switchboard`` command: one subcommand per process, plus tools.

Each service contributes its subcommands through a ``commands`` module with a
``register(subparsers)`` function, listed in ``COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from switchboard.errors import SwitchboardError

COMMAND_MODULES = [
    "switchboard.commands",
    "services.thread_store.commands",
    "services.agent_runner.commands",
    "services.session_api.commands",
    "services.edge.commands",
    "tui.commands",
]


def configure_logging() -> None:
    """Log to stderr; ``SWITCHBOARD_LOG_LEVEL`` sets the level (default INFO)."""
    logging.basicConfig(
        level=os.environ.get("SWITCHBOARD_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # pgserver narrates every pg_ctl call at INFO; its warnings still show.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    logging.getLogger("yoyo").setLevel(logging.WARNING)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = argparse.ArgumentParser(prog="switchboard", description="A self-hosted backend for OpenAI ChatKit.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a subcommand; errors a user can fix print one clear line and exit 2."""
    configure_logging()
    args = build_parser().parse_args(argv)
    try:
        result = args.handler(args)
    except SwitchboardError as error:
        print(f"switchboard {args.command}: {error.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
