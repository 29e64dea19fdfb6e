"""The Grafana dashboard (deploy/grafana/switchboard.json) and the alerting rules
(deploy/prometheus/alerts.yaml) query only metrics the services export:
renaming a metric without the dashboard fails here (tests/test_metrics_stack.py checks the same
against a running stack's scrapes, labels included)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY
from prometheus_client.core import Metric

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "switchboard.json"
ALERTS = Path(__file__).resolve().parent.parent / "deploy" / "prometheus" / "alerts.yaml"
METRIC = re.compile(r"\bswitchboard_[a-z0-9_]+\b")


def dashboard_expressions() -> list[tuple[str, str]]:
    """Every panel's PromQL expressions, as (panel title, expression)."""
    dashboard = json.loads(DASHBOARD.read_text())
    found = []
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets", ()):
            found.append((panel["title"], target["expr"]))
    return found


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def alert_rules() -> list[dict[str, Any]]:
    """The alerting rules."""
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def queried_metric_names() -> set[str]:
    """The metric names the dashboard and the alerts query."""
    return dashboard_metric_names() | {name for rule in alert_rules() for name in METRIC.findall(rule["expr"])}


def dashboard_metric_names() -> set[str]:
    """The metric names (as Prometheus stores them: ``_total``, ``_bucket``...) the dashboard queries."""
    return {name for _title, expr in dashboard_expressions() for name in METRIC.findall(expr)}


def sample_names(families: Iterable[Metric]) -> set[str]:
    """The names a scrape carries for these families (a counter ``x`` is stored as ``x_total``...)."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created")}
    names = set()
    for family in families:
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


def exported_metric_names() -> set[str]:
    """What the four processes export, read from their registries without running them: the process-wide
    registry the gRPC services serve (filled by importing their servers), the edge's own registry, and
    the scrape-time collectors' descriptions."""
    import services.agent_runner.server
    import services.session_api.server
    import services.thread_store.server  # noqa: F401
    from services.agent_runner.metrics import runs_collector
    from services.edge.app import Metrics
    from services.session_api.metrics import session_api_collectors
    from switchboard.scrape_metrics import FeedBacklogCollector

    families = list(REGISTRY.collect())
    families += Metrics().registry.collect()
    unused = "postgresql://nobody@127.0.0.1:1/never-connected"
    for collector in (runs_collector(unused), *session_api_collectors(unused, None), FeedBacklogCollector({})):
        families += collector.describe()  # type: ignore[attr-defined]
    return sample_names(families)


PROMETHEUS_LABELS = frozenset({"job", "instance", "le"})  # added by Prometheus, or a histogram's own


def query_label_uses() -> list[tuple[str, set[str], set[str]]]:
    """Each expression of the dashboard and the alerts with the metrics it names and the labels it groups
    or filters by (but Prometheus's own)."""
    uses = []
    for expr in [expr for _title, expr in dashboard_expressions()] + [rule["expr"] for rule in alert_rules()]:
        labels = set()
        for group in re.findall(r"\bby \(([^)]*)\)", expr):
            labels.update(label.strip() for label in group.split(",") if label.strip())
        for matchers in re.findall(r"\{([^}]*)\}", expr):
            labels.update(re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)", matchers))
        uses.append((expr, set(METRIC.findall(expr)), labels - PROMETHEUS_LABELS))
    return uses


def test_every_panel_has_a_query_and_every_query_names_a_metric() -> None:
    expressions = dashboard_expressions()
    assert len(expressions) >= 15
    for title, expr in expressions:
        assert METRIC.search(expr), f"{title!r}: {expr!r} names no switchboard metric"
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), f"{title!r}: {expr!r}"


def test_the_dashboard_covers_what_an_operator_watches() -> None:
    names = dashboard_metric_names()
    for needed in (
        "switchboard_grpc_requests_total",
        "switchboard_grpc_request_seconds_bucket",
        "switchboard_thread_cache_lookups_total",
        "switchboard_runs",
        "switchboard_escalations_waiting",
        "switchboard_feed_lag_seconds",
        "switchboard_edge_requests_total",
        "switchboard_edge_request_seconds_bucket",
    ):
        assert needed in names
    quantiles = {q for _t, expr in dashboard_expressions() for q in re.findall(r"histogram_quantile\((0\.\d+)", expr)}
    assert {"0.5", "0.99"} <= quantiles


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    exported = exported_metric_names()
    missing = dashboard_metric_names() - exported
    assert not missing, f"the dashboard queries metrics no service exports: {sorted(missing)}"


def test_every_alert_is_complete_and_queries_exported_metrics() -> None:
    rules = alert_rules()
    assert len(rules) >= 5
    assert len({rule["alert"] for rule in rules}) == len(rules)
    exported = exported_metric_names()
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        names = set(METRIC.findall(rule["expr"]))
        assert names, f"{rule['alert']} names no switchboard metric"
        assert names <= exported, f"{rule['alert']} queries metrics no service exports: {sorted(names - exported)}"
