"""The image and compose files: the Dockerfile passes hadolint and builds dependencies before code,
runs as a non-root user with a HEALTHCHECK; compose waits for migrations and healthy storage;
`switchboard health` (what the HEALTHCHECK runs) tells a serving service from a missing one."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from asyncio.subprocess import PIPE
from pathlib import Path

from grpc_health.v1 import health_pb2

from tests.thread_store.conftest import RunningThreadStore

ROOT = Path(__file__).parents[2]


def test_the_dockerfile_passes_hadolint_and_is_built_as_the_issue_asks() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    linted = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    text = (ROOT / "Dockerfile").read_text()
    assert text.index("requirements.txt") < text.index("COPY switchboard ./switchboard")  # dependencies first
    assert "USER 10001" in text and "HEALTHCHECK" in text and 'CMD ["switchboard", "health"]' in text
    assert "embedded" not in text.split("FROM python:3.11-slim AS deps", 1)[1].split("\n", 3)[2]


def test_compose_waits_for_migrations_and_healthy_storage() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "migrate: {condition: service_completed_successfully}" in text
    assert "redis: {condition: service_healthy}" in text
    assert text.count("SWITCHBOARD_HEALTH_TARGET:") == 4  # every service says what its healthcheck probes


async def _health(*args: str) -> tuple[int, str, str]:
    # Asynchronously: the thread store under test serves on this test's event loop.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchboard.cli", "health", *args, stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return int(process.returncode or 0), out.decode(), err.decode()


async def test_the_health_command_tells_serving_from_down(thread_store: RunningThreadStore) -> None:
    code, out, _err = await _health("--target", f"grpc://{thread_store.target}")
    assert code == 0 and health_pb2.HealthCheckResponse.ServingStatus.Name(1) in out
    code, _out, err = await _health("--target", "grpc://127.0.0.1:1", "--timeout", "1")
    assert code == 1 and "UNAVAILABLE" in err
    assert (await _health("--target", "http://127.0.0.1:1/healthz", "--timeout", "1"))[0] == 1
    code, _out, err = await _health()
    assert code == 2 and "--target" in err
