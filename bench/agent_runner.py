"""Streaming overhead of the agent runner: gRPC stream versus the same run in-process.

A zero-latency model answers with 1,000 text deltas; we measure the time to
the first event and events per second, through ``AgentRunnerClient`` over
gRPC and straight from ``AgentRunnerService``. Goal: gRPC at least half the
in-process rate. The server batches ready events into one message and merges
adjacent text deltas (fair: the text and order are identical, which the bench
checks); the rate counts the events the run produced, so both paths are
measured on the same 1,000-delta reply.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agents import Model
from chatkit.types import InferenceOptions, ThreadMetadata, UserMessageItem, UserMessageTextContent

from services.agent_runner.client import AgentRunnerClient
from services.agent_runner.escalation import InMemoryEscalations
from services.agent_runner.offline_model import OfflineModel
from services.agent_runner.server import AgentRunnerConfig, build_agent_runner
from services.agent_runner.service import RunRequest
from services.thread_store.client import GrpcThreadStore
from services.thread_store.server import ThreadStoreConfig, build_thread_store
from switchboard.principal import Principal

DELTAS = 1000
ROUNDS = 7


class _ZeroLatency:
    def is_offline(self, name: str | None) -> bool:
        return False

    def titles_threads(self, name: str | None) -> bool:
        return False  # the bench times the runner's own path, not a title call

    def model_for(self, name: str | None, *, announce_offline: bool) -> Model:
        model = OfflineModel(chunk_words=1, chunk_delay=0)
        reply = " ".join(f"w{i}" for i in range(DELTAS))
        model._decide = lambda *args: reply  # type: ignore[method-assign]
        return model


def _message(thread_id: str) -> UserMessageItem:
    return UserMessageItem(
        id=f"msg_{uuid.uuid4().hex[:12]}",
        thread_id=thread_id,
        created_at=datetime.now(UTC),
        content=[UserMessageTextContent(text="go")],
        inference_options=InferenceOptions(),
    )


@dataclass
class _Measured:
    first: float
    elapsed: float
    received: int
    text: str


async def _measure(events: AsyncIterator[Any]) -> _Measured:
    started = time.perf_counter()
    first = 0.0
    count = 0
    text: list[str] = []
    async for event in events:
        count += 1
        if count == 1:
            first = time.perf_counter() - started
        if event.type == "thread.item.updated" and event.update.type.endswith("text_delta"):
            text.append(event.update.delta)
    return _Measured(first, time.perf_counter() - started, count, "".join(text))


async def main() -> None:
    """Print time to first event and events/s, gRPC versus in-process."""
    from switchboard.commands import storage_from_env

    with storage_from_env() as urls:
        ts_server, _ = await build_thread_store(
            ThreadStoreConfig(database_url=urls.database_url, redis_url=urls.redis_url)
        )
        ts_port = await ts_server.start("127.0.0.1", 0)
        store = GrpcThreadStore(f"127.0.0.1:{ts_port}")
        config = AgentRunnerConfig(
            database_url=urls.database_url, redis_url=urls.redis_url, thread_store_target=f"127.0.0.1:{ts_port}"
        )
        server, service = await build_agent_runner(config, models=_ZeroLatency(), escalations=InMemoryEscalations())
        port = await server.start("127.0.0.1", 0)
        client = AgentRunnerClient(f"127.0.0.1:{port}")
        principal = Principal(user_id=f"bench-{uuid.uuid4().hex[:8]}")
        results: dict[str, list[_Measured]] = {"in-process": [], "gRPC": []}
        try:
            for _ in range(ROUNDS):
                for mode, measured in results.items():
                    thread = ThreadMetadata(id=f"thr_{uuid.uuid4().hex[:12]}", created_at=datetime.now(UTC))
                    await store.save_thread(thread, principal)
                    if mode == "gRPC":
                        events: AsyncIterator[Any] = aiter(
                            client.run(principal, thread_id=thread.id, user_message=_message(thread.id))
                        )
                    else:
                        run = await service.start(
                            RunRequest(principal=principal, thread_id=thread.id, user_message=_message(thread.id))
                        )
                        events = run.events()
                    measured.append(await _measure(events))
        finally:
            await client.close()
            await server.stop(grace=0)
            await store.close()
            await ts_server.stop(grace=0)
        produced = statistics.median(m.received for m in results["in-process"])
        texts = {m.text for r in results.values() for m in r}
        if len(texts) != 1:
            raise SystemExit("the gRPC stream did not deliver the same text as the in-process run")
        print(f"{DELTAS}-delta reply, zero-latency model, medians of {ROUNDS} alternating rounds")
        print(f"{'path':<12}{'first event ms':>16}{'events/s':>12}{'messages':>10}")
        rates = {}
        for mode, measured in results.items():
            rates[mode] = produced / statistics.median(m.elapsed for m in measured)
            first = statistics.median(m.first for m in measured) * 1000
            received = statistics.median(m.received for m in measured)
            print(f"{mode:<12}{first:>16.1f}{rates[mode]:>12.0f}{received:>10.0f}")
        print(f"events/s = {produced:.0f} events the run produced / time to the last one; same text on both paths")
        print(f"gRPC / in-process rate: {rates['gRPC'] / rates['in-process']:.2f} (goal >= 0.50)")
