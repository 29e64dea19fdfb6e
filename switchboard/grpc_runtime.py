"""What every Switchboard gRPC server shares.

- ``DomainErrorInterceptor`` authenticates every call but health and
  reflection (``switchboard.service_auth``), maps typed domain errors to gRPC
  statuses, logs unexpected ones without leaking them, and records Prometheus
  metrics.
- ``GrpcServer`` owns a server's lifecycle: bind (with TLS or mutual TLS when
  ``SWITCHBOARD_GRPC_TLS_*`` say so), register the async health servicer and
  reflection (v1 and v1alpha), start, stop on SIGTERM/SIGINT with a grace
  period, then run the service's own clean-up.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
from chatkit.store import NotFoundError
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2
from prometheus_client import Counter, Histogram, start_http_server
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from switchboard.config import env_bool, env_int, env_str
from switchboard.errors import InvalidArgument, SwitchboardError, error_trailers
from switchboard.observability import REQUEST_ID_HEADER, accepted_request_id, bind
from switchboard.service_auth import OPEN_PREFIXES, ServerAuth, set_current_credential

log = logging.getLogger(__name__)

# The servicer context every servicer method receives.
ServicerContext = grpc.aio.ServicerContext[Any, Any]

GRPC_REQUESTS = Counter(
    "switchboard_grpc_requests_total",
    "gRPC requests handled, by method and status code.",
    ["method", "code"],
)
GRPC_LATENCY = Histogram(
    "switchboard_grpc_request_seconds",
    "gRPC request latency (for streams: time to the end of the stream).",
    ["method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# gRPC's default is 4 MiB; a ChatKit item rarely passes a few KiB, attachments
# with bytes are capped by the thread store at SWITCHBOARD_MAX_ATTACHMENT_BYTES.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.so_reuseport", 0),
    # Under a burst (800 conversations starting at once) calls wait for the
    # event loop to take them. gRPC cancels a call nobody took within 30 s by
    # default, which a client sees as CANCELLED; waiting longer is backpressure,
    # and the client's own deadline still bounds it.
    ("grpc.server_max_unrequested_time_in_server", 600),
]
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]


def connection_age_options() -> list[tuple[str, int]]:
    """``SWITCHBOARD_GRPC_MAX_CONNECTION_AGE_SECONDS`` (0, the default: never): past that age a
    connection is asked to close (GOAWAY) once its calls end, so clients resolve the target's name
    again and spread over replicas added since (a round-robin client keeps its connections for ever
    otherwise). Calls in flight, streams included, are never cut."""
    seconds = env_int("SWITCHBOARD_GRPC_MAX_CONNECTION_AGE_SECONDS", 0, minimum=0)
    return [("grpc.max_connection_age_ms", seconds * 1000)] if seconds else []


def _status_of(error: SwitchboardError) -> grpc.StatusCode:
    return getattr(grpc.StatusCode, error.status, grpc.StatusCode.INTERNAL)


@dataclass(frozen=True)
class _Undecodable:
    """A request whose bytes are not the method's protobuf message (bad UTF-8 in a string, truncation)."""

    reason: str


def _lenient(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """Parse requests, keeping a failure as a value: grpc would answer it UNKNOWN, and it is the
    caller's fault (INVALID_ARGUMENT)."""
    if deserialize is None:
        return None

    def parse(raw: bytes) -> Any:
        try:
            return deserialize(raw)
        except DecodeError as error:
            return _Undecodable(str(error))

    return parse


def _refuse_undecodable(request: Any) -> None:
    if isinstance(request, _Undecodable):
        raise InvalidArgument(f"the request is not a valid protobuf message of this method ({request.reason})")


class DomainErrorInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Authenticate each call (``auth``; None: no authentication, in-process tests of the
    interceptor only); turn ``SwitchboardError`` into its status; hide anything else behind INTERNAL."""

    def __init__(self, auth: ServerAuth | None = None) -> None:
        self._auth = auth

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, method, self._auth),
                request_deserializer=_lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, method, self._auth),  # type: ignore[arg-type]
                request_deserializer=_lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if self._auth is not None and self._auth.enabled and not method.startswith(OPEN_PREFIXES):
            # No method of ours streams requests (reflection does, and is open); refuse what the
            # wrappers cannot authenticate.
            return grpc.unary_unary_rpc_method_handler(_refuse_unauthenticated)
        return handler


async def _refuse_unauthenticated(request: Any, context: ServicerContext) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "this kind of call is not served")


async def _authenticate(auth: ServerAuth | None, method: str, context: ServicerContext) -> None:
    """Bind the call's request id (the caller's ``x-request-id``, else a new one) and, with
    authentication, its credential and user for the handler's task (its log lines and calls)."""
    metadata = context.invocation_metadata()
    request_id = None
    for key, value in metadata or ():
        if key == REQUEST_ID_HEADER:
            request_id = value if isinstance(value, str) else None
            break
    bind(request_id=accepted_request_id(request_id))
    if auth is not None:
        credential = await auth.authenticate(method, metadata)
        set_current_credential(credential)
        if credential is not None and credential.principal is not None:
            bind(user_id=credential.principal.user_id)


