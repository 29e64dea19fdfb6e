"""What every gRPC client of a Switchboard service shares.

- ``LoopLocalChannels``: grpc.aio channels belong to the event loop that made
  them; this opens one per loop on first use, so a client object can be built
  at import time and used from whichever loop later calls it. Every call it
  makes carries the client's credentials (``switchboard.service_auth``).
- ``open_channel`` / ``open_sync_channel``: a channel to a Switchboard service,
  over TLS when ``SWITCHBOARD_GRPC_TLS_*`` say so.
- ``error_from_rpc``: the gRPC status of a failed call back as the typed
  Switchboard error (``switchboard.errors`` holds the one table), so callers
  handle one family of errors.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar, cast

import grpc

from switchboard.errors import SwitchboardError, Unavailable, error_for_status
from switchboard.grpc_runtime import CHANNEL_OPTIONS, TlsConfig
from switchboard.observability import REQUEST_ID_HEADER, current_request_id
from switchboard.service_auth import CallCredentials, credentials_from_env

log = logging.getLogger(__name__)
_TRANSPORT_DETAIL = re.compile(
    r"ipv4:|ipv6:|unix:|failed to connect|socket closed|connection reset|goaway|deadline exceeded", re.I
)
StubT = TypeVar("StubT")


def error_from_rpc(error: grpc.aio.AioRpcError, *, service: str) -> SwitchboardError:
    """The typed error for a failed call."""
    details = error.details() or error.code().name
    trailers: dict[str, str] = {}
    # grpc.aio's Metadata iterates as (key, value) pairs, as the tuples of the sync API do.
    for key, value in cast("Iterable[tuple[Any, Any]]", error.trailing_metadata() or ()):
        if isinstance(key, str) and isinstance(value, str):
            trailers[key] = value
    typed = error_for_status(error.code().name, details, trailers)
    if isinstance(typed, Unavailable):
        if _TRANSPORT_DETAIL.search(details):
            # Transport details name internal addresses: they go to the log, not to a client.
            log.warning("%s unreachable: %s", service, details)
            typed = Unavailable(f"{service} is unavailable; is it running? Retry in a moment")
        else:
            typed = Unavailable(f"{service} is unavailable ({details})", retry_after=typed.retry_after)
    return typed


@functools.cache
def process_tls() -> TlsConfig:
    """This process's TLS settings, read once."""
    return TlsConfig.from_env()


# Calls are spread over every address a target resolves to, not sent down the first connection:
# with a `dns:///name:port` target naming a headless Kubernetes Service, that is every replica's pod
# (deploy/helm). A target of one address behaves as with gRPC's default (pick_first).
BALANCING = ("grpc.lb_policy_name", "round_robin")


def _channel_options(tls: TlsConfig) -> list[tuple[str, Any]]:
    if tls.enabled and tls.server_name:
        return [*CHANNEL_OPTIONS, BALANCING, ("grpc.ssl_target_name_override", tls.server_name)]
    return [*CHANNEL_OPTIONS, BALANCING]


def open_channel(target: str, tls: TlsConfig | None = None) -> grpc.aio.Channel:
    """An asyncio channel to ``target`` (TLS per ``tls``, default: the environment's)."""
    tls = tls if tls is not None else process_tls()
    if tls.enabled:
        return grpc.aio.secure_channel(target, tls.channel_credentials(), options=_channel_options(tls))
    return grpc.aio.insecure_channel(target, options=_channel_options(tls))


def open_sync_channel(target: str, tls: TlsConfig | None = None) -> grpc.Channel:
    """A blocking channel to ``target`` (health probes of ``switchboard up`` and the CLI)."""
    tls = tls if tls is not None else process_tls()
    if tls.enabled:
        return grpc.secure_channel(target, tls.channel_credentials(), options=_channel_options(tls))
    return grpc.insecure_channel(target, options=CHANNEL_OPTIONS)


def health_status(target: str, *, timeout: float) -> str:
    """What a server's gRPC health service says (``SERVING``, ``NOT_SERVING``...), or the status
    code of the failed check (``UNAVAILABLE``...). Blocking; TLS as the environment says."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with open_sync_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError as error:
            return str(error.code().name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


class AuthenticatedStub:
    """A stub whose every method adds the credentials' metadata (if any) and the request id of
    what is being served (``x-request-id``) to the call."""

    def __init__(self, stub: Any, credentials: CallCredentials | None) -> None:
        self._stub = stub
        self._credentials = credentials

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._stub, name)
        credentials = self._credentials

        def call(request: Any, *, metadata: Any = None, **kwargs: Any) -> Any:
            added = credentials.metadata(request) if credentials is not None else ()
            request_id = current_request_id()
            if request_id is not None:
                added = (*added, (REQUEST_ID_HEADER, request_id))
            return method(request, metadata=(*added, *metadata) if metadata else added, **kwargs)

        setattr(self, name, call)  # built once per method
        return call


class _FromEnv:
    """Marks credentials read from the environment (``credentials_from_env``)."""


FROM_ENV: Any = _FromEnv()


class LoopLocalChannels(Generic[StubT]):
    """One channel and stub per running event loop; every call authenticated.

    Args:
        target: ``host:port`` of the service.
        make_stub: The generated stub class.
        audience: The service's name (``thread_store``, ``session_api``, ``agent_runner``).
        credentials: What calls carry (default: ``credentials_from_env(audience)``; None: nothing).
        tls: TLS settings (default: the environment's).
    """

    def __init__(
        self,
        target: str,
        make_stub: Callable[[grpc.aio.Channel], StubT],
        *,
        audience: str,
        credentials: CallCredentials | None = FROM_ENV,
        tls: TlsConfig | None = None,
    ) -> None:
        if not target:
            raise ValueError("a gRPC target like 'localhost:50051' is required")
        self.target = target
        self.audience = audience
        self.credentials = credentials_from_env(audience) if isinstance(credentials, _FromEnv) else credentials
        self._tls = tls
        self._make_stub = make_stub
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[grpc.aio.Channel, StubT]] = (
            weakref.WeakKeyDictionary()
        )

    def stub(self) -> StubT:
        """The stub for the running loop, opening its channel on first use."""
        loop = asyncio.get_running_loop()
        entry = self._by_loop.get(loop)
        if entry is None:
            channel = open_channel(self.target, self._tls)
            stub: Any = AuthenticatedStub(self._make_stub(channel), self.credentials)
            entry = (channel, stub)
            self._by_loop[loop] = entry
        return entry[1]

    def channel(self) -> grpc.aio.Channel:
        """The channel for the running loop."""
        self.stub()
        return self._by_loop[asyncio.get_running_loop()][0]

    async def close(self) -> None:
        """Close the running loop's channel."""
        entry = self._by_loop.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[0].close(None)
