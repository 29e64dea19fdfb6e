"""session_api's metrics read at scrape time: escalations waiting for a person and the session
feed's lag (``switchboard.scrape_metrics``).

Escalations live in Postgres, shared by every replica: each replica reports the
same deployment-wide numbers, so dashboards aggregate them with ``max``, not ``sum``.
The feed's backlog is this replica's own.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.session_api.feed import SessionFeed
from switchboard.scrape_metrics import FeedBacklogCollector, Fetch, PostgresCollector, query_timeout_from_env
from switchboard.sql import Queries

QUERIES = Queries.load(Path(__file__).parent / "queries")


def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
    waiting = GaugeMetricFamily(
        "switchboard_escalations_waiting",
        "Escalations open and waiting for an operator to take them (the whole deployment).",
    )
    claimed = GaugeMetricFamily(
        "switchboard_escalations_claimed", "Escalations an operator holds and has not resolved yet."
    )
    oldest = GaugeMetricFamily(
        "switchboard_escalations_oldest_waiting_seconds",
        "How long the oldest open escalation has waited for an operator (0: none waiting).",
    )
    return waiting, claimed, oldest


def read_escalations(fetch: Fetch) -> list[Metric]:
    """Count escalations waiting and held, and age the oldest waiting one."""
    waiting, claimed, oldest = _families()
    rows = fetch(QUERIES.escalation_queue)
    open_count, claimed_count, oldest_seconds = rows[0]
    waiting.add_metric([], int(open_count))
    claimed.add_metric([], int(claimed_count))
    oldest.add_metric([], float(oldest_seconds))
    return [waiting, claimed, oldest]


def session_api_collectors(database_url: str, feed: SessionFeed | None) -> list[Collector]:
    """The collectors session_api registers on its metrics port (the feed's only with Redis)."""
    collectors: list[Collector] = [
        PostgresCollector(
            query="escalations",
            database_url=database_url,
            read=read_escalations,
            describe=lambda: list(_families()),
            timeout=query_timeout_from_env(),
        )
    ]
    if feed is not None:
        collectors.append(FeedBacklogCollector({"session_feed": feed.backlog}))
    return collectors