# Postgres or Redis down, refusing, or out of connections: the one mapping of storage
# failures to UNAVAILABLE (the edge answers 503 with Retry-After), never INTERNAL.
STORAGE_DOWN: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    # A fast shutdown cuts a connection mid-operation ("cannot switch to state ...").
    asyncpg.InternalClientError,
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    TimeoutError,
    # A Unix-socket Postgres that is stopped: its socket file is gone (FileNotFoundError).
    FileNotFoundError,
)


async def _abort_for(error: BaseException, context: ServicerContext, method: str) -> None:
    if isinstance(error, SwitchboardError):
        code = _status_of(error)
        log.debug("%s %s: %s", method, code.name, error.message)
        GRPC_REQUESTS.labels(method, code.name).inc()
        await context.abort(code, error.message, trailing_metadata=error_trailers(error))
    if isinstance(error, NotFoundError):
        # The ChatKit Store interface's own not-found (raised by GrpcThreadStore): not a server fault.
        GRPC_REQUESTS.labels(method, "NOT_FOUND").inc()
        await context.abort(grpc.StatusCode.NOT_FOUND, str(error) or "not found")
    if isinstance(error, STORAGE_DOWN):
        log.warning("%s: storage unavailable (%s: %s)", method, type(error).__name__, error)
        GRPC_REQUESTS.labels(method, "UNAVAILABLE").inc()
        await context.abort(grpc.StatusCode.UNAVAILABLE, "storage is unavailable right now; retry in a moment")
    log.exception("unexpected error in %s", method, exc_info=error)
    GRPC_REQUESTS.labels(method, "INTERNAL").inc()
    await context.abort(grpc.StatusCode.INTERNAL, "internal error; the server log has the details")


def _wrap_unary(
    behavior: Callable[..., Awaitable[Any]], method: str, auth: ServerAuth | None
) -> Callable[..., Awaitable[Any]]:
    async def wrapped(request: Any, context: ServicerContext) -> Any:
        started = time.perf_counter()
        try:
            await _authenticate(auth, method, context)
            _refuse_undecodable(request)
            response = await behavior(request, context)
        except asyncio.CancelledError:
            # The caller cancelled or its deadline passed: counted, so the rate holds every call.
            GRPC_REQUESTS.labels(method, "CANCELLED").inc()
            raise
        except (SwitchboardError, Exception) as error:
            if _is_abort(error):
                raise
            await _abort_for(error, context, method)
            raise  # unreachable: abort raises
        finally:
            GRPC_LATENCY.labels(method).observe(time.perf_counter() - started)
        GRPC_REQUESTS.labels(method, "OK").inc()
        log.debug("%s OK in %.2f ms", method, (time.perf_counter() - started) * 1000)
        return response

    return wrapped


def _wrap_stream(
    behavior: Callable[..., AsyncIterator[Any]], method: str, auth: ServerAuth | None
) -> Callable[..., AsyncIterator[Any]]:
    async def wrapped(request: Any, context: ServicerContext) -> AsyncIterator[Any]:
        started = time.perf_counter()
        try:
            await _authenticate(auth, method, context)
            _refuse_undecodable(request)
            async for response in behavior(request, context):
                yield response
        except asyncio.CancelledError:
            GRPC_REQUESTS.labels(method, "CANCELLED").inc()
            raise
        except (SwitchboardError, Exception) as error:
            if _is_abort(error):
                raise
            await _abort_for(error, context, method)
        finally:
            GRPC_LATENCY.labels(method).observe(time.perf_counter() - started)
        GRPC_REQUESTS.labels(method, "OK").inc()

    return wrapped


