"""OpenTelemetry traces: HTTP at the edge, every gRPC hop (client and server), Postgres and Redis,
exported over OTLP/HTTP when the standard ``OTEL_*`` variables say where; off otherwise.

On when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set,
unless ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``. Everything else
(sampling, batching, headers) follows the SDK's own variables. Each process is the
resource ``service.name=switchboard-<service>`` unless ``OTEL_SERVICE_NAME`` says otherwise.
The trace context crosses gRPC in the ``traceparent`` metadata, so one request's spans
share one trace id from the edge to the last query.

The agent run is traced too (agent_runner): the Agents SDK's own spans (the agent, each
model call, each tool call, MCP tool listings, handoffs) become OpenTelemetry spans
through OpenInference's instrumentor, children of the ``Run`` RPC's span. Decisions:
the SDK's exporter to OpenAI's dashboard is replaced, never added to (the instrumentor's
exclusive processor), so nothing leaves for OpenAI; and conversation content (model
inputs and outputs, tool arguments and results) stays out of spans unless
``SWITCHBOARD_TRACE_CONTENT=true``, since traces often go to a third-party backend.
Without tracing the SDK's tracing is off entirely (``tracing_disabled``).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from switchboard.config import env_bool

if TYPE_CHECKING:
    from agents import RunConfig

log = logging.getLogger(__name__)

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_agent_runs = {"traced": False, "content": False}


def agents_run_config() -> RunConfig:
    """The Agents SDK's ``RunConfig`` for this process's tracing: the SDK traces only when its
    spans become OpenTelemetry spans here, and with content only when allowed."""
    from agents import RunConfig

    return RunConfig(tracing_disabled=not _agent_runs["traced"], trace_include_sensitive_data=_agent_runs["content"])


def tracing_configured() -> bool:
    """Whether the environment asks for traces."""
    if (os.environ.get("OTEL_SDK_DISABLED") or "").strip().lower() == "true":
        return False
    if (os.environ.get("OTEL_TRACES_EXPORTER") or "otlp").strip().lower() == "none":
        return False
    return any(os.environ.get(name) for name in _ENDPOINTS)


def setup_tracing(service: str, *, http: bool = False, agents: bool = False) -> bool:
    """Install the tracer provider and the instrumentation for this process, when configured.

    Call it before any channel, server, pool or client is created.

    Args:
        service: The service's name (``thread_store``, ``edge``, ...).
        http: Also instrument FastAPI (the edge).
        agents: Also turn the Agents SDK's spans into OpenTelemetry spans (agent_runner).

    Returns:
        Whether tracing is on.
    """
    if not tracing_configured():
        return False
    # Imported here: a process without tracing never pays for them.
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient, GrpcAioInstrumentorServer
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME") or f"switchboard-{service}"
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    GrpcAioInstrumentorServer().instrument()  # type: ignore[no-untyped-call]
    GrpcAioInstrumentorClient().instrument()  # type: ignore[no-untyped-call]
    AsyncPGInstrumentor().instrument()  # type: ignore[no-untyped-call]
    RedisInstrumentor().instrument()
    if http:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor().instrument()
    if agents:
        from openinference.instrumentation import TraceConfig
        from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

        content = env_bool("SWITCHBOARD_TRACE_CONTENT", False)
        hidden = not content
        OpenAIAgentsInstrumentor().instrument(
            tracer_provider=provider,
            exclusive_processor=True,  # replaces the SDK's exporter to OpenAI: nothing leaves for OpenAI
            config=TraceConfig(
                hide_inputs=hidden,
                hide_outputs=hidden,
                hide_input_messages=hidden,
                hide_output_messages=hidden,
                hide_input_text=hidden,
                hide_output_text=hidden,
            ),
        )
        _agent_runs.update(traced=True, content=content)
    log.info("%s: traces go over OTLP (%s)", name, next(os.environ[n] for n in _ENDPOINTS if os.environ.get(n)))
    return True


def shutdown_tracing() -> None:
    """Flush the spans still batched (at a clean exit)."""
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if shutdown is not None:
        shutdown()
