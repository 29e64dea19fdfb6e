"""The thread store's metrics read at scrape time: the change feed's lag (``switchboard.scrape_metrics``).

Its counted metrics (cache hits and misses, Redis fallbacks, retention) are
defined beside what they count; RPC rates, errors and latency are the gRPC
runtime's.
"""

from __future__ import annotations

from prometheus_client.registry import Collector

from services.thread_store.feed import ChangeFeed
from switchboard.scrape_metrics import FeedBacklogCollector


def thread_store_collectors(feed: ChangeFeed | None) -> list[Collector]:
    """The collectors the thread store registers on its metrics port (none without Redis)."""
    return [FeedBacklogCollector({"change_feed": feed.backlog})] if feed is not None else []
