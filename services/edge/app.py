"""The edge's HTTP application: ``POST /chatkit``, the REST endpoints, health and metrics.

Errors have one JSON shape, ``{"error": {"code": ..., "message": ...}}``, and
one mapping from Switchboard's typed errors: 400 bad input, 401 sign in again,
403 a path naming another user, 404 not found (also another user's objects),
409 busy, 413 too large, 429 too many requests, 503 a service is down. Nothing a
client sends produces a 500.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import redis.asyncio as aioredis
from chatkit.server import StreamingResult
from chatkit.store import NotFoundError
from chatkit.types import ItemsListReq
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response, StreamingResponse
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.agent_runner.client import AgentRunnerClient
from services.edge.auth import (
    Authenticator,
    ClientAddresses,
    RateLimited,
    RateLimiter,
    RequestContext,
    SharedRateLimiter,
    SignInThrottle,
    check_scope,
)
from services.edge.chatkit_server import (
    CHATKIT_REQUEST,
    AttachmentTooLarge,
    EdgeAttachmentStore,
    SwitchboardChatKitServer,
    attachment_headers,
)
from services.edge.config import EdgeConfig
from services.edge.docs import install_docs
from services.edge.playground import install_playground
from services.edge.transcription import transcriber_from
from services.edge.turns import StartedTurn, Turns, starts_a_turn
from services.session_api.client import SessionApiClient
from services.thread_store.client import GrpcThreadStore
from switchboard.errors import InvalidArgument, ResourceExhausted, SwitchboardError, Unauthenticated, Unavailable
from switchboard.grpc_client import open_channel
from switchboard.observability import accepted_request_id, bind
from switchboard.redis_client import create_redis

log = logging.getLogger(__name__)

# Connections of the shared rate limiter: one short script per request, so a few dozen keep a
# replica's event loop busy; past them a request waits for one (then limits on its own).
LIMITER_POOL_SIZE = 32
THREAD_ID = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")
# Headers that keep proxies (nginx, Cloudflare, CDNs) from buffering the stream.
SSE_HEADERS = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no", "Connection": "keep-alive"}


class BodyTooLarge(ResourceExhausted):
    """A request body past the limit."""


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The edge's one error shape."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def switchboard_error_response(error: SwitchboardError) -> JSONResponse:
    """The HTTP form of a typed error."""
    if isinstance(error, RateLimited):
        retry = str(max(1, round(error.retry_after + 0.5)))
        return error_response(429, "rate_limited", error.message, {"Retry-After": retry})
    status = error.http_status
    if status == 401:
        return error_response(401, "unauthenticated", f"please sign in again ({error.message})")
    if status >= 500:
        log.warning("%s: %s", error.status, error.message)
    headers = None
    if isinstance(error, Unavailable):
        wait = error.retry_after if error.retry_after is not None else 1.0
        headers = {"Retry-After": str(max(1, math.ceil(wait)))}
    return error_response(status, error.status.lower(), error.message, headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (before reading it, when declared)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidArgument("Content-Length must be a number")
        if int(declared) > limit:
            raise BodyTooLarge(f"the request body is larger than the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the request body is larger than the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


class Metrics:
    """Prometheus metrics of one edge (a registry of its own, so tests can run several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "switchboard_edge_requests_total",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "switchboard_edge_request_seconds",
            "Time to the response head (streams: to the first event)",
            ["route"],
            registry=self.registry,
        )
        self.chatkit = Counter(
            "switchboard_edge_chatkit_requests_total",
            "ChatKit requests by type",
            ["type"],
            registry=self.registry,
        )
        self.rate_limit_shared = Gauge(
            "switchboard_edge_rate_limit_shared",
            "1 while users' rate limits are shared through Redis, 0 while this replica limits on its own",
            registry=self.registry,
        )
        self.sign_in_refusals = Counter(
            "switchboard_edge_sign_in_refusals_total",
            "Requests refused before a principal was known: failed (401) or address over its failure budget (429)",
            ["reason"],
            registry=self.registry,
        )


