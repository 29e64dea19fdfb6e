"""Prometheus metrics read when Prometheus scrapes, not counted as things happen.

Some numbers an operator acts on live in Postgres (runs by status, escalations
waiting for a person) or in a feed's memory (changes not yet in Redis). A
``prometheus_client`` custom collector reads them on each scrape:

- ``PostgresCollector`` runs a service's few counting queries on a connection
  of its own (psycopg, from the metrics server's thread), so a scrape never
  takes a connection from the service's pool and still answers when the
  service's event loop is busy. Each query is bounded (``statement_timeout``,
  default 2 s, ``SWITCHBOARD_METRICS_QUERY_TIMEOUT_SECONDS``, in a read-only transaction); when it fails or
  times out its gauges are left out of that scrape (absent, not a stale or made-up
  value) and ``switchboard_metrics_query_up{query}`` says 0, so an alert can tell
  "no escalations waiting" from "could not count them".
- ``FeedBacklogCollector`` reports what each change feed owes Redis
  (``switchboard.streams.FeedBacklog``).

Decision (feed lag): the feeds have no consumer groups (every watcher reads a
stream from its own position), so "consumer lag" does not exist and the age of
a stream's newest entry measures traffic, not delay. The delay a live view can
suffer is between a commit in Postgres and its entry in Redis: zero while Redis
takes appends, growing while entries wait for the background retry. So
``switchboard_feed_lag_seconds`` is the age of the oldest entry still waiting,
with ``switchboard_feed_pending_entries`` and ``switchboard_feed_dropped_entries_total``
beside it. Above a few seconds, this replica cannot reach Redis: consoles and
watchers are that far behind (the data is safe in Postgres).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import psycopg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry

from switchboard.config import env_float
from switchboard.streams import FeedBacklog

log = logging.getLogger(__name__)

DEFAULT_QUERY_TIMEOUT = 2.0

# What a service's read function gets: run a query, get its rows.
Rows = list[tuple[Any, ...]]
Fetch = Callable[[str], Rows]


def query_timeout_from_env() -> float:
    """``SWITCHBOARD_METRICS_QUERY_TIMEOUT_SECONDS`` (default 2): the bound on one scrape's queries."""
    return env_float("SWITCHBOARD_METRICS_QUERY_TIMEOUT_SECONDS", DEFAULT_QUERY_TIMEOUT, minimum=0.1)


