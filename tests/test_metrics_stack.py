"""``switchboard up`` gives every process a metrics port, says where they are, and each serves what an
operator's Prometheus and the Grafana dashboard need, with sane values after a conversation and an escalation."""

from __future__ import annotations

import json
import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from switchboard.errors import FailedPrecondition, InvalidArgument
from switchboard.stack import assign_metrics_ports, check_ports_free, stack_children
from tests.conftest import free_port
from tests.e2e.conftest import (
    Stack,
    assistant_text,
    create_request,
    escalated,
    stack_ports,
    start_stack,
    stop_stack,
    stream_events,
)
from tests.test_metrics_collectors import fresh_database  # noqa: F401 (a fixture: counts of this stack alone)
from tests.test_metrics_dashboard import queried_metric_names, query_label_uses, sample_names

SERVICES = ("thread_store", "session_api", "agent_runner", "edge")
READY_LINE = re.compile(r"^\s+(?P<name>\w+)\s+(?P<url>\S+)\s+metrics (?P<metrics>http://\S+/metrics)\s*$")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, fresh_database: str, redis_url: str) -> Iterator[Stack]:  # noqa: F811
    running = start_stack(tmp_path_factory.mktemp("metrics-stack"), stack_ports(), fresh_database, redis_url)
    yield running
    stop_stack(running)


def _metrics_urls(stack: Stack) -> dict[str, str]:
    urls = {}
    for line in stack.output:
        if (match := READY_LINE.match(line)) is not None:
            urls[match["name"]] = match["metrics"]
    return urls


def _prometheus_targets(stack: Stack) -> dict[str, str]:
    """The file_sd file ``up`` names: each service's metrics URL."""
    line = next(line for line in stack.output if line.startswith("Prometheus targets"))
    targets = json.loads(Path(line.split(": ", 1)[1].strip()).read_text())
    return {t["labels"]["service"]: f"http://{t['targets'][0]}/metrics" for t in targets}


def _scrape(url: str) -> tuple[Samples, list[Metric]]:
    reply = httpx.get(url, timeout=10)
    assert reply.status_code == 200, reply.text
    samples: Samples = {}
    families = list(text_string_to_metric_families(reply.text))
    for family in families:
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, families


def _value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def _total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def test_up_serves_every_metric_the_dashboard_uses_with_sane_values(stack: Stack, tmp_path: Path) -> None:
    urls = _metrics_urls(stack)
    assert set(urls) == set(SERVICES), "".join(stack.output)
    assert urls["edge"] == f"{stack.edge}/metrics"
    ports = {int(url.rsplit(":", 1)[1].split("/")[0]) for url in urls.values()}
    assert len(ports) == len(SERVICES)  # a port per process (the edge's own HTTP port for the edge)

    # The same places, written for Prometheus's file-based discovery.
    assert _prometheus_targets(stack) == urls

    token = stack.token(f"metrics-{uuid.uuid4().hex[:8]}", org_id="metrics-org")
    async with httpx.AsyncClient(base_url=stack.edge, timeout=30) as http:
        answered = await stream_events(http, token, create_request("add buy milk"))
        assert "buy milk" in assistant_text(answered).lower()
        waiting = await stream_events(http, token, create_request("I want to talk to a human please"), until=escalated)
        assert any(escalated(event) for event in waiting)

    scrapes = {name: _scrape(url) for name, url in urls.items()}
    scraped = {name: samples for name, (samples, _families) in scrapes.items()}
    families_of = {name: families for name, (_samples, families) in scrapes.items()}
    runner, sessions, store, edge = (scraped[n] for n in ("agent_runner", "session_api", "thread_store", "edge"))

    # Runs by status, counted in Postgres: this stack's database has the conversation's runs alone.
    assert _value(runner, "switchboard_metrics_query_up", query="runs") == 1
    completed = _value(runner, "switchboard_runs", status="completed")
    assert completed is not None and completed >= 1
    assert _value(runner, "switchboard_runs", status="failed") == 0
    assert _total(runner, "switchboard_grpc_requests_total", code="OK") >= 2

    # One escalation opened, nobody took it yet.
    assert _value(sessions, "switchboard_metrics_query_up", query="escalations") == 1
    assert _value(sessions, "switchboard_escalations_waiting") == 1
    assert _value(sessions, "switchboard_escalations_claimed") == 0
    oldest = _value(sessions, "switchboard_escalations_oldest_waiting_seconds")
    assert oldest is not None and 0 <= oldest < 120

    # Redis is up: both feeds are live, nothing waits.
    assert _value(sessions, "switchboard_feed_pending_entries", feed="session_feed") == 0
    assert _value(sessions, "switchboard_feed_lag_seconds", feed="session_feed") == 0
    assert _value(store, "switchboard_feed_pending_entries", feed="change_feed") == 0
    assert _value(store, "switchboard_feed_lag_seconds", feed="change_feed") == 0

    # Rate, errors and latency per RPC; the cache was asked.
    assert _total(store, "switchboard_grpc_requests_total", code="OK") >= 2
    latencies = {dict(labels)["method"] for name, labels in store if name == "switchboard_grpc_request_seconds_count"}
    assert {"/switchboard.api.v1.ThreadStore/AddItem", "/switchboard.api.v1.ThreadStore/GetThread"} <= latencies
    assert _total(store, "switchboard_thread_cache_lookups_total") >= 1
    assert _total(edge, "switchboard_edge_requests_total", route="/chatkit") >= 2

    # Every metric the Grafana dashboard and the alerts query is really exported by some process of the stack.
    # (A labelled metric nothing has counted yet, such as Redis fallbacks, has its family but no sample.)
    exported = {name for samples in scraped.values() for name, _labels in samples}
    exported |= {name for families in families_of.values() for name in sample_names(families)}
    missing = queried_metric_names() - exported
    assert not missing, f"the dashboard or the alerts query metrics no process serves: {sorted(missing)}"
    # ... and groups or filters them only by labels they carry.
    labels_of: dict[str, set[str]] = {}
    for samples in scraped.values():
        for name, labels in samples:
            labels_of.setdefault(name, set()).update(key for key, _value in labels)
    for expr, metrics, labels in query_label_uses():
        carried = set().union(*(labels_of[m] for m in metrics if m in labels_of))
        if any(m in labels_of for m in metrics):
            assert labels <= carried, f"{expr}: no such label {sorted(labels - carried)}"


