"""Run the benchmarks: ``python -m bench [name ...]``.

Each module in ``BENCHMARKS`` has ``async def main() -> None`` that prints its
own table. They run against ``DATABASE_URL``/``REDIS_URL`` when set, otherwise
against embedded servers started for the run.
"""

from __future__ import annotations

import asyncio
import importlib
import sys

BENCHMARKS = [
    "bench.thread_store",
    "bench.agent_runner",
    "bench.session_api",
    "bench.edge",
    "bench.rate_limit",
    "bench.handoff",
    "bench.retention",
    "bench.metrics",
    "bench.tui",
    "bench.cli",
]


def main() -> int:
    """Run the named benchmarks, or all."""
    wanted = sys.argv[1:]
    for name in BENCHMARKS:
        if wanted and name.rsplit(".", 1)[-1] not in wanted:
            continue
        print(f"\n=== {name} ===", flush=True)
        asyncio.run(importlib.import_module(name).main())
    return 0


if __name__ == "__main__":
    sys.exit(main())