# What context.abort() and misuse of the context raise: let them through untouched.
_GRPC_CONTROL_ERRORS = (grpc.aio.AbortError, grpc.aio.InternalError, grpc.aio.UsageError)


def _is_abort(error: BaseException) -> bool:
    return isinstance(error, _GRPC_CONTROL_ERRORS)


def add_servicer(
    server: grpc.aio.Server, servicer: object, service: Any, *, pass_through: frozenset[str] = frozenset()
) -> None:
    """Register ``servicer`` for a protobuf service descriptor.

    Like the generated ``add_XServicer_to_server``, except that the methods named
    in ``pass_through`` may also return already-serialized ``bytes`` (the hot
    path builds its reply from cached wire bytes without re-encoding them).
    """
    from google.protobuf import message_factory

    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in service.methods:
        request_class = message_factory.GetMessageClass(method.input_type)
        serialize = _bytes_or_message if method.name in pass_through else _serialize_message
        make = grpc.unary_stream_rpc_method_handler if method.server_streaming else grpc.unary_unary_rpc_method_handler
        handlers[method.name] = make(
            getattr(servicer, method.name),
            request_deserializer=request_class.FromString,
            response_serializer=serialize,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))


def _serialize_message(message: Any) -> bytes:
    return bytes(message.SerializeToString())


def _bytes_or_message(reply: Any) -> bytes:
    return reply if isinstance(reply, bytes) else bytes(reply.SerializeToString())


@dataclass(frozen=True)
class TlsConfig:
    """TLS for gRPC servers and clients (``SWITCHBOARD_GRPC_TLS_*``).

    Attributes:
        cert: This process's certificate chain (PEM): the server's, and the client's under mutual TLS.
        key: Its private key (PEM).
        ca: The CA that signed the peers' certificates (PEM): clients verify servers with it, and
            servers require client certificates signed by it when ``mutual``.
        mutual: Require and present client certificates (``SWITCHBOARD_GRPC_MTLS``; on by default
            when a CA is given).
        server_name: The name clients expect in the server's certificate, when it differs from
            the target's host (``SWITCHBOARD_GRPC_TLS_SERVER_NAME``).
    """

    cert: bytes | None = None
    key: bytes | None = None
    ca: bytes | None = None
    mutual: bool = False
    server_name: str | None = None

    @property
    def enabled(self) -> bool:
        """Whether gRPC runs over TLS."""
        return self.ca is not None or self.cert is not None

    @classmethod
    def from_env(cls) -> TlsConfig:
        """Read ``SWITCHBOARD_GRPC_TLS_CERT``/``_KEY``/``_CA`` (file paths), ``SWITCHBOARD_GRPC_MTLS``
        and ``SWITCHBOARD_GRPC_TLS_SERVER_NAME``.

        Raises:
            InvalidArgument: a file is missing, or a certificate comes without its key.
        """
        cert, key, ca = (_pem(f"SWITCHBOARD_GRPC_TLS_{part}") for part in ("CERT", "KEY", "CA"))
        if (cert is None) != (key is None):
            raise InvalidArgument("SWITCHBOARD_GRPC_TLS_CERT and SWITCHBOARD_GRPC_TLS_KEY go together")
        mutual = env_bool("SWITCHBOARD_GRPC_MTLS", ca is not None)
        if mutual and (ca is None or cert is None):
            raise InvalidArgument(
                "SWITCHBOARD_GRPC_MTLS needs SWITCHBOARD_GRPC_TLS_CA and this process's own CERT and KEY"
            )
        return cls(cert=cert, key=key, ca=ca, mutual=mutual, server_name=env_str("SWITCHBOARD_GRPC_TLS_SERVER_NAME"))

    def server_credentials(self) -> grpc.ServerCredentials:
        """The server's side.

        Raises:
            InvalidArgument: no certificate to serve with.
        """
        if self.cert is None or self.key is None:
            raise InvalidArgument("a TLS server needs SWITCHBOARD_GRPC_TLS_CERT and SWITCHBOARD_GRPC_TLS_KEY")
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)], root_certificates=self.ca if self.mutual else None, require_client_auth=self.mutual
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """The client's side (its certificate only under mutual TLS)."""
        if self.mutual:
            return grpc.ssl_channel_credentials(self.ca, self.key, self.cert)
        return grpc.ssl_channel_credentials(self.ca)


