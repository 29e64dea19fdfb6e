"""What a Prometheus scrape costs in the counting queries (``switchboard/scrape_metrics.py``) as the
tables grow: runs by status with the finished ones recounted (a scan of the whole ``runs`` table,
which the collector does at most once a minute) and without (the active ones alone, every scrape),
and escalations waiting (the unresolved ones only). Medians of sequential scrapes, each a full
``collect()`` as the metrics server does.
"""

from __future__ import annotations

import time

import psycopg
from prometheus_client import CollectorRegistry

from bench.common import bench_storage, median, ms, pct, print_table
from services.agent_runner.metrics import runs_collector
from services.session_api.metrics import session_api_collectors
from switchboard.scrape_metrics import PostgresCollector

RUN_ROWS = (10_000, 100_000, 1_000_000)
ACTIVE_RUNS = 100  # queued and running, at each size
SCRAPES = 20
RESOLVED_ESCALATIONS = 100_000
OPEN_ESCALATIONS = 1_000


def _scrape_seconds(collector: PostgresCollector) -> list[float]:
    registry = CollectorRegistry()
    registry.register(collector)
    list(registry.collect())  # connect once, as a running service has
    samples = []
    for _ in range(SCRAPES):
        started = time.perf_counter()
        list(registry.collect())
        samples.append(time.perf_counter() - started)
    assert registry.get_sample_value("switchboard_metrics_query_up", {"query": collector.query}) == 1
    return samples


def _add_runs(database_url: str, count: int) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        # Finished runs pile up; the active ones are a few (ACTIVE_RUNS, added once): a deployment's shape.
        conn.execute(
            "INSERT INTO runs (id, thread_id, user_id, status) "
            "SELECT 'r' || n || '-' || %s, 't' || n, 'bench', "
            "(ARRAY['completed','completed','completed','completed','failed','cancelled','interrupted'])[1 + n %% 7] "
            "FROM generate_series(1, %s) AS n",
            (count, count),
        )
        conn.execute(
            "INSERT INTO runs (id, thread_id, user_id, status) "
            "SELECT 'active' || n || '-' || %s, 'active-thread' || n || '-' || %s, 'bench', "
            "(ARRAY['queued','running'])[1 + n %% 2] FROM generate_series(1, %s) AS n",
            (count, count, ACTIVE_RUNS),
        )
        conn.execute("ANALYZE runs")


def _add_escalations(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO sessions (id, user_id, channel) VALUES ('bench-session', 'bench', 'web')")
        conn.execute(
            "INSERT INTO escalations (id, session_id, thread_id, user_id, reason, opened_by, status, resolved_by,"
            " resolved_at) SELECT 'e' || n, 'bench-session', 't' || n, 'bench', 'help', 'bench',"
            " CASE WHEN n <= %s THEN 'open' ELSE 'resolved' END,"
            " CASE WHEN n <= %s THEN NULL ELSE 'op' END, CASE WHEN n <= %s THEN NULL ELSE now() END"
            " FROM generate_series(1, %s) AS n",
            (OPEN_ESCALATIONS, OPEN_ESCALATIONS, OPEN_ESCALATIONS, OPEN_ESCALATIONS + RESOLVED_ESCALATIONS),
        )
        conn.execute("ANALYZE escalations")


async def main() -> None:
    """Print the scrape cost of each counting query at a few table sizes."""
    rows = []
    with bench_storage() as (database_url, _redis_url):
        total = 0
        for size in RUN_ROWS:
            _add_runs(database_url, size - total - ACTIVE_RUNS)
            total = size
            for finished_every, what in ((0.0, "recounting finished"), (3600.0, "active only")):
                collector = runs_collector(database_url, finished_every=finished_every)
                try:
                    samples = _scrape_seconds(collector)
                finally:
                    collector.close()
                rows.append((f"runs, {size:,}, {what}", ms(median(samples)), ms(pct(samples, 0.9))))
        _add_escalations(database_url)
        (escalations,) = session_api_collectors(database_url, feed=None)
        assert isinstance(escalations, PostgresCollector)
        try:
            samples = _scrape_seconds(escalations)
        finally:
            escalations.close()
        label = f"escalations, {OPEN_ESCALATIONS:,} open of {OPEN_ESCALATIONS + RESOLVED_ESCALATIONS:,}"
        rows.append((label, ms(median(samples)), ms(pct(samples, 0.9))))
    print_table(f"One scrape's counting query ({SCRAPES} sequential scrapes each)", rows, ("query", "p50", "p90"))
