"""The agent runner's metrics read at scrape time: runs by status (``switchboard.scrape_metrics``).

Runs live in Postgres, shared by every replica: each replica reports the same
deployment-wide numbers, so dashboards aggregate them with ``max``, not ``sum``.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric

from switchboard.scrape_metrics import Fetch, PostgresCollector, query_timeout_from_env
from switchboard.sql import Queries

QUERIES = Queries.load(Path(__file__).parent / "queries")
# Every status the runs table allows (0004/0005 migrations): each is reported, 0 when no run has it,
# so a dashboard or an alert sees 0 rather than no data.
RUN_STATUSES = ("queued", "running", "waiting_approval", "completed", "cancelled", "failed", "interrupted")


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


def read_runs(fetch: Fetch) -> list[Metric]:
    """Count runs by status and age the oldest queued one."""
    runs, oldest_queued = _families()
    counts = dict.fromkeys(RUN_STATUSES, 0)
    queued_age = 0.0
    for status, count, oldest_seconds in fetch(QUERIES.runs_by_status):
        counts[str(status)] = int(count)
        if status == "queued":
            queued_age = float(oldest_seconds)
    for status, count in counts.items():
        runs.add_metric([status], count)
    oldest_queued.add_metric([], queued_age)
    return [runs, oldest_queued]


def runs_collector(database_url: str) -> PostgresCollector:
    """The collector the agent runner registers on its metrics port."""
    return PostgresCollector(
        query="runs",
        database_url=database_url,
        read=read_runs,
        describe=lambda: list(_families()),
        timeout=query_timeout_from_env(),
    )
