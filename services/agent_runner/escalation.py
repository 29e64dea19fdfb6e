"""Where ``escalate_to_human`` sends its escalations.

``EscalationSink`` is the one interface; ``SessionApiEscalations`` calls
session_api's ``OpenEscalation`` through the generated stub, and
``InMemoryEscalations`` keeps them in a list (for tests and for a runner
started without session_api).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

import grpc

from switchboard.api.v1 import session_api_pb2, session_api_pb2_grpc
from switchboard.grpc_client import LoopLocalChannels, error_from_rpc
from switchboard.principal import Principal
from switchboard.proto_convert import principal_to_proto


@dataclass(frozen=True)
class OpenedEscalation:
    """An escalation as the sink opened it."""

    id: str
    thread_id: str
    reason: str


class EscalationSink(Protocol):
    """Opens escalations for a thread."""

    async def open(self, principal: Principal, *, thread_id: str, reason: str) -> OpenedEscalation:
        """Open (or return the pending) escalation of the thread."""
        ...


class InMemoryEscalations:
    """Escalations kept in memory, in the order they were opened."""

    def __init__(self) -> None:
        self.opened: list[tuple[Principal, OpenedEscalation]] = []

    async def open(self, principal: Principal, *, thread_id: str, reason: str) -> OpenedEscalation:
        """Record the escalation."""
        escalation = OpenedEscalation(id=f"esc_{uuid.uuid4().hex[:12]}", thread_id=thread_id, reason=reason)
        self.opened.append((principal, escalation))
        return escalation


class SessionApiEscalations:
    """Escalations opened in session_api.

    Args:
        target: ``host:port`` of session_api.
        timeout: Seconds per call.
    """

    def __init__(self, target: str, *, timeout: float = 5.0) -> None:
        self._channels = LoopLocalChannels(target, session_api_pb2_grpc.SessionApiStub)
        self._timeout = timeout

    async def open(self, principal: Principal, *, thread_id: str, reason: str) -> OpenedEscalation:
        """Call ``OpenEscalation``; a failure raises the typed Switchboard error."""
        request = session_api_pb2.OpenEscalationRequest(
            principal=principal_to_proto(principal),
            session_id=principal.session_id or "",
            thread_id=thread_id,
            reason=reason,
        )
        try:
            reply = await self._channels.stub().OpenEscalation(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as error:
            raise error_from_rpc(error, service="session_api") from None
        return OpenedEscalation(id=reply.id, thread_id=reply.thread_id or thread_id, reason=reply.reason or reason)

    async def close(self) -> None:
        """Close this loop's channel."""
        await self._channels.close()