def _pem(name: str) -> bytes | None:
    path = env_str(name)
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise InvalidArgument(f"{name}={path!r} cannot be read ({error.strerror})") from None


def _enable_reflection(names: list[str], server: grpc.aio.Server) -> None:
    """Reflection under both names: v1alpha (older tools) and v1 (grpcurl and current clients).

    grpcio-reflection ships only the v1alpha servicer; v1's messages are the same
    wire format, so the same servicer serves the v1 service name as well.
    """
    reflection.enable_server_reflection(names, server)
    servicer = reflection.aio.ReflectionServicer(names)  # type: ignore[attr-defined]
    handlers = {
        "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
        )
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(REFLECTION_V1, handlers),))


REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


class GrpcServer:
    """A gRPC server with authentication, health, reflection and graceful shutdown.

    Args:
        name: The service's full protobuf name (for readiness and reflection).
        register: Adds the service's servicers to the server.
        on_stop: Closes the service's pools after the server stopped.
        auth: How calls are authenticated (None: not at all; tests of the runtime only).
        tls: TLS settings (None: read from the environment).
    """

    def __init__(
        self,
        *,
        name: str,
        register: Callable[[grpc.aio.Server], None],
        on_stop: Callable[[], Awaitable[None]] | None = None,
        auth: ServerAuth | None = None,
        tls: TlsConfig | None = None,
    ) -> None:
        self.name = name
        self._register = register
        self._on_stop = on_stop
        self.auth = auth
        self.tls = tls if tls is not None else TlsConfig.from_env()
        self._server: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        self.port: int = 0

    async def start(self, host: str, port: int) -> int:
        """Bind and start serving.

        Returns:
            The bound port (useful with ``port=0``).

        Raises:
            RuntimeError: the address cannot be bound.
        """
        server = grpc.aio.server(
            interceptors=[DomainErrorInterceptor(self.auth)], options=[*SERVER_OPTIONS, *connection_age_options()]
        )
        self._register(server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        names = [self.name, health.SERVICE_NAME, reflection.SERVICE_NAME, REFLECTION_V1]
        _enable_reflection(names, server)
        address = f"{host}:{port}"
        if self.tls.enabled:
            bound = server.add_secure_port(address, self.tls.server_credentials())
        else:
            bound = server.add_insecure_port(address)
        if bound == 0:
            raise RuntimeError(f"cannot listen on {host}:{port}; is another process using the port?")
        await server.start()
        for service in ("", self.name):
            await self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        self._server = server
        self.port = bound
        log.info(
            "%s listening on %s:%d (%s, %s)",
            self.name,
            host,
            bound,
            ("mutual TLS" if self.tls.mutual else "TLS") if self.tls.enabled else "plaintext",
            "authenticated calls" if self.auth is not None and self.auth.enabled else "NO AUTHENTICATION",
        )
        return bound

    async def stop(self, grace: float = 5.0) -> None:
        """Mark not-serving, let in-flight calls finish for ``grace`` seconds, then clean up."""
        if self._server is None:
            return
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace)
        self._server = None
        if self._on_stop is not None:
            await self._on_stop()
        log.info("%s stopped", self.name)

    async def serve_until_signalled(self, host: str, port: int, grace: float = 5.0, *, metrics_port: int = 0) -> None:
        """Start (with Prometheus metrics over HTTP on ``metrics_port``, unless 0), wait for SIGTERM
        or SIGINT, then stop gracefully."""
        if metrics_port:
            start_http_server(metrics_port, addr=host)
            log.info("%s: Prometheus metrics on http://%s:%d/metrics", self.name, host, metrics_port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await self.start(host, port)
        except BaseException:
            if self._on_stop is not None:
                await self._on_stop()
            raise
        await stop.wait()
        log.info("%s: signal received, shutting down", self.name)
        await self.stop(grace)
