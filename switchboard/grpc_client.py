"""What every gRPC client of a Switchboard service shares.

- ``LoopLocalChannels``: grpc.aio channels belong to the event loop that made
  them; this opens one per loop on first use, so a client object can be built
  at import time and used from whichever loop later calls it.
- ``error_from_rpc``: the gRPC status of a failed call back as the typed
  Switchboard error (``switchboard.errors`` holds the one table), so callers
  handle one family of errors.
"""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

import grpc

from switchboard.errors import SwitchboardError, Unavailable, error_for_status
from switchboard.grpc_runtime import CHANNEL_OPTIONS

log = logging.getLogger(__name__)
_TRANSPORT_DETAIL = re.compile(
    r"ipv4:|ipv6:|unix:|failed to connect|socket closed|connection reset|goaway|deadline exceeded", re.I
)
StubT = TypeVar("StubT")


def error_from_rpc(error: grpc.aio.AioRpcError, *, service: str) -> SwitchboardError:
    """The typed error for a failed call."""
    details = error.details() or error.code().name
    typed = error_for_status(error.code().name, details)
    if isinstance(typed, Unavailable):
        if _TRANSPORT_DETAIL.search(details):
            # Transport details name internal addresses: they go to the log, not to a client.
            log.warning("%s unreachable: %s", service, details)
            typed = Unavailable(f"{service} is unavailable; is it running? Retry in a moment")
        else:
            typed = Unavailable(f"{service} is unavailable ({details})")
    return typed


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
