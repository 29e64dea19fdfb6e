"""Fixtures of the thread store tests: a real gRPC server on real Postgres and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from services.thread_store.client import GrpcThreadStore
from services.thread_store.repository import ThreadRepository
from services.thread_store.server import ThreadStoreConfig, build_thread_store
from services.thread_store.service import ThreadStoreService
from switchboard.grpc_runtime import GrpcServer


@dataclass
class RunningThreadStore:
    """A started thread store, a ChatKit store client of it, and a count of its Postgres statements."""

    server: GrpcServer
    service: ThreadStoreService
    target: str
    store: GrpcThreadStore
    queries: QueryCounter


class QueryCounter:
    """Counts the statements a ``ThreadRepository`` sends (tests prove that hot reads send none).

    It wraps the repository's two statement helpers on the instance, so production
    code carries no test hook.
    """

    def __init__(self, repository: ThreadRepository) -> None:
        self.count = 0
        fetchrow, fetch = repository._fetchrow, repository._fetch

        async def counted_fetchrow(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await fetchrow(*args, **kwargs)

        async def counted_fetch(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await fetch(*args, **kwargs)

        repository._fetchrow = counted_fetchrow  # type: ignore[method-assign]
        repository._fetch = counted_fetch  # type: ignore[method-assign]


async def start_thread_store(database_url: str, redis_url: str | None, **config: object) -> RunningThreadStore:
    """Start a thread store on a free port."""
    server, service = await build_thread_store(
        ThreadStoreConfig(database_url=database_url, redis_url=redis_url, migrate=False, **config)  # type: ignore[arg-type]
    )
    port = await server.start("127.0.0.1", 0)
    target = f"127.0.0.1:{port}"
    return RunningThreadStore(
        server=server,
        service=service,
        target=target,
        store=GrpcThreadStore(target),
        queries=QueryCounter(service.repository),
    )


@pytest.fixture(scope="session")
async def thread_store(database_url: str, redis_url: str) -> AsyncIterator[RunningThreadStore]:
    """One thread store with cache for the whole session."""
    running = await start_thread_store(database_url, redis_url)
    yield running
    await running.store.close()
    await running.server.stop(grace=0)


@pytest.fixture(scope="session")
async def uncached_thread_store(database_url: str) -> AsyncIterator[RunningThreadStore]:
    """A thread store without Redis (Postgres only)."""
    running = await start_thread_store(database_url, None)
    yield running
    await running.store.close()
    await running.server.stop(grace=0)
