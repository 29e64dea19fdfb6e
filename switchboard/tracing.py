"""OpenTelemetry traces: HTTP at the edge, every gRPC hop (client and server), Postgres and Redis,
exported over OTLP/HTTP when the standard ``OTEL_*`` variables say where; off otherwise.

On when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set,
unless ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``. Everything else
(sampling, batching, headers) follows the SDK's own variables. Each process is the
resource ``service.name=switchboard-<service>`` unless ``OTEL_SERVICE_NAME`` says otherwise.
The trace context crosses gRPC in the ``traceparent`` metadata, so one request's spans
share one trace id from the edge to the last query.

Decision: the Agents SDK's own tracing (to OpenAI's dashboard) stays off; the run's
model and tool calls appear through the spans of the gRPC and HTTP calls they make.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def tracing_configured() -> bool:
    """Whether the environment asks for traces."""
    if (os.environ.get("OTEL_SDK_DISABLED") or "").strip().lower() == "true":
        return False
    if (os.environ.get("OTEL_TRACES_EXPORTER") or "otlp").strip().lower() == "none":
        return False
    return any(os.environ.get(name) for name in _ENDPOINTS)


def setup_tracing(service: str, *, http: bool = False) -> bool:
    """Install the tracer provider and the instrumentation for this process, when configured.

    Call it before any channel, server, pool or client is created.

    Args:
        service: The service's name (``thread_store``, ``edge``, ...).
        http: Also instrument FastAPI (the edge).

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
    log.info("%s: traces go over OTLP (%s)", name, next(os.environ[n] for n in _ENDPOINTS if os.environ.get(n)))
    return True


def shutdown_tracing() -> None:
    """Flush the spans still batched (at a clean exit)."""
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if shutdown is not None:
        shutdown()
