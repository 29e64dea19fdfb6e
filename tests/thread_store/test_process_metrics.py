"""A thread_store process serves its Prometheus metrics on its own port (RPCs, cache) and, with
SWITCHBOARD_LOG_FORMAT=json, logs JSON lines naming itself."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from services.thread_store.client import GrpcThreadStore
from switchboard.principal import Principal
from tests.conftest import free_port


@dataclass
class Process:
    process: subprocess.Popen[bytes]
    port: int
    metrics: int
    log: Path


@pytest.fixture
def thread_store_process(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[Process]:
    port, metrics, log = free_port(), free_port(), tmp_path / "thread_store.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SWITCHBOARD_THREAD_STORE_METRICS_PORT": str(metrics),
        "SWITCHBOARD_LOG_FORMAT": "json",
        "SWITCHBOARD_LOG_LEVEL": "INFO",
    }
    command = [sys.executable, "-m", "switchboard.cli", "thread-store", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as err:
        process = subprocess.Popen(command, env=env, stderr=err, stdout=subprocess.DEVNULL)
    yield Process(process, port, metrics, log)
    process.terminate()
    process.wait(timeout=30)


async def test_metrics_on_their_own_port_and_json_logs(thread_store_process: Process) -> None:
    running = thread_store_process
    store = GrpcThreadStore(f"127.0.0.1:{running.port}", timeout=2.0)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                await store.load_threads(5, None, "desc", Principal(user_id=f"u-{uuid.uuid4().hex[:8]}"))
                break
            except Exception:
                if time.monotonic() > deadline or running.process.poll() is not None:
                    pytest.fail("thread-store did not start:\n" + running.log.read_text())
                await asyncio.sleep(0.2)
        async with httpx.AsyncClient() as http:
            scraped = (await http.get(f"http://127.0.0.1:{running.metrics}/metrics")).text
    finally:
        await store.close()
    listed = 'switchboard_grpc_requests_total{code="OK",method="/switchboard.api.v1.ThreadStore/ListThreads"}'
    assert listed in scraped
    assert "switchboard_grpc_request_seconds_bucket" in scraped
    assert "switchboard_thread_cache_lookups_total" in scraped
    lines = [json.loads(line) for line in running.log.read_text().splitlines() if line.startswith("{")]
    assert lines and all(line["service"] == "thread_store" for line in lines)
    assert any("listening" in line["message"] for line in lines)
