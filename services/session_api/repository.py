"""Postgres access for sessions, session events and escalations.

Reads take the caller and, for operators, their org: a row of someone else is
``NotFound``, never ``PermissionDenied``, so ids leak nothing. Methods return
domain objects, never raw rows.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from services.session_api.domain import (
    DurationStats,
    Escalation,
    EscalationStatus,
    HostedLink,
    Session,
    SessionEvent,
    SessionMetrics,
    SessionStatus,
)
from switchboard.errors import NotFound
from switchboard.pages import Page, make_page
from switchboard.sql import Queries

QUERIES_DIR = Path(__file__).parent / "queries"
T = TypeVar("T")


def _session(row: asyncpg.Record) -> Session:
    hosted = None
    if row["workflow_id"] is not None:
        hosted = HostedLink(
            workflow_id=row["workflow_id"],
            openai_user=row["hosted_user"],
            openai_session_id=row["hosted_session_id"],
            expires_at=row["hosted_expires_at"],
            cancelled=row["hosted_status"] == "cancelled",
        )
    return Session(
        id=row["id"],
        user_id=row["user_id"],
        org_id=row["org_id"],
        channel=row["channel"],
        agent_id=row["agent_id"],
        status=row["status"],
        created_at=row["created_at"],
        ended_at=row["ended_at"],
        metadata_json=row["metadata"].encode(),
        thread_ids=tuple(row["thread_ids"]),
        hosted=hosted,
    )


def _event(row: asyncpg.Record) -> SessionEvent:
    return SessionEvent(
        id=row["id"],
        session_id=row["session_id"],
        type=row["type"],
        actor_user_id=row["actor_user_id"],
        payload_json=row["payload"].encode(),
        created_at=row["created_at"],
    )


def _escalation(row: asyncpg.Record) -> Escalation:
    return Escalation(
        id=row["id"],
        session_id=row["session_id"],
        thread_id=row["thread_id"],
        user_id=row["user_id"],
        org_id=row["org_id"],
        reason=row["reason"],
        status=row["status"],
        opened_by=row["opened_by"],
        opened_at=row["opened_at"],
        claimed_by=row["claimed_by"],
        claimed_at=row["claimed_at"],
        resolved_by=row["resolved_by"],
        resolved_at=row["resolved_at"],
        resolution=row["resolution"],
    )


class SessionRepository:
    """Sessions, their events and escalations in Postgres.

    Args:
        pool: An asyncpg pool.
        queries: The named queries of ``queries/``.
    """

    def __init__(self, pool: asyncpg.Pool, queries: Queries) -> None:
        self._pool = pool
        self._q = queries

    # -- sessions -----------------------------------------------------------------

    async def insert_session(
        self,
        *,
        session_id: str,
        user_id: str,
        org_id: str | None,
        channel: str,
        agent_id: str,
        metadata_json: bytes,
        thread_ids: list[str],
        event_payload: bytes,
        hosted: HostedLink | None = None,
    ) -> Session:
        """Create a session and its ``session_created`` event (and, hosted, its link to the
        OpenAI session) in one transaction."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                self._q.insert_session,
                session_id,
                user_id,
                org_id,
                channel,
                agent_id,
                metadata_json.decode(),
                thread_ids,
                hosted.workflow_id if hosted else None,
                hosted.openai_user if hosted else None,
                hosted.openai_session_id if hosted else None,
                hosted.expires_at if hosted else None,
            )
            if hosted is not None:
                await conn.execute(
                    self._q.insert_hosted_session, hosted.openai_session_id, session_id, hosted.expires_at
                )
            await conn.execute(self._q.insert_event, session_id, "session_created", user_id, event_payload.decode())
        return _session(row)

    async def link_hosted_session(self, *, session_id: str, openai_session_id: str, expires_at: datetime) -> bool:
        """Make a new OpenAI session the hosted session's current one (a refresh); False when
        the session is no longer active (nothing is changed then)."""
        async with self._pool.acquire() as conn, conn.transaction():
            updated = await conn.fetchval(self._q.set_current_hosted_session, session_id, openai_session_id, expires_at)
            if not updated:
                return False
            await conn.execute(self._q.insert_hosted_session, openai_session_id, session_id, expires_at)
        return True

    async def live_hosted_sessions(self, session_id: str) -> list[str]:
        """The OpenAI sessions of a session that are neither cancelled nor expired, oldest first."""
        rows = await self._pool.fetch(self._q.live_hosted_sessions, session_id)
        return [row["id"] for row in rows]

    async def get_session(self, *, session_id: str, user_id: str, operator_org: str | None) -> Session:
        """A session the caller owns or (operators) one of their org.

        Raises:
            NotFound: no such session visible to the caller.
        """
        row = await self._pool.fetchrow(self._q.get_session, session_id, user_id, operator_org)
        if row is None:
            raise NotFound(f"session {session_id!r} not found")
        return _session(row)

    async def session_status(self, session_id: str) -> SessionStatus | None:
        """The status of any session (for token checks), or None when it does not exist."""
        status: SessionStatus | None = await self._pool.fetchval(self._q.session_status, session_id)
        return status

    async def list_sessions(
        self,
        *,
        user_id: str | None,
        org_id: str | None,
        status: SessionStatus | None,
        after: str | None,
        limit: int,
    ) -> Page[Session]:
        """Newest first: one user's sessions, or (``org_id`` given) an org's, optionally one user's of it."""
        if org_id is not None:
            rows = await self._pool.fetch(self._q.list_org_sessions, org_id, status, user_id, after, limit + 1)
        else:
            rows = await self._pool.fetch(self._q.list_user_sessions, user_id, status, after, limit + 1)
        return make_page([_session(r) for r in rows], limit, lambda s: s.id)

    async def finish_session(
        self, *, session_id: str, status: SessionStatus, actor: str, event_type: str, event_payload: bytes
    ) -> Session | None:
        """Move an active session to ``status`` and record the event; None when it was not active."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(self._q.finish_session, session_id, status)
            if row is None:
                return None
            await conn.execute(self._q.insert_event, session_id, event_type, actor, event_payload.decode())
        return _session(row)

    async def attach_thread(self, *, session_id: str, thread_id: str) -> bool:
        """Add a thread to the session's list; False when it was there already."""
        row = await self._pool.fetchrow(self._q.attach_thread, session_id, thread_id)
        return row is not None

    # -- events -------------------------------------------------------------------

    async def insert_event(self, *, session_id: str, type: str, actor: str, payload_json: bytes) -> SessionEvent:
        """Append an event to a session's audit trail."""
        row = await self._pool.fetchrow(self._q.insert_event, session_id, type, actor, payload_json.decode())
        return _event(row)

    async def list_events(self, *, session_id: str, after: int, type: str | None, limit: int) -> Page[SessionEvent]:
        """A session's events, oldest first."""
        rows = await self._pool.fetch(self._q.list_events, session_id, after, type, limit + 1)
        return make_page([_event(r) for r in rows], limit, lambda e: e.id)

    # -- escalations --------------------------------------------------------------

    async def open_escalation(
        self,
        *,
        escalation_id: str,
        session: Session,
        thread_id: str,
        reason: str,
        opened_by: str,
        event_payload: bytes | None,
    ) -> tuple[Escalation, bool]:
        """Open an escalation (and record ``hitl_escalation`` with ``event_payload`` unless it is
        None), or find the pending one.

        Returns:
            The escalation and whether it was opened now.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                self._q.insert_escalation,
                escalation_id,
                session.id,
                thread_id,
                session.user_id,
                session.org_id,
                reason,
                opened_by,
            )
            if row is None:
                pending = await conn.fetchrow(self._q.pending_escalation, session.id, thread_id)
                if pending is not None:
                    return _escalation(pending), False
                raise NotFound("the pending escalation was resolved meanwhile; open it again")
            if event_payload is not None:
                await conn.execute(
                    self._q.insert_event, session.id, "hitl_escalation", opened_by, event_payload.decode()
                )
        return _escalation(row), True

    async def get_escalation(self, *, escalation_id: str, user_id: str, operator_org: str | None) -> Escalation:
        """An escalation of the caller's sessions or (operators) of their org.

        Raises:
            NotFound: no such escalation visible to the caller.
        """
        row = await self._pool.fetchrow(self._q.get_escalation, escalation_id, user_id, operator_org)
        if row is None:
            raise NotFound(f"escalation {escalation_id!r} not found")
        return _escalation(row)

    async def claim_escalation(self, *, escalation_id: str, org_id: str, operator: str) -> Escalation | None:
        """Claim an open escalation of ``org_id`` atomically; None when it is not open (any more)."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(self._q.claim_escalation, escalation_id, org_id, operator)
            if row is None:
                return None
            escalation = _escalation(row)
            await conn.execute(
                self._q.insert_event,
                escalation.session_id,
                "escalation_claimed",
                operator,
                _json({"escalation_id": escalation.id, "thread_id": escalation.thread_id}),
            )
        return escalation

    async def resolve_escalation(
        self, *, escalation_id: str, org_id: str, operator: str, resolution: str
    ) -> Escalation | None:
        """Resolve an escalation the operator holds; None when they do not hold it."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(self._q.resolve_escalation, escalation_id, org_id, operator, resolution)
            if row is None:
                return None
            escalation = _escalation(row)
            await conn.execute(
                self._q.insert_event,
                escalation.session_id,
                "escalation_resolved",
                operator,
                _json({"escalation_id": escalation.id, "thread_id": escalation.thread_id, "resolution": resolution}),
            )
        return escalation

    async def list_escalations(
        self,
        *,
        user_id: str | None,
        org_id: str | None,
        status: EscalationStatus | None,
        session_id: str | None,
        after: str | None,
        limit: int,
    ) -> Page[Escalation]:
        """Oldest first: an org's escalations (``org_id`` given), or those of one user's sessions."""
        query = self._q.list_org_escalations if org_id is not None else self._q.list_user_escalations
        owner = org_id if org_id is not None else user_id
        rows = await self._pool.fetch(query, owner, status, session_id, after, limit + 1)
        return make_page([_escalation(r) for r in rows], limit, lambda e: e.id)

    # -- metrics ------------------------------------------------------------------

    async def metrics(self, *, org_id: str, since: datetime, until: datetime) -> SessionMetrics:
        """Figures of an org's sessions created in ``[since, until)``."""
        async with self._pool.acquire() as conn:
            counts = await conn.fetch(self._q.session_counts, org_id, since, until)
            durations = await conn.fetchrow(self._q.escalation_durations, org_id, since, until)
            cards = await conn.fetchrow(self._q.approval_figures, org_id, since, until)
            timeouts: int = await conn.fetchval(self._q.handoff_timeouts, org_id, since, until)
        by_status: dict[str, int] = {}
        by_channel: dict[str, int] = {}
        by_agent: dict[str, int] = {}
        for row in counts:
            for bucket, key in ((by_status, row["status"]), (by_channel, row["channel"]), (by_agent, row["agent_id"])):
                bucket[key] = bucket.get(key, 0) + row["n"]
        total = sum(by_status.values())

        def stats(prefix: str, row: Any = durations) -> DurationStats:
            n = row[f"{prefix}_n"]
            if not n:
                return DurationStats()
            return DurationStats(
                count=n, p50_seconds=float(row[f"{prefix}_p50"]), p90_seconds=float(row[f"{prefix}_p90"])
            )

        return SessionMetrics(
            total_sessions=total,
            by_status=by_status,
            by_channel=by_channel,
            by_agent=by_agent,
            cancel_rate=by_status.get("cancelled", 0) / total if total else 0.0,
            time_to_escalation=stats("escalation"),
            time_to_claim=stats("claim"),
            time_to_resolution=stats("resolution"),
            approvals=cards["approved"],
            rejections=cards["rejected"],
            approvals_expired=cards["expired"],
            time_to_decision=stats("decision", cards),
            time_handled_by_human=stats("handled"),
            # Resolving needs a claim, so every resolution with a handled time is a hand-back.
            hand_backs=durations["handled_n"],
            handoff_timeouts=timeouts,
        )


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))
