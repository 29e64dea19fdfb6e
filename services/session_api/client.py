"""The client of session_api, for the edge, agent_runner and the operator console.

This is session_api's public client module: other services and the console may
import it (and only it, with the generated stubs). Calls speak session_api's own
types (``Session``, ``Escalation``, ``SessionEvent``, ``Page`` ...; re-exported
here), the same the service returns, so code reads alike on both sides of the
wire; failures raise the typed Switchboard error of their status
(``Unauthenticated``, ``NotFound``, ...).

The servicer converts these types to protobuf (``servicer.py``); this module
converts them back, once per reply (``tests/session_api/test_client_types.py``
checks the round trip of every field).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import grpc

from services.session_api.domain import (
    ClientSecret,
    CreatedSession,
    DurationStats,
    Escalation,
    EscalationStatus,
    HostedLink,
    Session,
    SessionChange,
    SessionEvent,
    SessionMetrics,
    SessionStatus,
    TokenKind,
    VerifiedToken,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from switchboard.api.v1 import session_api_pb2 as pb
from switchboard.api.v1.session_api_pb2_grpc import SessionApiStub
from switchboard.errors import InvalidArgument
from switchboard.expiring_cache import ExpiringCache
from switchboard.grpc_client import FROM_ENV, LoopLocalChannels, error_from_rpc
from switchboard.pages import Page
from switchboard.principal import Principal
from switchboard.proto_convert import (
    enum_name,
    enum_value,
    from_timestamp,
    optional_timestamp,
    principal_from_proto,
    principal_to_proto,
    timestamp,
)
from switchboard.service_auth import CallCredentials

SERVICE = "session_api"

__all__ = [
    "ClientSecret",
    "CreatedSession",
    "DurationStats",
    "Escalation",
    "HostedLink",
    "Page",
    "Session",
    "SessionApiClient",
    "SessionChange",
    "SessionEvent",
    "SessionMetrics",
    "TokenAuthenticator",
    "VerifiedToken",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "users_verifier",
]


# -- from protobuf (the servicer's *_to_proto, reversed) ------------------------------


def _status(enum: Any, value: int, prefix: str) -> Any:
    """A status's name; "unknown" for one this client does not know (a newer server's)."""
    try:
        return enum_name(enum, value, prefix) or "unknown"
    except InvalidArgument:
        return "unknown"


def session_from_proto(m: pb.Session) -> Session:
    """A ``Session`` of its protobuf form."""
    hosted = None
    if m.HasField("hosted"):
        hosted = HostedLink(
            workflow_id=m.hosted.workflow_id,
            openai_user=m.hosted.openai_user,
            openai_session_id=m.hosted.openai_session_id,
            expires_at=from_timestamp(m.hosted.expires_at),
            cancelled=m.hosted.status == "cancelled",
        )
    return Session(
        id=m.id,
        user_id=m.user_id,
        org_id=m.org_id or None,
        channel=m.channel,
        agent_id=m.agent_id,
        status=cast(SessionStatus, _status(pb.SessionStatus, m.status, "SESSION_STATUS_")),
        created_at=from_timestamp(m.created_at),
        ended_at=optional_timestamp(m, "ended_at"),
        metadata_json=m.metadata_json,
        thread_ids=tuple(m.thread_ids),
        hosted=hosted,
    )


def event_from_proto(m: pb.SessionEvent) -> SessionEvent:
    """A ``SessionEvent`` of its protobuf form."""
    return SessionEvent(
        id=m.id,
        session_id=m.session_id,
        type=m.type,
        actor_user_id=m.actor_user_id,
        payload_json=m.payload_json,
        created_at=from_timestamp(m.created_at),
    )


def escalation_from_proto(m: pb.Escalation) -> Escalation:
    """An ``Escalation`` of its protobuf form."""
    return Escalation(
        id=m.id,
        session_id=m.session_id,
        thread_id=m.thread_id,
        user_id=m.user_id,
        org_id=m.org_id or None,
        reason=m.reason,
        status=cast(EscalationStatus, _status(pb.EscalationStatus, m.status, "ESCALATION_STATUS_")),
        opened_by=m.opened_by,
        opened_at=from_timestamp(m.opened_at),
        claimed_by=m.claimed_by or None,
        claimed_at=optional_timestamp(m, "claimed_at"),
        resolved_by=m.resolved_by or None,
        resolved_at=optional_timestamp(m, "resolved_at"),
        resolution=m.resolution,
    )


def _stats(m: pb.DurationStats) -> DurationStats:
    return DurationStats(count=m.count, p50_seconds=m.p50_seconds, p90_seconds=m.p90_seconds)


def metrics_from_proto(m: pb.SessionMetrics) -> SessionMetrics:
    """``SessionMetrics`` of their protobuf form."""
    return SessionMetrics(
        total_sessions=m.total_sessions,
        by_status={c.key: c.count for c in m.by_status},
        by_channel={c.key: c.count for c in m.by_channel},
        by_agent={c.key: c.count for c in m.by_agent},
        cancel_rate=m.cancel_rate,
        time_to_escalation=_stats(m.time_to_escalation),
        time_to_claim=_stats(m.time_to_claim),
        time_to_resolution=_stats(m.time_to_resolution),
        approvals=m.approvals,
        rejections=m.rejections,
        approvals_expired=m.approvals_expired,
        time_to_decision=_stats(m.time_to_decision),
        time_handled_by_human=_stats(m.time_handled_by_human),
        hand_backs=m.hand_backs,
        handoff_timeouts=m.handoff_timeouts,
    )


def change_from_proto(m: pb.SessionChange) -> SessionChange:
    """A ``SessionChange`` of its protobuf form."""
    which = m.WhichOneof("subject")
    return SessionChange(
        id=m.id,
        type=m.type,
        at=from_timestamp(m.at),
        session=session_from_proto(m.session) if which == "session" else None,
        escalation=escalation_from_proto(m.escalation) if which == "escalation" else None,
    )


def endpoint_from_proto(m: pb.WebhookEndpoint) -> WebhookEndpoint:
    """A ``WebhookEndpoint`` of its protobuf form (``secret`` is empty but right after adding)."""
    return WebhookEndpoint(
        id=m.id,
        org_id=m.org_id or None,
        url=m.url,
        secret=m.secret,
        event_types=tuple(m.event_types),
        description=m.description,
        created_by=m.created_by,
        created_at=from_timestamp(m.created_at),
    )


def delivery_from_proto(m: pb.WebhookDelivery) -> WebhookDelivery:
    """A ``WebhookDelivery`` of its protobuf form."""
    return WebhookDelivery(
        endpoint_id=m.endpoint_id,
        event_id=m.event_id,
        event_seq=m.event_seq,
        type=m.type,
        status=m.status,
        attempts=m.attempts,
        next_attempt_at=from_timestamp(m.next_attempt_at),
        last_error=m.last_error,
        delivered_at=optional_timestamp(m, "delivered_at"),
        event_created_at=from_timestamp(m.event_created_at),
        attempt_list=tuple(
            WebhookAttempt(
                attempted_at=from_timestamp(a.attempted_at),
                status_code=a.status_code or None,
                error=a.error,
                duration_ms=a.duration_ms,
            )
            for a in m.attempt_list
        ),
    )


def _json_page(body: bytes, has_more: bool, after: str) -> Page[dict[str, Any]]:
    return Page(items=json.loads(body) if body else [], has_more=has_more, after=after or None)


class SessionApiClient:
    """An async client of session_api.

    Safe to construct at import time: the channel opens on first use, one per
    event loop.

    Args:
        target: ``host:port`` of session_api.
        timeout: Seconds per unary call.
        credentials: What each call carries (default: service tokens when this process holds
            ``SWITCHBOARD_INTERNAL_SECRET``, else ``SWITCHBOARD_TOKEN``; see ``switchboard.service_auth``).
    """

    def __init__(self, target: str, *, timeout: float = 10.0, credentials: CallCredentials | None = FROM_ENV) -> None:
        self._channels = LoopLocalChannels(target, SessionApiStub, audience="session_api", credentials=credentials)
        self._timeout = timeout

    @property
    def stub(self) -> SessionApiStub:
        """The raw stub for the running loop."""
        return self._channels.stub()

    async def close(self) -> None:
        """Close this loop's channel."""
        await self._channels.close()

    async def _call(self, method: str, request: Any) -> Any:
        try:
            return await getattr(self.stub, method)(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as error:
            raise error_from_rpc(error, service=SERVICE) from None

    # -- authentication -----------------------------------------------------------

    async def authenticate(self, token: str) -> VerifiedToken:
        """Who a bearer token names, until when, and its kind; ``Unauthenticated`` when it is not acceptable."""
        reply: pb.AuthenticateResponse = await self._call("Authenticate", pb.AuthenticateRequest(token=token))
        kind = cast(TokenKind, _status(pb.TokenKind, reply.kind, "TOKEN_KIND_"))
        return VerifiedToken(
            principal=principal_from_proto(reply.principal),
            # No expiry: trust it for this call only.
            expires_at=optional_timestamp(reply, "expires_at") or datetime.now(UTC),
            kind=kind,
        )

    async def authenticate_principal(self, token: str) -> Principal:
        """The principal of a bearer token."""
        return (await self.authenticate(token)).principal

    # -- sessions -----------------------------------------------------------------

    async def create_session(
        self,
        principal: Principal,
        *,
        channel: str = "web",
        agent_id: str = "",
        metadata_json: bytes = b"",
        thread_id: str = "",
    ) -> CreatedSession:
        """Start a session; the reply carries its client secret."""
        request = pb.CreateSessionRequest(
            principal=principal_to_proto(principal),
            channel=channel,
            agent_id=agent_id,
            metadata_json=metadata_json,
            thread_id=thread_id,
        )
        reply: pb.CreateSessionResponse = await self._call("CreateSession", request)
        return CreatedSession(
            session=session_from_proto(reply.session),
            client_secret=ClientSecret(reply.client_secret.token, from_timestamp(reply.client_secret.expires_at)),
        )

    async def get_session(self, principal: Principal, session_id: str) -> Session:
        """A session of the principal (or, operators, of its org)."""
        request = pb.GetSessionRequest(principal=principal_to_proto(principal), session_id=session_id)
        return session_from_proto(await self._call("GetSession", request))

    async def list_sessions(
        self,
        principal: Principal,
        *,
        status: str | None = None,
        org_wide: bool = False,
        user_id: str = "",
        limit: int = 0,
        after: str | None = None,
    ) -> Page[Session]:
        """The principal's sessions, or (operators, ``org_wide``) its org's, newest first."""
        request = pb.ListSessionsRequest(
            principal=principal_to_proto(principal),
            status=enum_value(pb.SessionStatus, status, "SESSION_STATUS_") if status else pb.SESSION_STATUS_UNSPECIFIED,
            org_wide=org_wide,
            user_id=user_id,
            limit=limit,
            after=after or "",
        )
        reply: pb.ListSessionsResponse = await self._call("ListSessions", request)
        return Page(
            items=[session_from_proto(s) for s in reply.sessions], has_more=reply.has_more, after=reply.after or None
        )

    async def refresh_session(self, principal: Principal, session_id: str) -> ClientSecret:
        """A fresh client secret for an active session."""
        request = pb.RefreshSessionRequest(principal=principal_to_proto(principal), session_id=session_id)
        reply: pb.ClientSecret = await self._call("RefreshSession", request)
        return ClientSecret(reply.token, from_timestamp(reply.expires_at))

    async def list_hosted_threads(
        self, principal: Principal, session_id: str, *, limit: int = 0, after: str | None = None
    ) -> Page[dict[str, Any]]:
        """A hosted session's ChatKit threads at OpenAI (OpenAI's JSON objects), newest first."""
        request = pb.ListHostedThreadsRequest(
            principal=principal_to_proto(principal), session_id=session_id, limit=limit, after=after or ""
        )
        reply: pb.ListHostedThreadsResponse = await self._call("ListHostedThreads", request)
        return _json_page(reply.threads_json, reply.has_more, reply.next_after)

    async def list_hosted_items(
        self, principal: Principal, session_id: str, thread_id: str, *, limit: int = 0, after: str | None = None
    ) -> Page[dict[str, Any]]:
        """The items of one of those threads (OpenAI's JSON objects), oldest first."""
        request = pb.ListHostedItemsRequest(
            principal=principal_to_proto(principal), session_id=session_id, thread_id=thread_id, limit=limit,
            after=after or "",
        )  # fmt: skip
        reply: pb.ListHostedItemsResponse = await self._call("ListHostedItems", request)
        return _json_page(reply.items_json, reply.has_more, reply.next_after)

    async def attach_thread(self, principal: Principal, session_id: str, thread_id: str) -> Session:
        """Record that the session used a thread."""
        request = pb.AttachThreadRequest(
            principal=principal_to_proto(principal), session_id=session_id, thread_id=thread_id
        )
        return session_from_proto(await self._call("AttachThread", request))

    async def cancel_session(self, principal: Principal, session_id: str, *, reason: str = "") -> Session:
        """Cancel an active session (its client secret dies)."""
        request = pb.CancelSessionRequest(principal=principal_to_proto(principal), session_id=session_id, reason=reason)
        return session_from_proto(await self._call("CancelSession", request))

    async def end_session(self, principal: Principal, session_id: str) -> Session:
        """End an active session (its client secret dies)."""
        request = pb.EndSessionRequest(principal=principal_to_proto(principal), session_id=session_id)
        return session_from_proto(await self._call("EndSession", request))

    # -- events -------------------------------------------------------------------

    async def record_event(
        self, principal: Principal, session_id: str, *, type: str, payload_json: bytes = b""
    ) -> SessionEvent:
        """Append a UI event (``button_click``, ``hitl_escalation``, ``cancel`` or custom)."""
        request = pb.RecordEventRequest(
            principal=principal_to_proto(principal), session_id=session_id, type=type, payload_json=payload_json
        )
        return event_from_proto(await self._call("RecordEvent", request))

    async def list_events(
        self, principal: Principal, session_id: str, *, limit: int = 0, after: str | None = None, type: str = ""
    ) -> Page[SessionEvent]:
        """A session's events, oldest first; ``after`` is a page's ``after`` (an event id).

        Raises:
            InvalidArgument: ``after`` is not an event id.
        """
        try:
            after_id = int(after or 0)
        except ValueError:
            raise InvalidArgument(f"after must be an event id, got {str(after)[:40]!r}") from None
        request = pb.ListEventsRequest(
            principal=principal_to_proto(principal), session_id=session_id, limit=limit, after=after_id, type=type
        )
        reply: pb.ListEventsResponse = await self._call("ListEvents", request)
        return Page(
            items=[event_from_proto(e) for e in reply.events],
            has_more=reply.has_more,
            after=str(reply.after) if reply.has_more else None,
        )

    # -- escalations --------------------------------------------------------------

    async def open_escalation(
        self, principal: Principal, session_id: str, *, thread_id: str, reason: str
    ) -> Escalation:
        """Hand a session's thread to a human."""
        request = pb.OpenEscalationRequest(
            principal=principal_to_proto(principal), session_id=session_id, thread_id=thread_id, reason=reason
        )
        return escalation_from_proto(await self._call("OpenEscalation", request))

    async def get_escalation(self, principal: Principal, escalation_id: str) -> Escalation:
        """One escalation."""
        request = pb.GetEscalationRequest(principal=principal_to_proto(principal), escalation_id=escalation_id)
        return escalation_from_proto(await self._call("GetEscalation", request))

    async def list_escalations(
        self,
        principal: Principal,
        *,
        status: str | None = None,
        session_id: str = "",
        limit: int = 0,
        after: str | None = None,
    ) -> Page[Escalation]:
        """The operator's org queue (or the user's own escalations), oldest first."""
        request = pb.ListEscalationsRequest(
            principal=principal_to_proto(principal),
            status=enum_value(pb.EscalationStatus, status, "ESCALATION_STATUS_")
            if status
            else pb.ESCALATION_STATUS_UNSPECIFIED,
            session_id=session_id,
            limit=limit,
            after=after or "",
        )
        reply: pb.ListEscalationsResponse = await self._call("ListEscalations", request)
        return Page(
            items=[escalation_from_proto(e) for e in reply.escalations],
            has_more=reply.has_more,
            after=reply.after or None,
        )

    async def claim_escalation(self, principal: Principal, escalation_id: str) -> Escalation:
        """Take an open escalation; ``FailedPrecondition`` when another operator holds it."""
        request = pb.ClaimEscalationRequest(principal=principal_to_proto(principal), escalation_id=escalation_id)
        return escalation_from_proto(await self._call("ClaimEscalation", request))

    async def resolve_escalation(self, principal: Principal, escalation_id: str, *, resolution: str = "") -> Escalation:
        """Close an escalation the operator holds."""
        request = pb.ResolveEscalationRequest(
            principal=principal_to_proto(principal), escalation_id=escalation_id, resolution=resolution
        )
        return escalation_from_proto(await self._call("ResolveEscalation", request))

    # -- metrics and watch --------------------------------------------------------

    async def get_metrics(
        self, principal: Principal, *, since: datetime | None = None, until: datetime | None = None
    ) -> SessionMetrics:
        """Figures of the operator's org."""
        request = pb.GetMetricsRequest(principal=principal_to_proto(principal))
        if since is not None:
            request.since.CopyFrom(timestamp(since))
        if until is not None:
            request.until.CopyFrom(timestamp(until))
        return metrics_from_proto(await self._call("GetMetrics", request))

    async def watch(
        self, principal: Principal, *, org: bool = False, session_id: str = "", since: str = ""
    ) -> AsyncGenerator[SessionChange, None]:
        """Follow session and escalation changes; the first is ``watch.started``."""
        request = pb.WatchSessionsRequest(
            principal=principal_to_proto(principal), org=org, session_id=session_id, since=since
        )
        try:
            async for change in self.stub.Watch(request):
                yield change_from_proto(change)
        except grpc.aio.AioRpcError as error:
            raise error_from_rpc(error, service=SERVICE) from None

    # -- webhooks -----------------------------------------------------------------

    async def add_webhook_endpoint(
        self,
        principal: Principal,
        *,
        url: str,
        org_id: str = "",
        event_types: Sequence[str] = (),
        description: str = "",
        secret: str = "",
    ) -> WebhookEndpoint:
        """Add an org's endpoint; the reply carries its secret (shown this once)."""
        request = pb.AddWebhookEndpointRequest(
            principal=principal_to_proto(principal),
            org_id=org_id,
            url=url,
            event_types=list(event_types),
            description=description,
            secret=secret,
        )
        return endpoint_from_proto(await self._call("AddWebhookEndpoint", request))

    async def list_webhook_endpoints(self, principal: Principal, *, org_id: str = "") -> list[WebhookEndpoint]:
        """An org's endpoints (without their secrets)."""
        request = pb.ListWebhookEndpointsRequest(principal=principal_to_proto(principal), org_id=org_id)
        reply: pb.ListWebhookEndpointsResponse = await self._call("ListWebhookEndpoints", request)
        return [endpoint_from_proto(e) for e in reply.endpoints]

    async def remove_webhook_endpoint(self, principal: Principal, endpoint_id: str, *, org_id: str = "") -> None:
        """Remove an endpoint and its pending deliveries."""
        request = pb.RemoveWebhookEndpointRequest(
            principal=principal_to_proto(principal), org_id=org_id, endpoint_id=endpoint_id
        )
        await self._call("RemoveWebhookEndpoint", request)

    async def test_webhook_endpoint(self, principal: Principal, endpoint_id: str, *, org_id: str = "") -> str:
        """Queue a ``webhook.test`` event for the endpoint; returns its ``webhook-id``."""
        request = pb.TestWebhookEndpointRequest(
            principal=principal_to_proto(principal), org_id=org_id, endpoint_id=endpoint_id
        )
        reply: pb.TestWebhookEndpointResponse = await self._call("TestWebhookEndpoint", request)
        return reply.event_id

    async def list_webhook_deliveries(
        self,
        principal: Principal,
        endpoint_id: str,
        *,
        org_id: str = "",
        status: str = "",
        before: int = 0,
        limit: int = 0,
    ) -> tuple[list[WebhookDelivery], int]:
        """An endpoint's deliveries, newest first, with their attempts, and the ``before`` of the
        next page (0: no more): the shape of ``WebhookAdmin.deliveries``."""
        request = pb.ListWebhookDeliveriesRequest(
            principal=principal_to_proto(principal),
            org_id=org_id,
            endpoint_id=endpoint_id,
            status=status,
            before=before,
            limit=limit,
        )
        reply: pb.ListWebhookDeliveriesResponse = await self._call("ListWebhookDeliveries", request)
        return [delivery_from_proto(d) for d in reply.deliveries], reply.next_before

    async def redeliver_webhooks(
        self, principal: Principal, endpoint_id: str, *, org_id: str = "", event_id: str = ""
    ) -> int:
        """Send one event again, or every dead-lettered one; returns how many."""
        request = pb.RedeliverWebhooksRequest(
            principal=principal_to_proto(principal), org_id=org_id, endpoint_id=endpoint_id, event_id=event_id
        )
        reply: pb.RedeliverWebhooksResponse = await self._call("RedeliverWebhooks", request)
        return reply.count


class TokenAuthenticator:
    """Principals of end users' bearer tokens, asked of session_api and remembered: the one
    verifier of the edge and of every service that accepts a user's token on its gRPC API.

    Every token goes to session_api's ``Authenticate`` once; the principal is then
    reused until the token expires (identity-provider JWTs), or for a few seconds
    (session client secrets, which die when their session is cancelled).

    Args:
        client: session_api.
        session_seconds: How long a session client secret's principal is reused.
        max_entries: Tokens remembered (the oldest go first).
    """

    def __init__(self, client: SessionApiClient, *, session_seconds: float = 5.0, max_entries: int = 10_000) -> None:
        self._client = client
        self._session_seconds = session_seconds
        self._cache: ExpiringCache[str, Principal] = ExpiringCache(max_entries)

    def cached(self, token: str) -> Principal | None:
        """The principal of a token verified already and not expired (no call made)."""
        return self._cache.get(token)

    async def verify(self, token: str) -> Principal:
        """The principal of a token.

        Raises:
            Unauthenticated: session_api refuses it (expired, forged, revoked).
        """
        now = time.time()
        cached = self._cache.get(token, now)
        if cached is not None:
            return cached
        verified = await self._client.authenticate(token)
        until = verified.expires_at.timestamp()
        if verified.kind == "session":
            until = min(until, now + self._session_seconds)
        if until > now:
            self._cache.put(token, verified.principal, until)
        return verified.principal


def users_verifier(target: str | None) -> Callable[[str], Awaitable[Principal]] | None:
    """How a service other than session_api verifies end users' tokens on its gRPC API: by asking
    session_api at ``target`` (None: no session_api, so the service accepts service tokens only)."""
    if not target:
        return None
    return TokenAuthenticator(SessionApiClient(target)).verify
