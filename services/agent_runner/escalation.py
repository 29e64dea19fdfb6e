"""Where hand-offs keep their escalations (session_api's ``Escalation``): the queue operators work from.

``Escalations`` is the one interface; ``SessionApiEscalations`` calls
session_api (the audit trail and the console's queue) through its public
client, and ``InMemoryEscalations`` keeps them in a dict (tests, and a runner
started without session_api).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol

from services.session_api.client import Escalation, SessionApiClient
from switchboard.errors import FailedPrecondition, NotFound, PermissionDenied
from switchboard.principal import Principal


class Escalations(Protocol):
    """Opens, claims and resolves the escalations of threads."""

    async def open(self, principal: Principal, *, session_id: str, thread_id: str, reason: str) -> Escalation:
        """Open (or return the pending) escalation of a session's thread.

        Raises:
            FailedPrecondition: the session has ended or was cancelled.
            NotFound: no such session of the principal (operators: of their org).
        """
        ...

    async def claim(self, operator: Principal, escalation_id: str) -> Escalation:
        """Take it; of operators racing, exactly one wins (the others: FailedPrecondition)."""
        ...

    async def resolve(self, operator: Principal, escalation_id: str, resolution: str) -> Escalation:
        """Close an escalation the operator holds."""
        ...


class InMemoryEscalations:
    """Escalations kept in memory: every session is active and every principal may open one."""

    def __init__(self) -> None:
        self.by_id: dict[str, Escalation] = {}

    @property
    def opened(self) -> list[Escalation]:
        """Every escalation, in the order opened."""
        return list(self.by_id.values())

    async def open(self, principal: Principal, *, session_id: str, thread_id: str, reason: str) -> Escalation:
        for escalation in self.by_id.values():
            if escalation.thread_id == thread_id and escalation.status != "resolved":
                return escalation
        escalation = Escalation(
            id=f"esc_{uuid.uuid4().hex}",
            session_id=session_id,
            thread_id=thread_id,
            user_id=principal.user_id,
            org_id=principal.org_id,
            reason=reason,
            status="open",
            opened_by=principal.user_id,
            opened_at=datetime.now(UTC),
        )
        self.by_id[escalation.id] = escalation
        return escalation

    async def claim(self, operator: Principal, escalation_id: str) -> Escalation:
        escalation = self._get(escalation_id)
        if escalation.status == "claimed" and escalation.claimed_by != operator.user_id:
            raise FailedPrecondition(f"escalation {escalation_id} is held by {escalation.claimed_by}")
        if escalation.status == "resolved":
            raise FailedPrecondition(f"escalation {escalation_id} is resolved")
        claimed = replace(escalation, status="claimed", claimed_by=operator.user_id, claimed_at=datetime.now(UTC))
        self.by_id[escalation_id] = claimed
        return claimed

    async def resolve(self, operator: Principal, escalation_id: str, resolution: str) -> Escalation:
        escalation = self._get(escalation_id)
        if escalation.claimed_by not in (None, operator.user_id):
            raise PermissionDenied(f"escalation {escalation_id} is held by {escalation.claimed_by}")
        resolved = replace(escalation, status="resolved", resolved_by=operator.user_id, resolved_at=datetime.now(UTC))
        self.by_id[escalation_id] = resolved
        return resolved

    def _get(self, escalation_id: str) -> Escalation:
        try:
            return self.by_id[escalation_id]
        except KeyError:
            raise NotFound(f"there is no escalation {escalation_id!r}") from None


class SessionApiEscalations:
    """Escalations in session_api, through its public client.

    Args:
        client: session_api's client.
    """

    def __init__(self, client: SessionApiClient) -> None:
        self._client = client

    async def open(self, principal: Principal, *, session_id: str, thread_id: str, reason: str) -> Escalation:
        return await self._client.open_escalation(principal, session_id, thread_id=thread_id, reason=reason)

    async def claim(self, operator: Principal, escalation_id: str) -> Escalation:
        return await self._client.claim_escalation(operator, escalation_id)

    async def resolve(self, operator: Principal, escalation_id: str, resolution: str) -> Escalation:
        return await self._client.resolve_escalation(operator, escalation_id, resolution=resolution)
