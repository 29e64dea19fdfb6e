"""The agent runner's metrics read at scrape time: runs by status (``switchboard.scrape_metrics``).

Runs live in Postgres, shared by every replica: each replica reports the same
deployment-wide numbers, so dashboards aggregate them with ``max``, not ``sum``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric

from switchboard.scrape_metrics import Fetch, PostgresCollector, query_timeout_from_env
from switchboard.sql import Queries

QUERIES = Queries.load(Path(__file__).parent / "queries")
# Finished runs are counted by a scan of the whole table: at 1,000,000 runs about 0.45 s
# (python -m bench metrics); once a minute is fresh enough for a dashboard's rates.
FINISHED_COUNT_SECONDS = 60.0
# Every status the runs table allows (0004/0005 migrations): each is reported, 0 when no run has it,
# so a dashboard or an alert sees 0 rather than no data.
ACTIVE_STATUSES = ("queued", "running", "waiting_approval")
FINISHED_STATUSES = ("completed", "cancelled", "failed", "interrupted")
RUN_STATUSES = ACTIVE_STATUSES + FINISHED_STATUSES


def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    runs = GaugeMetricFamily(
        "switchboard_runs",
        "Runs of the deployment by status, counted in Postgres at scrape time (every replica reports the same).",
        labels=["status"],
    )
    oldest_queued = GaugeMetricFamily(
        "switchboard_runs_oldest_queued_seconds",
        "How long the oldest queued run has waited for its turn (0: none queued).",
    )
    return runs, oldest_queued


class RunCounts:
    """Counts runs by status for a scrape: the active ones (queued, running, waiting for an approval)
    every time, cheaply through their partial indexes; the finished ones, a scan of the whole table,
    at most every ``finished_every`` seconds, the last count standing in between.

    Args:
        finished_every: Seconds a count of finished runs is reused (0: recount every scrape).
        clock: Monotonic seconds (tests pass their own).
    """

    def __init__(self, *, finished_every: float = FINISHED_COUNT_SECONDS, clock: Callable[[], float] = time.monotonic):
        self._finished_every = finished_every
        self._clock = clock
        self._finished: dict[str, int] | None = None
        self._counted_at: float | None = None

    def __call__(self, fetch: Fetch) -> list[Metric]:
        """The families of one scrape."""
        runs, oldest_queued = _families()
        counts = dict.fromkeys(ACTIVE_STATUSES, 0)
        queued_age = 0.0
        for status, count, oldest_seconds in fetch(QUERIES.active_runs):
            counts[str(status)] = int(count)
            if status == "queued":
                queued_age = float(oldest_seconds)
        now = self._clock()
        if self._counted_at is None or now - self._counted_at >= self._finished_every:
            # Noted before the count: a count past the time-out fails this scrape alone, and the next ones
            # in the window report the active runs (and the last finished count, if any) rather than
            # failing on it again.
            self._counted_at = now
            finished = dict.fromkeys(FINISHED_STATUSES, 0)
            finished.update({str(status): int(count) for status, count in fetch(QUERIES.finished_runs)})
            self._finished = finished
        counts.update(self._finished or {})
        for status, count in counts.items():
            runs.add_metric([status], count)
        oldest_queued.add_metric([], queued_age)
        return [runs, oldest_queued]


def runs_collector(database_url: str, *, finished_every: float = FINISHED_COUNT_SECONDS) -> PostgresCollector:
    """The collector the agent runner registers on its metrics port."""
    return PostgresCollector(
        query="runs",
        database_url=database_url,
        read=RunCounts(finished_every=finished_every),
        describe=lambda: list(_families()),
        timeout=query_timeout_from_env(),
    )