def test_a_taken_metrics_port_is_refused_naming_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SERVICES:
        monkeypatch.setenv(f"SWITCHBOARD_{name.upper()}_PORT", str(free_port()))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        monkeypatch.setenv("SWITCHBOARD_SESSION_API_METRICS_PORT", str(taken))
        children = stack_children()
        with pytest.raises(
            FailedPrecondition, match=f"port {taken} \\(session_api\\).*SWITCHBOARD_SESSION_API_METRICS_PORT"
        ):
            check_ports_free(children, "127.0.0.1")


def test_a_metrics_port_is_never_another_services_port(monkeypatch: pytest.MonkeyPatch) -> None:
    edge = free_port()
    monkeypatch.setenv("SWITCHBOARD_EDGE_PORT", str(edge))
    monkeypatch.setenv("SWITCHBOARD_AGENT_RUNNER_METRICS_PORT", str(edge))
    with pytest.raises(InvalidArgument, match="SWITCHBOARD_AGENT_RUNNER_METRICS_PORT and SWITCHBOARD_EDGE_PORT"):
        stack_children()
    monkeypatch.setenv("SWITCHBOARD_AGENT_RUNNER_METRICS_PORT", "metrics")
    with pytest.raises(InvalidArgument, match="not a port number"):
        stack_children()


def test_unset_metrics_ports_are_free_ones_distinct_from_every_other_port(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SERVICES:
        monkeypatch.setenv(f"SWITCHBOARD_{name.upper()}_PORT", str(free_port()))
        monkeypatch.delenv(f"SWITCHBOARD_{name.upper()}_METRICS_PORT", raising=False)
    fixed = free_port()
    monkeypatch.setenv("SWITCHBOARD_THREAD_STORE_METRICS_PORT", str(fixed))
    children = stack_children()
    assign_metrics_ports(children, "127.0.0.1")
    by_name = {c.name: c for c in children}
    assert by_name["thread_store"].metrics_port == fixed
    assert by_name["edge"].metrics_url == f"http://127.0.0.1:{by_name['edge'].port}/metrics"
    ports = [c.port for c in children] + [c.metrics_port for c in children if not c.http]
    assert len(set(ports)) == len(ports) == 7 and all(ports)
