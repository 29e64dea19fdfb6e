"""Where hand-offs keep their escalations: the queue operators work from.

``Escalations`` is the one interface; ``SessionApiEscalations`` calls
session_api (the audit trail and the console's queue) through its public
client, and ``InMemoryEscalations`` keeps them in a dict (tests, and a runner
started without session_api).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from services.session_api.client import SessionApiClient
from switchboard.errors import FailedPrecondition, NotFound, PermissionDenied
from switchboard.principal import Principal


@dataclass(frozen=True)
class OpenedEscalation:
    """An escalation as the hand-off needs it."""

    id: str
    session_id: str
    thread_id: str
    user_id: str
    org_id: str | None
    reason: str
    status: str  # open, claimed, resolved
    opened_at: datetime
    claimed_by: str | None = None
    claimed_at: datetime | None = None


class Escalations(Protocol):
    """Opens, claims and resolves the escalations of threads."""

    async def open(self, principal: Principal, *, session_id: str, thread_id: str, reason: str) -> OpenedEscalation:
        """Open (or return the pending) escalation of a session's thread.

        Raises:
            FailedPrecondition: the session has ended or was cancelled.
            NotFound: no such session of the principal (operators: of their org).
        """
        ...

    async def claim(self, operator: Principal, escalation_id: str) -> OpenedEscalation:
        """Take it; of operators racing, exactly one wins (the others: FailedPrecondition)."""
        ...

    async def resolve(self, operator: Principal, escalation_id: str, resolution: str) -> OpenedEscalation:
        """Close an escalation the operator holds."""
        ...


class InMemoryEscalations:
    """Escalations kept in memory: every session is active and every principal may open one."""

    def __init__(self) -> None:
        self.by_id: dict[str, OpenedEscalation] = {}

    @property
    def opened(self) -> list[OpenedEscalation]:
        """Every escalation, in the order opened."""
        return list(self.by_id.values())

    async def open(self, principal: Principal, *, session_id: str, thread_id: str, reason: str) -> OpenedEscalation:
        for escalation in self.by_id.values():
            if escalation.thread_id == thread_id and escalation.status != "resolved":
                return escalation
        escalation = OpenedEscalation(
            id=f"esc_{uuid.uuid4().hex}",
            session_id=session_id,
            thread_id=thread_id,
            user_id=principal.user_id,
            org_id=principal.org_id,
            reason=reason,
            status="open",
            opened_at=datetime.now(UTC),
        )
        self.by_id[escalation.id] = escalation
        return escalation

    async def claim(self, operator: Principal, escalation_id: str) -> OpenedEscalation:
        escalation = self._get(escalation_id)
        if escalation.status == "claimed" and escalation.claimed_by != operator.user_id:
            raise FailedPrecondition(f"escalation {escalation_id} is held by {escalation.claimed_by}")
        if escalation.status == "resolved":
            raise FailedPrecondition(f"escalation {escalation_id} is resolved")
        claimed = replace(escalation, status="claimed", claimed_by=operator.user_id, claimed_at=datetime.now(UTC))
        self.by_id[escalation_id] = claimed
        return claimed

    async def resolve(self, operator: Principal, escalation_id: str, resolution: str) -> OpenedEscalation:
        escalation = self._get(escalation_id)
        if escalation.claimed_by not in (None, operator.user_id):
            raise PermissionDenied(f"escalation {escalation_id} is held by {escalation.claimed_by}")
        resolved = replace(escalation, status="resolved")
        self.by_id[escalation_id] = resolved
        return resolved

    def _get(self, escalation_id: str) -> OpenedEscalation:
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

    async def open(self, principal: Principal, *, session_id: str, thread_id: str, reason: str) -> OpenedEscalation:
        reply = await self._client.open_escalation(principal, session_id, thread_id=thread_id, reason=reason)
        return _from_reply(reply)

    async def claim(self, operator: Principal, escalation_id: str) -> OpenedEscalation:
        return _from_reply(await self._client.claim_escalation(operator, escalation_id))

    async def resolve(self, operator: Principal, escalation_id: str, resolution: str) -> OpenedEscalation:
        return _from_reply(await self._client.resolve_escalation(operator, escalation_id, resolution=resolution))


def _from_reply(reply: Any) -> OpenedEscalation:
    """session_api's ``Escalation`` message as the hand-off needs it."""

    def when(name: str) -> datetime | None:
        moment: datetime | None = getattr(reply, name).ToDatetime(tzinfo=UTC) if reply.HasField(name) else None
        return moment

    status = {1: "open", 2: "claimed", 3: "resolved"}.get(int(getattr(reply, "status", 0)), "open")
    return OpenedEscalation(
        id=reply.id,
        session_id=reply.session_id,
        thread_id=reply.thread_id,
        user_id=reply.user_id,
        org_id=reply.org_id or None,
        reason=reply.reason,
        status=status,
        opened_at=when("opened_at") or datetime.now(UTC),
        claimed_by=reply.claimed_by or None,
        claimed_at=when("claimed_at"),
    )