class MetricsMiddleware:
    """Counts requests and times them to the response head, and names each request: its
    ``X-Request-ID`` (the client's, else a new one) is bound for every log line and gRPC call made
    while serving it, and sent back (pure ASGI: no extra task per request)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]
        sent = next((v for k, v in scope.get("headers") or () if k == b"x-request-id"), b"")
        request_id = accepted_request_id(sent.decode("latin-1"))
        bind(request_id=request_id)

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
                status[0] = message["status"]
                route = scope.get("route")
                path = getattr(route, "path", "unmatched")
                self.metrics.latency.labels(path).observe(time.perf_counter() - started)
                self.metrics.requests.labels(path, scope["method"], str(status[0])).inc()
            await send(message)

        await self.app(scope, receive, send_wrapper)


class Edge:
    """The edge's clients and request plumbing, shared by the routes.

    Args:
        config: The settings.
    """

    def __init__(self, config: EdgeConfig) -> None:
        self.config = config
        self.sessions = SessionApiClient(config.session_api)
        self.runner = AgentRunnerClient(config.agent_runner)
        self.store = GrpcThreadStore(config.thread_store)
        self.attachments = EdgeAttachmentStore(self.store, max_bytes=config.max_attachment_bytes)
        self.transcriber = transcriber_from(config.transcription)
        self.chatkit = SwitchboardChatKitServer(
            self.store,
            self.attachments,
            self.runner,
            self.sessions,
            threads_order=config.threads_order,
            transcriber=self.transcriber,
        )
        self.turns = Turns(self.chatkit, self.store, self.runner, on_disconnect=config.on_disconnect)
        self.auth = Authenticator(
            self.sessions, session_seconds=config.session_auth_seconds, max_entries=config.auth_cache_size
        )
        self.limiter = SharedRateLimiter(
            _limiter_redis(config.redis_url),
            per_second=config.rate_per_second,
            burst=config.rate_burst,
        )
        self.addresses = ClientAddresses(config.trusted_proxies)
        failures = None
        if config.auth_failures_per_minute:
            failures = RateLimiter(
                per_second=config.auth_failures_per_minute / 60.0,
                burst=config.auth_failures_per_minute,
                message="too many failed sign-ins from this address",
            )
        self.sign_in = SignInThrottle(self.auth, failures)
        self.metrics = Metrics()
        self.metrics.rate_limit_shared.set_function(lambda: 1.0 if self.limiter.shared else 0.0)

    async def context(self, request: Request) -> RequestContext:
        """Authenticate and rate-limit a request; its ChatKit store context."""
        peer = request.client.host if request.client else None
        address = self.addresses.key(peer, request.headers.getlist("x-forwarded-for"))
        try:
            principal = await self.sign_in.principal(request.headers.get("authorization"), address=address)
        except RateLimited:
            self.metrics.sign_in_refusals.labels("throttled").inc()
            raise
        except Unauthenticated:
            self.metrics.sign_in_refusals.labels("failed").inc()
            raise
        await self.limiter.check(principal.user_id)
        bind(user_id=principal.user_id)
        scope = request.headers.get("x-switchboard-scope") or None
        if scope is not None:
            check_scope(scope, "X-Switchboard-Scope")
        return RequestContext(principal=principal, scope=scope)

    async def close(self) -> None:
        """Close every channel."""
        await asyncio.gather(self.sessions.close(), self.runner.close(), self.store.close(), self.limiter.close())
        if self.transcriber is not None:
            await self.transcriber.close()

    async def ready(self) -> dict[str, str]:
        """Each service's health ("serving" or what is wrong)."""
        targets = {
            "thread_store": self.config.thread_store,
            "session_api": self.config.session_api,
            "agent_runner": self.config.agent_runner,
        }
        results = await asyncio.gather(*(_health(target) for target in targets.values()))
        return dict(zip(targets, results, strict=True))


