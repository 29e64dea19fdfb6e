"""One request, one trace: a stack exporting OTLP to a receiver this test runs shows the edge,
session_api, thread_store, agent_runner, Postgres and Redis spans of one ChatKit request under one
trace id, with the agent run's own spans (the agent, MCP tool listing, the tool call) and none of
the conversation's content; and the request id is in the log lines of every service it crossed."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.e2e.conftest import Stack, bearer, create_request, new_user, stack_ports, start_stack, stop_stack

RUN = "/switchboard.api.v1.AgentRunner/Run"
SERVICES = ("switchboard-edge", "switchboard-session_api", "switchboard-thread_store", "switchboard-agent_runner")


@dataclass
class Span:
    service: str
    name: str
    trace_id: str
    attributes: dict[str, Any]


@dataclass
class Receiver:
    """An OTLP/HTTP trace receiver (``POST /v1/traces``, protobuf), keeping every span."""

    url: str = ""
    spans: list[Span] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    kept = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            export = ExportTraceServiceRequest.FromString(body)
            with kept.lock:
                for resource in export.resource_spans:
                    attrs = {a.key: a.value.string_value for a in resource.resource.attributes}
                    for scope in resource.scope_spans:
                        for span in scope.spans:
                            values = {a.key: a.value.string_value or a.value.int_value for a in span.attributes}
                            kept.spans.append(
                                Span(attrs.get("service.name", ""), span.name, span.trace_id.hex(), values)
                            )
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kept.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield kept
    server.shutdown()


@pytest.fixture(scope="module")
def traced(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, redis_url: str, receiver: Receiver
) -> Iterator[Stack]:
    stack = start_stack(
        tmp_path_factory.mktemp("traced"),
        stack_ports(),
        database_url,
        redis_url,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_BSP_SCHEDULE_DELAY="100",
        SWITCHBOARD_LOG_LEVEL="DEBUG",
    )
    yield stack


async def test_one_request_is_one_trace_across_every_service_and_the_storage(traced: Stack, receiver: Receiver) -> None:
    request_id = f"trace-test-{new_user()}"
    async with httpx.AsyncClient(base_url=traced.edge, timeout=30) as http:
        headers = {**bearer(traced.token(new_user())), "X-Request-ID": request_id}
        async with http.stream("POST", "/chatkit", content=create_request("add buy milk"), headers=headers) as reply:
            assert reply.status_code == 200
            await reply.aread()
    deadline = time.monotonic() + 20
    trace_id = ""
    while time.monotonic() < deadline:
        with receiver.lock:
            spans = list(receiver.spans)
        edge = [s for s in spans if s.service == "switchboard-edge" and s.name.startswith("POST /chatkit")]
        if edge:
            trace_id = edge[0].trace_id
            in_trace = [s for s in spans if s.trace_id == trace_id]
            services = {s.service for s in in_trace}
            systems = {s.attributes.get("db.system") or s.attributes.get("db.system.name") for s in in_trace}
            names = {s.name for s in in_trace}
            if set(SERVICES) <= services and {"postgresql", "redis"} <= systems and RUN in names:
                break  # (the run's span is exported when its stream ends)
        await asyncio.sleep(0.2)
    assert trace_id, [(s.service, s.name) for s in receiver.spans][:50]
    in_trace = [s for s in receiver.spans if s.trace_id == trace_id]
    assert set(SERVICES) <= {s.service for s in in_trace}, sorted({(s.service, s.name) for s in in_trace})
    systems = {s.attributes.get("db.system") or s.attributes.get("db.system.name") for s in in_trace}
    assert {"postgresql", "redis"} <= systems, systems
    grpc_calls = {s.name for s in in_trace if s.name.startswith("/switchboard.api.v1.")}
    assert (
        "/switchboard.api.v1.AgentRunner/Run" in grpc_calls
        and "/switchboard.api.v1.ThreadStore/BeginTurn" in grpc_calls
    )

    # The agent run: the Agents SDK's spans (the agent, the MCP tool listing, the tool call) are
    # OpenTelemetry spans of the same trace, without the conversation's content.
    agent_spans = [
        s for s in in_trace if s.service == "switchboard-agent_runner" and "openinference.span.kind" in s.attributes
    ]
    kinds = {s.attributes["openinference.span.kind"] for s in agent_spans}
    assert {"AGENT", "TOOL"} <= kinds, sorted(
        {(s.name, s.attributes.get("openinference.span.kind")) for s in agent_spans}
    )
    assert "add_task" in {s.name for s in agent_spans}
    assert not [s for s in agent_spans if any("buy milk" in str(v) for v in s.attributes.values())]

    # The request id, in the log lines of every service the request crossed.
    output = stop_stack(traced)
    crossed = {line.split("|", 1)[0].strip() for line in output.splitlines() if request_id in line}
    assert {"edge", "session_api", "thread_store", "agent_runner"} <= {c.replace("-", "_") for c in crossed}, crossed
