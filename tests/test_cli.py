"""The ``switchboard`` command: fast help, a version, every subcommand describing itself and its environment,
the console following ``up``'s ports, tokens that say when they expire, progress bars with rates."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time

import jwt
import pytest
from rich.console import Console

from switchboard.cli import build_parser
from switchboard.progress import line_progress

SUBCOMMANDS = (
    "up",
    "thread-store",
    "session-api",
    "agent-runner",
    "edge",
    "mcp-tasks",
    "token",
    "migrate",
    "threads",
    "console",
)
# The budget is 0.5 s (bench/cli.py measures ~60 ms); asserted loosely because the machine is shared.
HELP_BUDGET_SECONDS = 1.0


def switchboard(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "switchboard.cli", *args],
        capture_output=True,
        text=True,
        env=env if env is not None else dict(os.environ),
        timeout=60,
        check=False,
    )


def test_help_starts_within_the_budget_and_imports_no_service() -> None:
    started = time.perf_counter()
    done = switchboard("--help")
    elapsed = time.perf_counter() - started
    assert done.returncode == 0
    assert elapsed < HELP_BUDGET_SECONDS, f"--help took {elapsed:.2f}s"
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from switchboard.cli import build_parser; build_parser(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('services', 'tui', 'grpc', 'agents', "
            "'textual', 'fastapi', 'chatkit')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "[]"


def test_version_prints_the_installed_version() -> None:
    done = switchboard("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("switchboard ")
    assert done.stdout.split()[1][0].isdigit()


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_each_subcommand_describes_itself_and_the_environment_it_reads(command: str) -> None:
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    parser = subparsers.choices[command]  # type: ignore[attr-defined]
    text = parser.format_help()
    assert parser.description, command
    assert "environment:" in text
    assert "SWITCHBOARD_" in text or "DATABASE_URL" in text


def test_console_follows_the_port_settings_of_up() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env |= {"SWITCHBOARD_SESSION_API_PORT": "61053", "SWITCHBOARD_THREAD_STORE_PORT": "61051"}
    env |= {"SWITCHBOARD_AGENT_RUNNER_PORT": "61052"}
    code = (
        "from switchboard.cli import build_parser; a = build_parser().parse_args(['console']); "
        "print(a.session_api, a.thread_store, a.agent_runner)"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["127.0.0.1:61053", "127.0.0.1:61051", "127.0.0.1:61052"]
    # An explicit target still wins over a port.
    env["SWITCHBOARD_SESSION_API"] = "sessions.internal:9000"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split()[0] == "sessions.internal:9000"


def test_a_printed_token_says_when_it_expires() -> None:
    env = {**os.environ, "SWITCHBOARD_JWT_SECRET": "cli-test-secret-" + "x" * 32}
    env.pop("SWITCHBOARD_JWT_AUDIENCE", None)
    done = switchboard("token", "--user", "alice", "--ttl", "7200", env=env)
    assert done.returncode == 0, done.stderr
    claims = jwt.decode(done.stdout.strip(), env["SWITCHBOARD_JWT_SECRET"], algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert claims["exp"] - time.time() == pytest.approx(7200, abs=60)
    assert "this token of 'alice' expires " in done.stderr
    assert "UTC (in 2 h)" in done.stderr


def test_a_token_without_a_secret_is_one_line_saying_what_to_set() -> None:
    env = {k: v for k, v in os.environ.items() if k != "SWITCHBOARD_JWT_SECRET"}
    done = switchboard("token", "--user", "alice", env=env)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "set SWITCHBOARD_JWT_SECRET" in done.stderr


def test_the_progress_bar_shows_counts_and_a_rate_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with line_progress(console=console) as progress:
        task = progress.add_task("checking", total=400)
        for _ in range(400):
            progress.advance(task)
            time.sleep(0.001)
    text = out.getvalue()
    assert "checking" in text
    assert "400/400" in text
    assert "lines/s" in text


def test_the_progress_bar_is_silent_when_stderr_is_not_a_terminal() -> None:
    out = io.StringIO()
    with line_progress(console=Console(file=out, force_terminal=False)) as progress:
        progress.advance(progress.add_task("writing", total=3), 3)
    assert out.getvalue() == ""
