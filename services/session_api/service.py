"""session_api's rules: who may see and change which session, event and escalation.

This module knows nothing of gRPC; ``servicer.py`` converts to and from protobuf.
Users see only their own sessions (another user's is ``NotFound``); operators
(principals with the ``operator`` role and an org) see and act on their org's.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from services.session_api import telemetry
from services.session_api.auth import TokenVerifier
from services.session_api.domain import (
    MAX_TEXT_LENGTH,
    ClientSecret,
    CreatedSession,
    Escalation,
    EscalationStatus,
    HostedLink,
    Session,
    SessionChange,
    SessionEvent,
    SessionMetrics,
    SessionStatus,
    VerifiedToken,
    check_agent_id,
    check_channel,
    check_event_type,
    check_text,
    parse_json_object,
)
from services.session_api.feed import SessionFeed, org_stream, user_stream
from services.session_api.hosted import (
    HostedChatKit,
    HostedPage,
    HostedWorkflows,
    OpenAISession,
    check_page,
    hosted_user,
)
from services.session_api.liveness import SessionLiveness
from services.session_api.repository import SessionRepository
from switchboard.config import env_int
from switchboard.errors import (
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
    UpstreamRefused,
)
from switchboard.pages import Page, check_limit
from switchboard.principal import Principal
from switchboard.streams import WATCH_STARTED, check_stream_id

log = logging.getLogger(__name__)

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SessionLimits:
    """Size limits on what clients may store."""

    max_metadata_bytes: int = 16 * 1024
    max_event_payload_bytes: int = 16 * 1024
    max_threads_per_session: int = 1000

    @classmethod
    def from_env(cls) -> SessionLimits:
        """Read ``SWITCHBOARD_SESSION_METADATA_MAX_BYTES`` and ``SWITCHBOARD_EVENT_PAYLOAD_MAX_BYTES``."""
        return cls(
            max_metadata_bytes=env_int("SWITCHBOARD_SESSION_METADATA_MAX_BYTES", cls.max_metadata_bytes, minimum=2),
            max_event_payload_bytes=env_int(
                "SWITCHBOARD_EVENT_PAYLOAD_MAX_BYTES", cls.max_event_payload_bytes, minimum=2
            ),
        )


def _operator_org(principal: Principal) -> str | None:
    """The org whose sessions the principal may see besides its own."""
    return principal.org_id if principal.is_operator else None


def _require_operator(principal: Principal, action: str) -> str:
    if not principal.is_operator or not principal.org_id:
        raise PermissionDenied(f"{action} is for operators of an org (the 'operator' role and an org id)")
    return principal.org_id


def _payload(**values: object) -> bytes:
    return json.dumps(values, separators=(",", ":")).encode()


class SessionService:
    """Authentication, sessions, events, escalations, figures and the live watch.

    Args:
        repository: Postgres, the truth.
        verifier: Verifies bearer tokens and mints session tokens.
        liveness: The per-replica cache of session statuses.
        feed: The Redis change feed, or None without Redis (no watch).
        limits: Size limits.
        workflows: Which agents are OpenAI-hosted ChatKit workflows (None: none are).
        hosted: OpenAI's ChatKit API (None: no ``OPENAI_API_KEY``; hosted sessions are refused).
    """

    def __init__(
        self,
        repository: SessionRepository,
        verifier: TokenVerifier,
        liveness: SessionLiveness,
        feed: SessionFeed | None,
        limits: SessionLimits | None = None,
        workflows: HostedWorkflows | None = None,
        hosted: HostedChatKit | None = None,
    ) -> None:
        self.repository = repository
        self.verifier = verifier
        self.liveness = liveness
        self.feed = feed
        self.limits = limits or SessionLimits()
        self.workflows = workflows or HostedWorkflows(agents={})
        self.hosted = hosted

    # -- authentication ---------------------------------------------------------------

    async def authenticate(self, token: str) -> VerifiedToken:
        """The principal of a bearer token (identity provider or session)."""
        return await self.verifier.verify(token)

    # -- sessions ---------------------------------------------------------------------

    async def create_session(
        self, principal: Principal, *, channel: str, agent_id: str, metadata_json: bytes, thread_id: str
    ) -> CreatedSession:
        """Start a session for the principal and mint its client secret."""
        channel = check_channel(channel)
        agent_id = check_agent_id(agent_id)
        metadata = parse_json_object(metadata_json, "metadata_json", max_bytes=self.limits.max_metadata_bytes)
        thread_id = check_text(thread_id, "thread_id", required=False)
        workflow = self.workflows.for_agent(agent_id)
        event = _payload(channel=channel, agent_id=agent_id)
        hosted: tuple[HostedChatKit, OpenAISession, HostedLink] | None = None
        if workflow is not None:
            # Hosted: OpenAI first, then the record; nothing is recorded that OpenAI did not
            # create, and an OpenAI session that could not be recorded is cancelled again.
            api = self._hosted_api()
            user = hosted_user(principal)
            remote = await api.create_session(user=user, workflow=workflow)
            link = HostedLink(
                workflow_id=workflow.id, openai_user=user, openai_session_id=remote.id, expires_at=remote.expires_at
            )
            hosted = (api, remote, link)
            event = _payload(
                channel=channel, agent_id=agent_id, mode="hosted", workflow_id=workflow.id, openai_session_id=remote.id
            )
        try:
            session = await self.repository.insert_session(
                session_id=f"sess_{uuid.uuid4().hex}",
                user_id=principal.user_id,
                org_id=principal.org_id,
                channel=channel,
                agent_id=agent_id,
                metadata_json=metadata,
                thread_ids=[thread_id] if thread_id else [],
                event_payload=event,
                hosted=hosted[2] if hosted else None,
            )
        except BaseException:
            if hosted is not None:
                await self._cancel_quietly(hosted[0], hosted[1].id)
            raise
        self.liveness.mark_active(session.id)
        if hosted is None:
            token, expires_at = self.verifier.mint_session_token(principal, session.id)
        else:
            token, expires_at = hosted[1].client_secret, hosted[1].expires_at
        telemetry.SESSIONS_STARTED.labels(channel, agent_id).inc()
        await self._publish("session.created", session)
        return CreatedSession(session=session, client_secret=ClientSecret(token, expires_at))

    def _hosted_api(self) -> HostedChatKit:
        if self.hosted is None:
            raise UpstreamRefused(
                "this agent is an OpenAI-hosted ChatKit workflow, but session_api has no OPENAI_API_KEY: set it"
            )
        return self.hosted

    @staticmethod
    async def _cancel_quietly(api: HostedChatKit, openai_session_id: str) -> None:
        try:
            await api.cancel_session(openai_session_id)
        except Exception:  # the original failure is what the caller must see
            log.warning("could not cancel unrecorded OpenAI session %s; it expires by itself", openai_session_id)

    async def get_session(self, principal: Principal, session_id: str) -> Session:
        """A session of the principal or (operators) of its org."""
        check_text(session_id, "session_id")
        return await self.repository.get_session(
            session_id=session_id, user_id=principal.user_id, operator_org=_operator_org(principal)
        )

    async def list_sessions(
        self,
        principal: Principal,
        *,
        status: SessionStatus | None,
        org_wide: bool,
        user_id: str,
        limit: int,
        after: str,
    ) -> Page[Session]:
        """The principal's sessions, or (operators, ``org_wide``) its org's; newest first."""
        limit = check_limit(limit, default=50, maximum=200)
        after = check_text(after, "after", required=False)
        user_id = check_text(user_id, "user_id", required=False)
        if org_wide:
            org = _require_operator(principal, "listing an org's sessions")
            return await self.repository.list_sessions(
                user_id=user_id or None, org_id=org, status=status, after=after or None, limit=limit
            )
        if user_id and user_id != principal.user_id:
            raise InvalidArgument("user_id filters org-wide listings only: set org_wide (operators)")
        return await self.repository.list_sessions(
            user_id=principal.user_id, org_id=None, status=status, after=after or None, limit=limit
        )

    async def refresh_session(self, principal: Principal, session_id: str) -> ClientSecret:
        """A fresh client secret for the principal's own active session."""
        session = await self.get_session(principal, session_id)
        if session.user_id != principal.user_id:
            # Client secrets belong to the session's user; an operator cannot act as them.
            raise PermissionDenied("only the session's own user can refresh its client secret")
        if not session.is_active:
            raise FailedPrecondition(f"session {session.id} is {session.status}; start a new session")
        if session.hosted is None:
            return ClientSecret(*self.verifier.mint_session_token(principal, session.id))
        # OpenAI has no refresh: a new OpenAI session of the same workflow, linked to this one.
        # The previous one is left to expire (cancelling it would cut a request in flight).
        workflow = self.workflows.for_agent(session.agent_id)
        if workflow is None or workflow.id != session.hosted.workflow_id:
            raise FailedPrecondition(
                f"session {session.id}'s workflow is no longer configured for agent {session.agent_id!r}; "
                "start a new session"
            )
        api = self._hosted_api()
        remote = await api.create_session(user=session.hosted.openai_user, workflow=workflow)
        try:
            linked = await self.repository.link_hosted_session(
                session_id=session.id, openai_session_id=remote.id, expires_at=remote.expires_at
            )
        except BaseException:
            await self._cancel_quietly(api, remote.id)
            raise
        if not linked:
            await self._cancel_quietly(api, remote.id)
            raise FailedPrecondition(f"session {session.id} ended while refreshing; start a new session")
        return ClientSecret(remote.client_secret, remote.expires_at)

    async def attach_thread(self, principal: Principal, session_id: str, thread_id: str) -> Session:
        """Record that an active session used a thread."""
        thread_id = check_text(thread_id, "thread_id")
        session = await self.get_session(principal, session_id)
        if not session.is_active:
            raise FailedPrecondition(f"session {session.id} is {session.status}; threads cannot be added")
        if thread_id in session.thread_ids:
            return session
        if len(session.thread_ids) >= self.limits.max_threads_per_session:
            raise ResourceExhausted(f"a session may use at most {self.limits.max_threads_per_session} threads")
        await self.repository.attach_thread(session_id=session.id, thread_id=thread_id)
        updated = await self.get_session(principal, session_id)
        await self._publish("session.updated", updated)
        return updated

    async def cancel_session(self, principal: Principal, session_id: str, reason: str) -> Session:
        """Cancel an active session; its client secrets die at once on every replica."""
        reason = check_text(reason, "reason", required=False, max_length=MAX_TEXT_LENGTH)
        return await self._finish(
            principal, session_id, "cancelled", "cancel", _payload(reason=reason, by=principal.user_id)
        )

    async def end_session(self, principal: Principal, session_id: str) -> Session:
        """End an active session; its client secrets die at once on every replica."""
        return await self._finish(principal, session_id, "ended", "session_ended", _payload(by=principal.user_id))

    async def _finish(
        self, principal: Principal, session_id: str, status: SessionStatus, event_type: str, payload: bytes
    ) -> Session:
        session = await self.get_session(principal, session_id)
        finished = None
        if session.is_active and session.hosted is not None:
            # OpenAI first: the record never says cancelled while an OpenAI client secret of
            # the session still works. OpenAI unreachable: the session stays active (retry).
            api = self._hosted_api()
            for openai_session_id in await self.repository.live_hosted_sessions(session.id):
                await api.cancel_session(openai_session_id)
        if session.is_active:
            finished = await self.repository.finish_session(
                session_id=session.id, status=status, actor=principal.user_id, event_type=event_type,
                event_payload=payload,
            )  # fmt: skip
        if finished is None:
            current = await self.get_session(principal, session_id)
            raise FailedPrecondition(f"session {session.id} is already {current.status}")
        self.liveness.mark_finished(finished.id)
        telemetry.SESSIONS_FINISHED.labels(status, finished.channel, finished.agent_id).inc()
        if self.feed is not None:
            await self.feed.revoke(finished.id)
        await self._publish(f"session.{status}", finished)
        return finished

    # -- events -----------------------------------------------------------------------

    async def record_event(
        self, principal: Principal, session_id: str, *, type: str, payload_json: bytes
    ) -> SessionEvent:
        """Append a UI event to a session's audit trail."""
        type = check_event_type(type)
        payload = parse_json_object(payload_json, "payload_json", max_bytes=self.limits.max_event_payload_bytes)
        escalation: tuple[str, str] | None = None
        if type == "hitl_escalation":
            # A human-in-the-loop request from the UI (a hosted workflow's, say) opens an
            # escalation in the same queue as the agent's escalate_to_human; the event recorded
            # here is its audit entry (decision: the UI's own payload, not a second event).
            fields = json.loads(payload)
            reason = fields.get("reason") if isinstance(fields.get("reason"), str) else ""
            thread_id = fields.get("thread_id") if isinstance(fields.get("thread_id"), str) else ""
            escalation = (
                check_text(thread_id, "payload.thread_id", required=False),
                check_text(reason or "the user asked for a person", "payload.reason", max_length=MAX_TEXT_LENGTH),
            )
        session = await self.get_session(principal, session_id)
        event = await self.repository.insert_event(
            session_id=session.id, type=type, actor=principal.user_id, payload_json=payload
        )
        if escalation is not None and session.is_active:
            await self.open_escalation(
                principal, session.id, thread_id=escalation[0], reason=escalation[1], audit=False
            )
        return event

    # -- hosted conversations -----------------------------------------------------------

    async def list_hosted_threads(self, principal: Principal, session_id: str, *, limit: int, after: str) -> HostedPage:
        """A hosted session's user's ChatKit threads at OpenAI, newest first (read-only)."""
        limit, after = check_page(limit, default=20, after=after)
        link = await self._hosted_link(principal, session_id)
        return await self._hosted_api().list_threads(user=link.openai_user, limit=limit, after=after)

    async def list_hosted_items(
        self, principal: Principal, session_id: str, *, thread_id: str, limit: int, after: str
    ) -> HostedPage:
        """The items of one of those threads, oldest first (read-only)."""
        thread_id = check_text(thread_id, "thread_id")
        limit, after = check_page(limit, default=100, after=after)
        link = await self._hosted_link(principal, session_id)
        return await self._hosted_api().list_items(user=link.openai_user, thread_id=thread_id, limit=limit, after=after)

    async def _hosted_link(self, principal: Principal, session_id: str) -> HostedLink:
        session = await self.get_session(principal, session_id)
        if session.hosted is None:
            raise FailedPrecondition(
                f"session {session.id} is self-hosted: read its threads from thread_store (GET /api/threads)"
            )
        return session.hosted

    async def list_events(
        self, principal: Principal, session_id: str, *, limit: int, after: int, type: str
    ) -> Page[SessionEvent]:
        """A session's events, oldest first."""
        limit = check_limit(limit, default=100, maximum=1000)
        if after < 0:
            raise InvalidArgument("after must be an event id (0 or more)")
        type = check_text(type, "type", required=False, max_length=64)
        session = await self.get_session(principal, session_id)
        return await self.repository.list_events(session_id=session.id, after=after, type=type or None, limit=limit)

    # -- escalations ------------------------------------------------------------------

    async def open_escalation(
        self, principal: Principal, session_id: str, *, thread_id: str, reason: str, audit: bool = True
    ) -> Escalation:
        """Hand a session's thread to a human (or return the escalation already pending for it).

        ``audit``: record the ``hitl_escalation`` event (False: the caller recorded it).
        """
        reason = check_text(reason, "reason", max_length=MAX_TEXT_LENGTH)
        thread_id = check_text(thread_id, "thread_id", required=False)
        session = await self.get_session(principal, session_id)
        if not session.is_active:
            raise FailedPrecondition(f"session {session.id} is {session.status}; it cannot be escalated")
        escalation_id = f"esc_{uuid.uuid4().hex}"
        escalation, opened = await self.repository.open_escalation(
            escalation_id=escalation_id,
            session=session,
            thread_id=thread_id,
            reason=reason,
            opened_by=principal.user_id,
            event_payload=_payload(escalation_id=escalation_id, thread_id=thread_id, reason=reason) if audit else None,
        )
        if not opened:
            return escalation
        if thread_id and thread_id not in session.thread_ids:
            await self.repository.attach_thread(session_id=session.id, thread_id=thread_id)
        telemetry.ESCALATION_STEPS.labels("opened").inc()
        telemetry.ESCALATION_SECONDS.labels("to_escalation").observe(
            max(0.0, (escalation.opened_at - session.created_at).total_seconds())
        )
        await self._publish("escalation.opened", escalation)
        return escalation

    async def get_escalation(self, principal: Principal, escalation_id: str) -> Escalation:
        """An escalation of the principal's sessions or (operators) of its org."""
        check_text(escalation_id, "escalation_id")
        return await self.repository.get_escalation(
            escalation_id=escalation_id, user_id=principal.user_id, operator_org=_operator_org(principal)
        )

    async def list_escalations(
        self, principal: Principal, *, status: EscalationStatus | None, session_id: str, limit: int, after: str
    ) -> Page[Escalation]:
        """Operators: their org's queue; others: escalations of their own sessions. Oldest first."""
        limit = check_limit(limit, default=50, maximum=200)
        after = check_text(after, "after", required=False)
        session_id = check_text(session_id, "session_id", required=False)
        org = _operator_org(principal)
        return await self.repository.list_escalations(
            user_id=None if org else principal.user_id,
            org_id=org,
            status=status,
            session_id=session_id or None,
            after=after or None,
            limit=limit,
        )

    async def claim_escalation(self, principal: Principal, escalation_id: str) -> Escalation:
        """Take an open escalation; of operators racing, exactly one wins."""
        org = _require_operator(principal, "claiming an escalation")
        current = await self.get_escalation(principal, escalation_id)
        if current.status == "claimed" and current.claimed_by == principal.user_id:
            return current
        claimed = await self.repository.claim_escalation(
            escalation_id=current.id, org_id=org, operator=principal.user_id
        )
        if claimed is None:
            current = await self.get_escalation(principal, escalation_id)
            if current.status == "claimed" and current.claimed_by == principal.user_id:
                return current
            raise FailedPrecondition(_not_claimable(current))
        telemetry.ESCALATION_STEPS.labels("claimed").inc()
        if claimed.claimed_at is not None:
            telemetry.ESCALATION_SECONDS.labels("to_claim").observe(
                max(0.0, (claimed.claimed_at - claimed.opened_at).total_seconds())
            )
        await self._publish("escalation.claimed", claimed)
        return claimed

    async def resolve_escalation(self, principal: Principal, escalation_id: str, resolution: str) -> Escalation:
        """Close an escalation the operator holds; the thread goes back to the agent."""
        org = _require_operator(principal, "resolving an escalation")
        resolution = check_text(resolution, "resolution", required=False, max_length=MAX_TEXT_LENGTH)
        current = await self.get_escalation(principal, escalation_id)
        resolved = await self.repository.resolve_escalation(
            escalation_id=current.id, org_id=org, operator=principal.user_id, resolution=resolution
        )
        if resolved is None:
            current = await self.get_escalation(principal, escalation_id)
            if current.status == "open":
                raise FailedPrecondition(f"escalation {current.id} is not claimed yet; claim it before resolving")
            raise FailedPrecondition(_not_claimable(current))
        telemetry.ESCALATION_STEPS.labels("resolved").inc()
        if resolved.resolved_at is not None:
            telemetry.ESCALATION_SECONDS.labels("to_resolution").observe(
                max(0.0, (resolved.resolved_at - resolved.opened_at).total_seconds())
            )
            if resolved.claimed_at is not None:
                telemetry.ESCALATION_SECONDS.labels("handled_by_human").observe(
                    max(0.0, (resolved.resolved_at - resolved.claimed_at).total_seconds())
                )
        await self._publish("escalation.resolved", resolved)
        return resolved

    # -- metrics ----------------------------------------------------------------------

    async def metrics(self, principal: Principal, *, since: datetime | None, until: datetime | None) -> SessionMetrics:
        """Figures of the operator's org, over sessions created in ``[since, until)``."""
        org = _require_operator(principal, "reading metrics")
        start, end = since or EARLIEST, until or LATEST
        if start >= end:
            raise InvalidArgument("since must be before until")
        return await self.repository.metrics(org_id=org, since=start, until=end)

    # -- watch ------------------------------------------------------------------------

    async def watch(
        self, principal: Principal, *, org: bool, session_id: str, since: str
    ) -> AsyncIterator[SessionChange]:
        """Follow changes: the principal's own sessions, one session, or (operators) the org's.

        The first change is ``watch.started``: the watch is live from then on,
        and its id is where to resume.
        """
        if self.feed is None:
            raise Unavailable("the live watch needs Redis (REDIS_URL), which this server runs without")
        session_id = check_text(session_id, "session_id", required=False)
        if since:
            check_stream_id(since)
        own = user_stream(principal.user_id)
        stream = org_stream(_require_operator(principal, "watching an org")) if org else own
        if session_id:
            session = await self.get_session(principal, session_id)
            if session.user_id != principal.user_id and session.org_id:
                stream = org_stream(session.org_id)
        async for change in self.feed.watch(stream, since=since or None):
            if session_id and change.type != WATCH_STARTED and change.session_id != session_id:
                continue
            yield change

    async def _publish(self, type: str, subject: Session | Escalation) -> None:
        if self.feed is not None:
            await self.feed.publish(type, subject)


def _not_claimable(current: Escalation) -> str:
    if current.status == "resolved":
        return f"escalation {current.id} is already resolved (by {current.resolved_by})"
    return f"escalation {current.id} is already claimed by operator {current.claimed_by}"
