"""Where ``escalate_to_human`` sends its escalations.

``EscalationSink`` is the one interface; ``SessionApiEscalations`` calls
session_api's ``OpenEscalation`` through its public client, and
``InMemoryEscalations`` keeps them in a list (for tests and for a runner
started without session_api).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

from services.session_api.client import SessionApiClient
from switchboard.principal import Principal


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
    """Escalations opened in session_api, through its public client.

    Args:
        client: session_api's client.
    """

    def __init__(self, client: SessionApiClient) -> None:
        self._client = client

    async def open(self, principal: Principal, *, thread_id: str, reason: str) -> OpenedEscalation:
        """Open the escalation of the run's session; a failure raises the typed Switchboard error."""
        reply = await self._client.open_escalation(
            principal, principal.session_id or "", thread_id=thread_id, reason=reason
        )
        return OpenedEscalation(id=reply.id, thread_id=reply.thread_id or thread_id, reason=reply.reason or reason)
