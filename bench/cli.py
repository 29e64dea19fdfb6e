"""How fast the ``switchboard`` command starts: ``--help`` of the command and of every subcommand,
side by side with a bare ``python -c pass`` (the floor no CLI can beat) and the import of everything
the subcommands run (what ``--help`` cost before the handlers were imported lazily). Budget: 0.5 s."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.common import median, ms, print_table

BUDGET_SECONDS = 0.5
SUBCOMMANDS = ("up", "thread-store", "session-api", "agent-runner", "edge", "token", "threads", "console")
EAGER_IMPORTS = (
    "import services.thread_store.server, services.session_api.server, services.agent_runner.server, "
    "services.edge.app, tui.app"
)


def _seconds(args: list[str], runs: int = 5) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        samples.append(time.perf_counter() - started)
    return median(samples)


async def main() -> None:
    """Print the table."""
    floor = _seconds([sys.executable, "-c", "pass"])
    rows = [("python -c pass (floor)", ms(floor), "1.00x", "")]
    worst = 0.0
    for args in [["--help"], ["--version"], *([name, "--help"] for name in SUBCOMMANDS)]:
        seconds = _seconds([sys.executable, "-m", "switchboard.cli", *args])
        worst = max(worst, seconds)
        verdict = "ok" if seconds < BUDGET_SECONDS else "OVER BUDGET"
        rows.append((f"switchboard {' '.join(args)}", ms(seconds), f"{seconds / floor:.2f}x", verdict))
    eager = _seconds([sys.executable, "-c", EAGER_IMPORTS], runs=3)
    rows.append(("importing every handler (the old --help)", ms(eager), f"{eager / floor:.2f}x", ""))
    print_table(
        f"switchboard start-up, median of 5 runs (budget {BUDGET_SECONDS * 1000:.0f} ms; worst {ms(worst)})",
        rows,
        ("command", "time", "vs floor", "budget"),
    )
