"""The client of session_api, for the edge, agent_runner and the operator console.

This is session_api's public client module: other services and the console may
import it (and only it, with the generated stubs). Calls return the protobuf
messages of ``switchboard.api.v1.session_api_pb2``; failures raise the typed
Switchboard error of their status (``Unauthenticated``, ``NotFound``, ...).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import grpc

from switchboard.api.v1 import session_api_pb2 as pb
from switchboard.api.v1.session_api_pb2_grpc import SessionApiStub
from switchboard.expiring_cache import ExpiringCache
from switchboard.grpc_client import FROM_ENV, LoopLocalChannels, error_from_rpc
from switchboard.principal import Principal
from switchboard.proto_convert import enum_value, principal_from_proto, principal_to_proto, timestamp
from switchboard.service_auth import CallCredentials

SERVICE = "session_api"


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

    async def authenticate(self, token: str) -> pb.AuthenticateResponse:
        """The principal of a bearer token; ``Unauthenticated`` when it is not acceptable."""
        reply: pb.AuthenticateResponse = await self._call("Authenticate", pb.AuthenticateRequest(token=token))
        return reply

    async def authenticate_principal(self, token: str) -> Principal:
        """The principal of a bearer token, as Switchboard's own type."""
        reply = await self.authenticate(token)
        return principal_from_proto(reply.principal)

    # -- sessions -----------------------------------------------------------------

    async def create_session(
        self,
        principal: Principal,
        *,
        channel: str = "web",
        agent_id: str = "",
        metadata_json: bytes = b"",
        thread_id: str = "",
    ) -> pb.CreateSessionResponse:
        """Start a session; the reply carries its client secret."""
        request = pb.CreateSessionRequest(
            principal=principal_to_proto(principal),
            channel=channel,
            agent_id=agent_id,
            metadata_json=metadata_json,
            thread_id=thread_id,
        )
        reply: pb.CreateSessionResponse = await self._call("CreateSession", request)
        return reply

    async def get_session(self, principal: Principal, session_id: str) -> pb.Session:
        """A session of the principal (or, operators, of its org)."""
        request = pb.GetSessionRequest(principal=principal_to_proto(principal), session_id=session_id)
        reply: pb.Session = await self._call("GetSession", request)
        return reply

    async def list_sessions(
        self,
        principal: Principal,
        *,
        status: str | None = None,
        org_wide: bool = False,
        user_id: str = "",
        limit: int = 0,
        after: str = "",
    ) -> pb.ListSessionsResponse:
        """The principal's sessions, or (operators, ``org_wide``) its org's, newest first."""
        request = pb.ListSessionsRequest(
            principal=principal_to_proto(principal),
            status=enum_value(pb.SessionStatus, status, "SESSION_STATUS_") if status else pb.SESSION_STATUS_UNSPECIFIED,
            org_wide=org_wide,
            user_id=user_id,
            limit=limit,
            after=after,
        )
        reply: pb.ListSessionsResponse = await self._call("ListSessions", request)
        return reply

    async def refresh_session(self, principal: Principal, session_id: str) -> pb.ClientSecret:
        """A fresh client secret for an active session."""
        request = pb.RefreshSessionRequest(principal=principal_to_proto(principal), session_id=session_id)
        reply: pb.ClientSecret = await self._call("RefreshSession", request)
        return reply

    async def list_hosted_threads(
        self, principal: Principal, session_id: str, *, limit: int = 0, after: str = ""
    ) -> pb.ListHostedThreadsResponse:
        """A hosted session's ChatKit threads at OpenAI (``threads_json``: a JSON array), newest first."""
        request = pb.ListHostedThreadsRequest(
            principal=principal_to_proto(principal), session_id=session_id, limit=limit, after=after
        )
        reply: pb.ListHostedThreadsResponse = await self._call("ListHostedThreads", request)
        return reply

    async def list_hosted_items(
        self, principal: Principal, session_id: str, thread_id: str, *, limit: int = 0, after: str = ""
    ) -> pb.ListHostedItemsResponse:
        """The items of one of those threads (``items_json``: a JSON array), oldest first."""
        request = pb.ListHostedItemsRequest(
            principal=principal_to_proto(principal), session_id=session_id, thread_id=thread_id, limit=limit,
            after=after,
        )  # fmt: skip
        reply: pb.ListHostedItemsResponse = await self._call("ListHostedItems", request)
        return reply

    async def attach_thread(self, principal: Principal, session_id: str, thread_id: str) -> pb.Session:
        """Record that the session used a thread."""
        request = pb.AttachThreadRequest(
            principal=principal_to_proto(principal), session_id=session_id, thread_id=thread_id
        )
        reply: pb.Session = await self._call("AttachThread", request)
        return reply

    async def cancel_session(self, principal: Principal, session_id: str, *, reason: str = "") -> pb.Session:
        """Cancel an active session (its client secret dies)."""
        request = pb.CancelSessionRequest(principal=principal_to_proto(principal), session_id=session_id, reason=reason)
        reply: pb.Session = await self._call("CancelSession", request)
        return reply

    async def end_session(self, principal: Principal, session_id: str) -> pb.Session:
        """End an active session (its client secret dies)."""
        request = pb.EndSessionRequest(principal=principal_to_proto(principal), session_id=session_id)
        reply: pb.Session = await self._call("EndSession", request)
        return reply

    # -- events -------------------------------------------------------------------

    async def record_event(
        self, principal: Principal, session_id: str, *, type: str, payload_json: bytes = b""
    ) -> pb.SessionEvent:
        """Append a UI event (``button_click``, ``hitl_escalation``, ``cancel`` or custom)."""
        request = pb.RecordEventRequest(
            principal=principal_to_proto(principal), session_id=session_id, type=type, payload_json=payload_json
        )
        reply: pb.SessionEvent = await self._call("RecordEvent", request)
        return reply

    async def list_events(
        self, principal: Principal, session_id: str, *, limit: int = 0, after: int = 0, type: str = ""
    ) -> pb.ListEventsResponse:
        """A session's events, oldest first."""
        request = pb.ListEventsRequest(
            principal=principal_to_proto(principal), session_id=session_id, limit=limit, after=after, type=type
        )
        reply: pb.ListEventsResponse = await self._call("ListEvents", request)
        return reply

    # -- escalations --------------------------------------------------------------

    async def open_escalation(
        self, principal: Principal, session_id: str, *, thread_id: str, reason: str
    ) -> pb.Escalation:
        """Hand a session's thread to a human."""
        request = pb.OpenEscalationRequest(
            principal=principal_to_proto(principal), session_id=session_id, thread_id=thread_id, reason=reason
        )
        reply: pb.Escalation = await self._call("OpenEscalation", request)
        return reply

    async def get_escalation(self, principal: Principal, escalation_id: str) -> pb.Escalation:
        """One escalation."""
        request = pb.GetEscalationRequest(principal=principal_to_proto(principal), escalation_id=escalation_id)
        reply: pb.Escalation = await self._call("GetEscalation", request)
        return reply

    async def list_escalations(
        self,
        principal: Principal,
        *,
        status: str | None = None,
        session_id: str = "",
        limit: int = 0,
        after: str = "",
    ) -> pb.ListEscalationsResponse:
        """The operator's org queue (or the user's own escalations), oldest first."""
        request = pb.ListEscalationsRequest(
            principal=principal_to_proto(principal),
            status=enum_value(pb.EscalationStatus, status, "ESCALATION_STATUS_")
            if status
            else pb.ESCALATION_STATUS_UNSPECIFIED,
            session_id=session_id,
            limit=limit,
            after=after,
        )
        reply: pb.ListEscalationsResponse = await self._call("ListEscalations", request)
        return reply

    async def claim_escalation(self, principal: Principal, escalation_id: str) -> pb.Escalation:
        """Take an open escalation; ``FailedPrecondition`` when another operator holds it."""
        request = pb.ClaimEscalationRequest(principal=principal_to_proto(principal), escalation_id=escalation_id)
        reply: pb.Escalation = await self._call("ClaimEscalation", request)
        return reply

    async def resolve_escalation(
        self, principal: Principal, escalation_id: str, *, resolution: str = ""
    ) -> pb.Escalation:
        """Close an escalation the operator holds."""
        request = pb.ResolveEscalationRequest(
            principal=principal_to_proto(principal), escalation_id=escalation_id, resolution=resolution
        )
        reply: pb.Escalation = await self._call("ResolveEscalation", request)
        return reply

    # -- metrics and watch --------------------------------------------------------

    async def get_metrics(
        self, principal: Principal, *, since: datetime | None = None, until: datetime | None = None
    ) -> pb.SessionMetrics:
        """Figures of the operator's org."""
        request = pb.GetMetricsRequest(principal=principal_to_proto(principal))
        if since is not None:
            request.since.CopyFrom(timestamp(since))
        if until is not None:
            request.until.CopyFrom(timestamp(until))
        reply: pb.SessionMetrics = await self._call("GetMetrics", request)
        return reply

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
    ) -> pb.WebhookEndpoint:
        """Add an org's endpoint; the reply carries its secret (shown this once)."""
        request = pb.AddWebhookEndpointRequest(
            principal=principal_to_proto(principal),
            org_id=org_id,
            url=url,
            event_types=list(event_types),
            description=description,
            secret=secret,
        )
        reply: pb.WebhookEndpoint = await self._call("AddWebhookEndpoint", request)
        return reply

    async def list_webhook_endpoints(
        self, principal: Principal, *, org_id: str = ""
    ) -> pb.ListWebhookEndpointsResponse:
        """An org's endpoints (without their secrets)."""
        request = pb.ListWebhookEndpointsRequest(principal=principal_to_proto(principal), org_id=org_id)
        reply: pb.ListWebhookEndpointsResponse = await self._call("ListWebhookEndpoints", request)
        return reply

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
    ) -> pb.ListWebhookDeliveriesResponse:
        """An endpoint's deliveries, newest first, with their attempts."""
        request = pb.ListWebhookDeliveriesRequest(
            principal=principal_to_proto(principal),
            org_id=org_id,
            endpoint_id=endpoint_id,
            status=status,
            before=before,
            limit=limit,
        )
        reply: pb.ListWebhookDeliveriesResponse = await self._call("ListWebhookDeliveries", request)
        return reply

    async def redeliver_webhooks(
        self, principal: Principal, endpoint_id: str, *, org_id: str = "", event_id: str = ""
    ) -> int:
        """Send one event again, or every dead-lettered one; returns how many."""
        request = pb.RedeliverWebhooksRequest(
            principal=principal_to_proto(principal), org_id=org_id, endpoint_id=endpoint_id, event_id=event_id
        )
        reply: pb.RedeliverWebhooksResponse = await self._call("RedeliverWebhooks", request)
        return reply.count

    async def watch(
        self, principal: Principal, *, org: bool = False, session_id: str = "", since: str = ""
    ) -> AsyncGenerator[pb.SessionChange, None]:
        """Follow session and escalation changes; the first is ``watch.started``."""
        request = pb.WatchSessionsRequest(
            principal=principal_to_proto(principal), org=org, session_id=session_id, since=since
        )
        try:
            async for change in self.stub.Watch(request):
                yield change
        except grpc.aio.AioRpcError as error:
            raise error_from_rpc(error, service=SERVICE) from None


__all__ = ["SessionApiClient"]


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
        reply = await self._client.authenticate(token)
        principal = principal_from_proto(reply.principal)
        until = reply.expires_at.ToSeconds() if reply.HasField("expires_at") else now
        if reply.kind == pb.TOKEN_KIND_SESSION:
            until = min(until, now + self._session_seconds)
        if until > now:
            self._cache.put(token, principal, until)
        return principal


def users_verifier(target: str | None) -> Callable[[str], Awaitable[Principal]] | None:
    """How a service other than session_api verifies end users' tokens on its gRPC API: by asking
    session_api at ``target`` (None: no session_api, so the service accepts service tokens only)."""
    if not target:
        return None
    return TokenAuthenticator(SessionApiClient(target)).verify