def _limiter_redis(url: str | None) -> aioredis.Redis | None:
    """The shared rate limiter's Redis: a restarted Redis's dropped connections are replaced at
    once (a request charged twice at worst), so limits are shared again with its first answer."""
    if url is None:
        return None
    return create_redis(url, pool_size=LIMITER_POOL_SIZE, pool_wait=1.0, resend_on_dropped=True)


async def _health(target: str) -> str:
    async with open_channel(target) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1.0)
        except grpc.aio.AioRpcError as error:
            return f"unavailable ({error.code().name})"
    return "serving" if reply.status == health_pb2.HealthCheckResponse.SERVING else "not serving"


def sse_response(body: AsyncIterator[bytes]) -> StreamingResponse:
    """A Server-Sent Events response that proxies do not buffer."""
    return StreamingResponse(body, media_type="text/event-stream", headers=SSE_HEADERS)


async def _chain(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


def create_app(config: EdgeConfig, *, edge: Edge | None = None) -> FastAPI:
    """The edge application."""
    edge = edge or Edge(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await edge.close()

    app = FastAPI(
        title="Switchboard edge",
        version="1",
        description="The ChatKit protocol (POST /chatkit) and REST views of sessions and conversations.",
        lifespan=lifespan,
        docs_url=None,  # served by install_docs, from local assets
        redoc_url=None,
    )
    app.state.edge = edge

    @app.exception_handler(SwitchboardError)
    async def on_switchboard_error(request: Request, error: SwitchboardError) -> JSONResponse:
        return switchboard_error_response(error)

    @app.exception_handler(NotFoundError)
    async def on_not_found(request: Request, error: NotFoundError) -> JSONResponse:
        return error_response(404, "not_found", str(error) or "not found")

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error_response(400, "invalid_argument", f"{where}: {first.get('msg', 'invalid request')}")

    @app.post(
        "/chatkit",
        summary="The ChatKit protocol",
        description="A ChatKit request (JSON); streaming requests answer with Server-Sent Events.",
        tags=["chatkit"],
    )
    async def chatkit(request: Request) -> Response:
        context = await edge.context(request)
        body = await read_body(request, config.max_body_bytes)
        try:
            parsed = CHATKIT_REQUEST.validate_json(body)  # once: routing, metrics and the SDK share it
            edge.metrics.chatkit.labels(parsed.type).inc()
            if isinstance(parsed, ItemsListReq):
                body = await edge.chatkit.items_list_json(parsed.params, context)
                return Response(body, media_type="application/json")
            if starts_a_turn(parsed):
                turn = await edge.turns.start(parsed, context)
                return sse_response(edge.turns.relay(turn, context, started=True))
            if parsed.type.startswith("attachments."):
                context.base_url = config.public_url or str(request.base_url).rstrip("/")
            result = await edge.chatkit.process_request(parsed, context)
            if not isinstance(result, StreamingResult):
                return Response(result.json, media_type="application/json")
            stream = aiter(result)
            # The first event comes after the thread is loaded and the message saved:
            # a missing thread or bad input still gets its HTTP status.
            first = await anext(stream)
        except ValidationError as error:
            raise InvalidArgument(_validation_message(error)) from None
        except (ValueError, TypeError) as error:
            raise InvalidArgument(str(error)) from None
        except StopAsyncIteration:
            return Response(b"", media_type="text/event-stream", headers=SSE_HEADERS)
        return sse_response(_chain(first, stream))

    @app.get(
        "/chatkit/threads/{thread_id}/stream",
        tags=["chatkit"],
        summary="Join a conversation's running answer",
        description=(
            "Server-Sent Events of the thread's active run: the events after `Last-Event-ID` (header, or `after`)"
            " are replayed, then the live ones until the run ends. 204 when nothing is answering."
        ),
        responses={204: {"description": "the conversation has no active run"}},
    )
    async def join_stream(thread_id: str, request: Request, after: str | None = None) -> Response:
        context = await edge.context(request)
        _check_thread_id(thread_id)
        turn: StartedTurn | None = await edge.turns.join(
            thread_id, request.headers.get("last-event-id") or after, context
        )
        if turn is None:
            return Response(status_code=204)
        return sse_response(edge.turns.relay(turn, context, started=False))

    @app.post("/chatkit/attachments/{attachment_id}/upload", tags=["chatkit"], summary="Upload an attachment's bytes")
    async def upload_attachment(attachment_id: str, request: Request) -> Response:
        context = await edge.context(request)
        limit = config.max_attachment_bytes
        body = await read_body(request, limit + 64 * 1024)  # room for multipart framing
        content = await _upload_content(request, body, limit)
        if len(content) > limit:
            raise AttachmentTooLarge(f"attachments are limited to {limit} bytes")
        attachment = await edge.store.load_attachment(attachment_id, context)
        attachment = attachment.model_copy(update={"upload_descriptor": None})
        await edge.store.save_attachment_content(attachment, content, context)
        out = attachment.model_dump_json(by_alias=True, exclude_none=True, context={"exclude_metadata": True})
        return Response(out, media_type="application/json")

    @app.get("/chatkit/attachments/{attachment_id}", tags=["chatkit"], summary="An attachment's bytes")
    async def download_attachment(attachment_id: str, request: Request) -> Response:
        context = await edge.context(request)
        attachment, content = await edge.store.load_attachment_content(attachment_id, context)
        if content is None:
            return error_response(404, "not_found", "this attachment has not been uploaded yet")
        return Response(content, headers=attachment_headers(attachment.mime_type, attachment.name))

    @app.get("/healthz", tags=["health"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="Readiness: the three services answer their health checks")
    async def readyz() -> JSONResponse:
        services = await edge.ready()
        ready = all(v == "serving" for v in services.values())
        return JSONResponse({"ready": ready, "services": services}, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(generate_latest(edge.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    from services.edge.operator import build_operator_router
    from services.edge.rest import build_router

    app.include_router(build_router(edge, config))
    app.include_router(build_operator_router(edge))
    install_docs(app)
    install_playground(app)
    if config.cors_origins:
        wildcard = "*" in config.cors_origins
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_credentials=not wildcard,  # never "*" with credentials
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Switchboard-Scope"],
            max_age=600,
        )
    app.add_middleware(MetricsMiddleware, metrics=edge.metrics)
    return app


def _check_thread_id(thread_id: str) -> None:
    if not THREAD_ID.match(thread_id):
        raise InvalidArgument("a thread id is 1-128 letters, digits, '_' or '-'")


def _validation_message(error: ValidationError) -> str:
    problems = error.errors()
    kinds = {p.get("type") for p in problems}
    if "json_invalid" in kinds:
        return "the request body is not valid JSON"
    if "union_tag_invalid" in kinds:
        return "unknown ChatKit request type"
    if kinds & {"union_tag_not_found", "dict_type"}:
        return 'a ChatKit request is a JSON object with a "type"'
    if not problems:
        return "invalid ChatKit request"
    where = ".".join(str(p) for p in problems[0]["loc"])
    return f"invalid ChatKit request: {where}: {problems[0]['msg']}"


async def _upload_content(request: Request, body: bytes, limit: int) -> bytes:
    """The uploaded bytes: the ``file`` part of a multipart form, or the raw body."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return body

    async def replay() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    form = await Request(request.scope, replay).form(max_files=1, max_fields=10, max_part_size=limit)
    upload: Any = form.get("file")
    if upload is None or isinstance(upload, str):
        raise InvalidArgument('a multipart upload needs its bytes in a "file" part')
    content: bytes = await upload.read()
    return content