class PostgresCollector(Collector):
    """Gauges counted in Postgres at scrape time, with a health metric of their own.

    Args:
        query: Names this collector in ``switchboard_metrics_query_*{query=...}``.
        database_url: Postgres (a libpq URL).
        read: Given a function that runs one SQL text and returns its rows, builds the metric families.
        describe: The families ``read`` yields, without samples (what the registry checks for clashes).
        timeout: Seconds one scrape may spend connecting and querying.
    """

    def __init__(
        self,
        *,
        query: str,
        database_url: str,
        read: Callable[[Fetch], list[Metric]],
        describe: Callable[[], list[Metric]],
        timeout: float = DEFAULT_QUERY_TIMEOUT,
    ) -> None:
        self.query = query
        self._database_url = database_url
        self._read = read
        self._describe = describe
        self._timeout = timeout
        self._lock = threading.Lock()  # scrapes may come in parallel; one connection, one at a time
        self._connection: psycopg.Connection[Any] | None = None
        self._failures = 0
        self._failing = 0  # failures in a row

    def describe(self) -> Iterator[Metric]:
        """The families this collector yields (no query: registering never touches Postgres)."""
        yield from self._describe()
        yield from self._health(up=1, seconds=0.0)

    def collect(self) -> Iterator[Metric]:
        """Run the queries; on failure or time-out yield only the health metrics."""
        started = time.perf_counter()
        families: list[Metric] = []
        up = 1
        with self._lock:
            try:
                connection = self._connect()
                # One read-only transaction per scrape, its bounds set inside it (SET LOCAL, not startup
                # options: a transaction-pooling PgBouncer refuses those and would pass a session SET on).
                with connection.transaction():
                    timeout_ms = max(1, int(self._timeout * 1000))
                    connection.execute(
                        f"SET LOCAL statement_timeout = {timeout_ms}; SET LOCAL lock_timeout = {timeout_ms};"
                        " SET LOCAL transaction_read_only = on".encode()
                    )
                    families = self._read(self._fetch)
                self._failing = 0
            except Exception as error:
                up = 0
                self._failures += 1
                self._failing += 1
                self._disconnect()
                # Every scrape would repeat it: the first failure in a row is a warning, the rest debug.
                level = logging.WARNING if self._failing == 1 else logging.DEBUG
                log.log(level, "metrics query %s failed (%s: %s)", self.query, type(error).__name__, error)
        yield from families
        yield from self._health(up=up, seconds=time.perf_counter() - started)

    def _fetch(self, sql: str) -> Rows:
        assert self._connection is not None  # collect() connected
        with self._connection.cursor() as cursor:
            cursor.execute(sql.encode())
            return list(cursor.fetchall())

    def _connect(self) -> psycopg.Connection[Any]:
        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(
                self._database_url,
                autocommit=True,
                # libpq counts whole seconds, at least 2.
                connect_timeout=max(2, round(self._timeout)),
                application_name=f"switchboard-metrics-{self.query}",
            )
        return self._connection

    def _disconnect(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:
                log.debug("closing the metrics connection failed", exc_info=True)
            self._connection = None

    def close(self) -> None:
        """Close the connection (the next scrape opens another)."""
        with self._lock:
            self._disconnect()

    def _health(self, *, up: int, seconds: float) -> list[Metric]:
        labels = [self.query]
        ok = GaugeMetricFamily(
            "switchboard_metrics_query_up",
            "Whether the last scrape's Postgres query for these metrics succeeded (0: its gauges are absent).",
            labels=["query"],
        )
        ok.add_metric(labels, up)
        duration = GaugeMetricFamily(
            "switchboard_metrics_query_seconds", "How long the last scrape's query took.", labels=["query"]
        )
        duration.add_metric(labels, seconds)
        failures = CounterMetricFamily(
            "switchboard_metrics_query_failures",
            "Scrapes whose Postgres query failed or timed out.",
            labels=["query"],
        )
        failures.add_metric(labels, self._failures)
        return [ok, duration, failures]


class FeedBacklogCollector(Collector):
    """What each change feed of this process owes Redis, read at scrape time.

    Args:
        feeds: Each feed's label value (``change_feed``, ``session_feed``) and a function returning its backlog.
    """

    def __init__(self, feeds: Mapping[str, Callable[[], FeedBacklog]]) -> None:
        self._feeds = dict(feeds)

    def describe(self) -> Iterator[Metric]:
        """The families, without samples."""
        yield from self._families({})

    def collect(self) -> Iterator[Metric]:
        """Each feed's backlog now."""
        yield from self._families({name: backlog() for name, backlog in self._feeds.items()})

    @staticmethod
    def _families(backlogs: Mapping[str, FeedBacklog]) -> list[Metric]:
        pending = GaugeMetricFamily(
            "switchboard_feed_pending_entries",
            "Changes committed in Postgres but not yet appended to the feed's Redis streams.",
            labels=["feed"],
        )
        lag = GaugeMetricFamily(
            "switchboard_feed_lag_seconds",
            "How long the oldest change not yet in Redis has waited: how far live views are behind (0: none).",
            labels=["feed"],
        )
        dropped = CounterMetricFamily(
            "switchboard_feed_dropped_entries",
            "Changes dropped from a full retry queue: watchers never saw them (Postgres has them).",
            labels=["feed"],
        )
        for name, backlog in backlogs.items():
            pending.add_metric([name], backlog.entries)
            lag.add_metric([name], backlog.oldest_seconds)
            dropped.add_metric([name], backlog.dropped)
        return [pending, lag, dropped]


def register_collectors(*collectors: Collector, registry: CollectorRegistry = REGISTRY) -> None:
    """Add collectors to the registry a process serves on its metrics port (once per process)."""
    for collector in collectors:
        registry.register(collector)
