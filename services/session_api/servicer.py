"""gRPC servicer of session_api: protobuf in, domain calls, protobuf out. Nothing else."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import cast

from services.session_api.domain import (
    DurationStats,
    Escalation,
    EscalationStatus,
    Session,
    SessionChange,
    SessionEvent,
    SessionMetrics,
    SessionStatus,
)
from services.session_api.service import SessionService
from services.session_api.webhook_admin import WebhookAdmin
from services.session_api.webhook_servicer import WebhookRpcs
from switchboard.api.v1 import session_api_pb2 as pb
from switchboard.api.v1 import session_api_pb2_grpc
from switchboard.errors import InvalidArgument
from switchboard.grpc_runtime import ServicerContext
from switchboard.proto_convert import (
    enum_name,
    enum_value,
    from_timestamp,
    principal_to_proto,
    request_principal,
    timestamp,
)


def _session_status(value: int) -> SessionStatus | None:
    return cast("SessionStatus | None", enum_name(pb.SessionStatus, value, "SESSION_STATUS_"))


def _escalation_status(value: int) -> EscalationStatus | None:
    return cast("EscalationStatus | None", enum_name(pb.EscalationStatus, value, "ESCALATION_STATUS_"))


def _optional_time(message: pb.GetMetricsRequest, field: str) -> datetime | None:
    if not message.HasField(field):
        return None
    try:
        return from_timestamp(getattr(message, field))
    except (ValueError, OverflowError):
        raise InvalidArgument(f"{field} is not a valid time") from None


def session_to_proto(s: Session) -> pb.Session:
    """A session as protobuf."""
    message = pb.Session(
        id=s.id,
        user_id=s.user_id,
        org_id=s.org_id or "",
        channel=s.channel,
        agent_id=s.agent_id,
        status=enum_value(pb.SessionStatus, s.status, "SESSION_STATUS_"),
        created_at=timestamp(s.created_at),
        metadata_json=s.metadata_json,
        thread_ids=list(s.thread_ids),
        mode=s.mode,
    )
    if s.ended_at is not None:
        message.ended_at.CopyFrom(timestamp(s.ended_at))
    if s.hosted is not None:
        message.hosted.CopyFrom(
            pb.HostedSession(
                openai_session_id=s.hosted.openai_session_id,
                workflow_id=s.hosted.workflow_id,
                status=s.hosted.status(datetime.now(UTC)),
                expires_at=timestamp(s.hosted.expires_at),
                openai_user=s.hosted.openai_user,
            )
        )
    return message


def event_to_proto(e: SessionEvent) -> pb.SessionEvent:
    """A session event as protobuf."""
    return pb.SessionEvent(
        id=e.id,
        session_id=e.session_id,
        type=e.type,
        actor_user_id=e.actor_user_id,
        payload_json=e.payload_json,
        created_at=timestamp(e.created_at),
    )


def escalation_to_proto(e: Escalation) -> pb.Escalation:
    """An escalation as protobuf."""
    message = pb.Escalation(
        id=e.id,
        session_id=e.session_id,
        thread_id=e.thread_id,
        user_id=e.user_id,
        org_id=e.org_id or "",
        reason=e.reason,
        status=enum_value(pb.EscalationStatus, e.status, "ESCALATION_STATUS_"),
        opened_by=e.opened_by,
        opened_at=timestamp(e.opened_at),
        claimed_by=e.claimed_by or "",
        resolved_by=e.resolved_by or "",
        resolution=e.resolution,
    )
    if e.claimed_at is not None:
        message.claimed_at.CopyFrom(timestamp(e.claimed_at))
    if e.resolved_at is not None:
        message.resolved_at.CopyFrom(timestamp(e.resolved_at))
    return message


def _stats(d: DurationStats) -> pb.DurationStats:
    return pb.DurationStats(count=d.count, p50_seconds=d.p50_seconds, p90_seconds=d.p90_seconds)


def _counts(values: dict[str, int]) -> list[pb.Count]:
    return [pb.Count(key=k, count=v) for k, v in sorted(values.items())]


def metrics_to_proto(m: SessionMetrics) -> pb.SessionMetrics:
    """Figures as protobuf."""
    return pb.SessionMetrics(
        total_sessions=m.total_sessions,
        by_status=_counts(m.by_status),
        by_channel=_counts(m.by_channel),
        by_agent=_counts(m.by_agent),
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


def change_to_proto(c: SessionChange) -> pb.SessionChange:
    """A change as protobuf."""
    message = pb.SessionChange(id=c.id, type=c.type, at=timestamp(c.at))
    if c.session is not None:
        message.session.CopyFrom(session_to_proto(c.session))
    elif c.escalation is not None:
        message.escalation.CopyFrom(escalation_to_proto(c.escalation))
    return message


class SessionApiServicer(WebhookRpcs, session_api_pb2_grpc.SessionApiServicer):
    """Converts between protobuf and ``SessionService`` (the webhook RPCs: ``WebhookRpcs``)."""

    def __init__(self, service: SessionService, webhooks: WebhookAdmin) -> None:
        self._service = service
        self._webhooks = webhooks

    async def Authenticate(self, request: pb.AuthenticateRequest, context: ServicerContext) -> pb.AuthenticateResponse:
        verified = await self._service.authenticate(request.token)
        return pb.AuthenticateResponse(
            principal=principal_to_proto(verified.principal),
            expires_at=timestamp(verified.expires_at),
            kind=enum_value(pb.TokenKind, verified.kind, "TOKEN_KIND_"),
        )

    async def CreateSession(
        self, request: pb.CreateSessionRequest, context: ServicerContext
    ) -> pb.CreateSessionResponse:
        created = await self._service.create_session(
            request_principal(request),
            channel=request.channel,
            agent_id=request.agent_id,
            metadata_json=request.metadata_json,
            thread_id=request.thread_id,
        )
        return pb.CreateSessionResponse(
            session=session_to_proto(created.session),
            client_secret=pb.ClientSecret(
                token=created.client_secret.token, expires_at=timestamp(created.client_secret.expires_at)
            ),
        )

    async def GetSession(self, request: pb.GetSessionRequest, context: ServicerContext) -> pb.Session:
        principal = request_principal(request)
        return session_to_proto(await self._service.get_session(principal, request.session_id))

    async def ListSessions(self, request: pb.ListSessionsRequest, context: ServicerContext) -> pb.ListSessionsResponse:
        page = await self._service.list_sessions(
            request_principal(request),
            status=_session_status(request.status),
            org_wide=request.org_wide,
            user_id=request.user_id,
            limit=request.limit,
            after=request.after,
        )
        return pb.ListSessionsResponse(
            sessions=[session_to_proto(s) for s in page.items], has_more=page.has_more, after=page.after or ""
        )

    async def RefreshSession(self, request: pb.RefreshSessionRequest, context: ServicerContext) -> pb.ClientSecret:
        principal = request_principal(request)
        secret = await self._service.refresh_session(principal, request.session_id)
        return pb.ClientSecret(token=secret.token, expires_at=timestamp(secret.expires_at))

    async def ListHostedThreads(
        self, request: pb.ListHostedThreadsRequest, context: ServicerContext
    ) -> pb.ListHostedThreadsResponse:
        principal = request_principal(request)
        page = await self._service.list_hosted_threads(
            principal, request.session_id, limit=request.limit, after=request.after
        )
        return pb.ListHostedThreadsResponse(
            threads_json=json.dumps(page.data).encode(), has_more=page.has_more, next_after=page.next_after
        )

    async def ListHostedItems(
        self, request: pb.ListHostedItemsRequest, context: ServicerContext
    ) -> pb.ListHostedItemsResponse:
        principal = request_principal(request)
        page = await self._service.list_hosted_items(
            principal, request.session_id, thread_id=request.thread_id, limit=request.limit, after=request.after
        )
        return pb.ListHostedItemsResponse(
            items_json=json.dumps(page.data).encode(), has_more=page.has_more, next_after=page.next_after
        )

    async def AttachThread(self, request: pb.AttachThreadRequest, context: ServicerContext) -> pb.Session:
        principal = request_principal(request)
        return session_to_proto(await self._service.attach_thread(principal, request.session_id, request.thread_id))

    async def CancelSession(self, request: pb.CancelSessionRequest, context: ServicerContext) -> pb.Session:
        principal = request_principal(request)
        return session_to_proto(await self._service.cancel_session(principal, request.session_id, request.reason))

    async def EndSession(self, request: pb.EndSessionRequest, context: ServicerContext) -> pb.Session:
        principal = request_principal(request)
        return session_to_proto(await self._service.end_session(principal, request.session_id))

    async def RecordEvent(self, request: pb.RecordEventRequest, context: ServicerContext) -> pb.SessionEvent:
        principal = request_principal(request)
        event = await self._service.record_event(
            principal, request.session_id, type=request.type, payload_json=request.payload_json
        )
        return event_to_proto(event)

    async def ListEvents(self, request: pb.ListEventsRequest, context: ServicerContext) -> pb.ListEventsResponse:
        principal = request_principal(request)
        page = await self._service.list_events(
            principal, request.session_id, limit=request.limit, after=request.after, type=request.type
        )
        return pb.ListEventsResponse(
            events=[event_to_proto(e) for e in page.items], has_more=page.has_more, after=int(page.after or 0)
        )

    async def OpenEscalation(self, request: pb.OpenEscalationRequest, context: ServicerContext) -> pb.Escalation:
        principal = request_principal(request)
        escalation = await self._service.open_escalation(
            principal, request.session_id, thread_id=request.thread_id, reason=request.reason
        )
        return escalation_to_proto(escalation)

    async def GetEscalation(self, request: pb.GetEscalationRequest, context: ServicerContext) -> pb.Escalation:
        principal = request_principal(request)
        return escalation_to_proto(await self._service.get_escalation(principal, request.escalation_id))

    async def ListEscalations(
        self, request: pb.ListEscalationsRequest, context: ServicerContext
    ) -> pb.ListEscalationsResponse:
        page = await self._service.list_escalations(
            request_principal(request),
            status=_escalation_status(request.status),
            session_id=request.session_id,
            limit=request.limit,
            after=request.after,
        )
        return pb.ListEscalationsResponse(
            escalations=[escalation_to_proto(e) for e in page.items], has_more=page.has_more, after=page.after or ""
        )

    async def ClaimEscalation(self, request: pb.ClaimEscalationRequest, context: ServicerContext) -> pb.Escalation:
        principal = request_principal(request)
        return escalation_to_proto(await self._service.claim_escalation(principal, request.escalation_id))

    async def ResolveEscalation(self, request: pb.ResolveEscalationRequest, context: ServicerContext) -> pb.Escalation:
        principal = request_principal(request)
        escalation = await self._service.resolve_escalation(principal, request.escalation_id, request.resolution)
        return escalation_to_proto(escalation)

    async def GetMetrics(self, request: pb.GetMetricsRequest, context: ServicerContext) -> pb.SessionMetrics:
        principal = request_principal(request)
        metrics = await self._service.metrics(
            principal, since=_optional_time(request, "since"), until=_optional_time(request, "until")
        )
        return metrics_to_proto(metrics)

    async def Watch(
        self, request: pb.WatchSessionsRequest, context: ServicerContext
    ) -> AsyncIterator[pb.SessionChange]:
        principal = request_principal(request)
        async for change in self._service.watch(
            principal, org=request.org, session_id=request.session_id, since=request.since
        ):
            yield change_to_proto(change)
