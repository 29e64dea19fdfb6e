"""The chat session of a run: every conversation belongs to one, so escalations,
the audit log and the console see it.

``SessionLinks`` is the one interface; ``SessionApiLinks`` uses session_api's
public client, ``InMemorySessionLinks`` invents ids (tests, and a runner started
without session_api, where sessions are not tracked).
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Protocol

from services.session_api.client import SessionApiClient
from switchboard.principal import Principal


class SessionLinks(Protocol):
    """Creates sessions for threads and records that a session used a thread."""

    async def create_for_thread(self, principal: Principal, *, thread_id: str, agent_id: str) -> str:
        """A new session of the principal for the thread; its id."""
        ...

    async def attach(self, principal: Principal, *, session_id: str, thread_id: str) -> None:
        """Record that the session used the thread."""
        ...

    async def record_event(self, principal: Principal, *, session_id: str, type: str, payload: dict[str, Any]) -> None:
        """Append an event to the session's audit trail."""
        ...


class InMemorySessionLinks:
    """Sessions that exist only as ids, with what was attached."""

    def __init__(self) -> None:
        self.attached: list[tuple[str, str]] = []
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    async def create_for_thread(self, principal: Principal, *, thread_id: str, agent_id: str) -> str:
        session_id = f"sess_{uuid.uuid4().hex}"
        self.attached.append((session_id, thread_id))
        return session_id

    async def attach(self, principal: Principal, *, session_id: str, thread_id: str) -> None:
        self.attached.append((session_id, thread_id))

    async def record_event(self, principal: Principal, *, session_id: str, type: str, payload: dict[str, Any]) -> None:
        self.events.append((session_id, type, payload))


class SessionApiLinks:
    """Sessions in session_api.

    Args:
        client: session_api's public client.
    """

    def __init__(self, client: SessionApiClient) -> None:
        self._client = client

    async def create_for_thread(self, principal: Principal, *, thread_id: str, agent_id: str) -> str:
        created = await self._client.create_session(principal, agent_id=agent_id, thread_id=thread_id)
        return str(created.session.id)

    async def attach(self, principal: Principal, *, session_id: str, thread_id: str) -> None:
        await self._client.attach_thread(principal, session_id, thread_id)

    async def record_event(self, principal: Principal, *, session_id: str, type: str, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, default=str).encode()
        await self._client.record_event(principal, session_id, type=type, payload_json=body)
