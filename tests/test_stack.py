"""``switchboard up`` on the embedded default: real Postgres and Redis from pip packages, data kept across runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from services.thread_store.client import GrpcThreadStore
from tests.conftest import free_port
from tests.thread_store.helpers import Ctx, new_thread


def _up(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        SWITCHBOARD_DATA_DIR=str(data_dir),
        SWITCHBOARD_THREAD_STORE_PORT=str(port),
        SWITCHBOARD_SESSION_API_PORT=str(free_port()),
        SWITCHBOARD_AGENT_RUNNER_PORT=str(free_port()),
        SWITCHBOARD_EDGE_PORT=str(free_port()),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "switchboard.cli", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 90
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "Switchboard is up." in line:
            return proc
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise AssertionError("switchboard up did not come up:\n" + "".join(seen))


def _down(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    return out


async def test_up_runs_on_embedded_servers_and_the_next_up_finds_the_same_data(tmp_path: Path) -> None:
    port = free_port()
    ctx = Ctx(user_id="embedded-user")
    thread = new_thread(title="kept across restarts")

    proc = _up(tmp_path, port)
    store = GrpcThreadStore(f"127.0.0.1:{port}")
    try:
        await store.save_thread(thread, ctx)
        assert (await store.load_thread(thread.id, ctx)).title == "kept across restarts"
    finally:
        await store.close()
        out = _down(proc)
    assert "stopped; data is kept" in out
    assert (tmp_path / "postgres" / "PG_VERSION").exists()

    proc = _up(tmp_path, port)
    store = GrpcThreadStore(f"127.0.0.1:{port}")
    try:
        assert await store.load_thread(thread.id, ctx) == thread
    finally:
        await store.close()
        _down(proc)
