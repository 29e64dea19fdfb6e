"""What every gRPC client of a Switchboard service shares.

- ``LoopLocalChannels``: grpc.aio channels belong to the event loop that made
  them; this opens one per loop on first use, so a client object can be built
  at import time and used from whichever loop later calls it.
- ``error_from_rpc``: the gRPC status of a failed call back as the typed
  Switchboard error, so callers handle one family of errors (the edge maps them
  to HTTP statuses in one place).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

import grpc

from switchboard.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    SwitchboardError,
    Unauthenticated,
    Unavailable,
)
from switchboard.grpc_runtime import CHANNEL_OPTIONS

StubT = TypeVar("StubT")

_BY_STATUS: dict[grpc.StatusCode, type[SwitchboardError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
}


def error_from_rpc(error: grpc.aio.AioRpcError, *, service: str) -> SwitchboardError:
    """The typed error for a failed call."""
    kind = _BY_STATUS.get(error.code(), SwitchboardError)
    details = error.details() or error.code().name
    if kind is Unavailable:
        details = f"{service} is unavailable ({details}); is it running?"
    return kind(details)


class LoopLocalChannels(Generic[StubT]):
    """One channel and stub per running event loop.

    Args:
        target: ``host:port`` of the service.
        make_stub: The generated stub class.
    """

    def __init__(self, target: str, make_stub: Callable[[grpc.aio.Channel], StubT]) -> None:
        if not target:
            raise ValueError("a gRPC target like 'localhost:50051' is required")
        self.target = target
        self._make_stub = make_stub
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[grpc.aio.Channel, StubT]] = (
            weakref.WeakKeyDictionary()
        )

    def stub(self) -> StubT:
        """The stub for the running loop, opening its channel on first use."""
        loop = asyncio.get_running_loop()
        entry = self._by_loop.get(loop)
        if entry is None:
            channel = grpc.aio.insecure_channel(self.target, options=CHANNEL_OPTIONS)
            entry = (channel, self._make_stub(channel))
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
