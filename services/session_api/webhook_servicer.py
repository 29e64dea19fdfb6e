"""The webhook RPCs of session_api: protobuf in, ``WebhookAdmin`` calls, protobuf out."""

from __future__ import annotations

from services.session_api.domain import WebhookDelivery, WebhookEndpoint
from services.session_api.webhook_admin import WebhookAdmin
from switchboard.api.v1 import session_api_pb2 as pb
from switchboard.errors import PermissionDenied
from switchboard.grpc_runtime import ServicerContext
from switchboard.principal import Principal
from switchboard.proto_convert import request_principal, timestamp
from switchboard.service_auth import current_credential


def endpoint_to_proto(e: WebhookEndpoint, *, with_secret: bool = False) -> pb.WebhookEndpoint:
    """The protobuf form of an endpoint; the secret only when asked (right after adding)."""
    return pb.WebhookEndpoint(
        id=e.id,
        org_id=e.org_id or "",
        url=e.url,
        secret=e.secret if with_secret else "",
        event_types=list(e.event_types),
        description=e.description,
        created_by=e.created_by,
        created_at=timestamp(e.created_at),
    )


def delivery_to_proto(d: WebhookDelivery) -> pb.WebhookDelivery:
    """The protobuf form of a delivery and its attempts."""
    message = pb.WebhookDelivery(
        endpoint_id=d.endpoint_id,
        event_id=d.event_id,
        event_seq=d.event_seq,
        type=d.type,
        status=d.status,
        attempts=d.attempts,
        next_attempt_at=timestamp(d.next_attempt_at),
        last_error=d.last_error,
        event_created_at=timestamp(d.event_created_at),
        attempt_list=[
            pb.WebhookAttempt(
                attempted_at=timestamp(a.attempted_at),
                status_code=a.status_code or 0,
                error=a.error,
                duration_ms=a.duration_ms,
            )
            for a in d.attempt_list
        ],
    )
    if d.delivered_at is not None:
        message.delivered_at.CopyFrom(timestamp(d.delivered_at))
    return message


class WebhookRpcs:
    """The webhook methods of ``SessionApiServicer`` (a base class of it)."""

    _webhooks: WebhookAdmin

    @staticmethod
    def _caller(request: object, org_id: str) -> tuple[Principal, str, bool]:
        """The principal, the org asked for and whether a service identity asks.

        Raises:
            PermissionDenied: a service token bound to another org.
        """
        principal = request_principal(request)
        credential = current_credential()
        is_service = credential is not None and credential.kind == "service"
        if is_service and credential is not None and credential.org_id:
            if org_id and org_id != credential.org_id:
                raise PermissionDenied("this service token is bound to another org")
            org_id = credential.org_id
        return principal, org_id, is_service

    async def AddWebhookEndpoint(
        self, request: pb.AddWebhookEndpointRequest, context: ServicerContext
    ) -> pb.WebhookEndpoint:
        principal, org, is_service = self._caller(request, request.org_id)
        endpoint = await self._webhooks.add(
            principal,
            org_id=org,
            is_service=is_service,
            url=request.url,
            event_types=list(request.event_types),
            description=request.description,
            secret=request.secret,
        )
        return endpoint_to_proto(endpoint, with_secret=True)

    async def ListWebhookEndpoints(
        self, request: pb.ListWebhookEndpointsRequest, context: ServicerContext
    ) -> pb.ListWebhookEndpointsResponse:
        principal, org, is_service = self._caller(request, request.org_id)
        endpoints = await self._webhooks.list_endpoints(principal, org_id=org, is_service=is_service)
        return pb.ListWebhookEndpointsResponse(endpoints=[endpoint_to_proto(e) for e in endpoints])

    async def RemoveWebhookEndpoint(
        self, request: pb.RemoveWebhookEndpointRequest, context: ServicerContext
    ) -> pb.RemoveWebhookEndpointResponse:
        principal, org, is_service = self._caller(request, request.org_id)
        await self._webhooks.remove(principal, org_id=org, is_service=is_service, endpoint_id=request.endpoint_id)
        return pb.RemoveWebhookEndpointResponse()

    async def TestWebhookEndpoint(
        self, request: pb.TestWebhookEndpointRequest, context: ServicerContext
    ) -> pb.TestWebhookEndpointResponse:
        principal, org, is_service = self._caller(request, request.org_id)
        event_id = await self._webhooks.test(
            principal, org_id=org, is_service=is_service, endpoint_id=request.endpoint_id
        )
        return pb.TestWebhookEndpointResponse(event_id=event_id)

    async def ListWebhookDeliveries(
        self, request: pb.ListWebhookDeliveriesRequest, context: ServicerContext
    ) -> pb.ListWebhookDeliveriesResponse:
        principal, org, is_service = self._caller(request, request.org_id)
        deliveries, next_before = await self._webhooks.deliveries(
            principal,
            org_id=org,
            is_service=is_service,
            endpoint_id=request.endpoint_id,
            status=request.status,
            before=request.before,
            limit=request.limit,
        )
        return pb.ListWebhookDeliveriesResponse(
            deliveries=[delivery_to_proto(d) for d in deliveries], next_before=next_before
        )

    async def RedeliverWebhooks(
        self, request: pb.RedeliverWebhooksRequest, context: ServicerContext
    ) -> pb.RedeliverWebhooksResponse:
        principal, org, is_service = self._caller(request, request.org_id)
        count = await self._webhooks.redeliver(
            principal, org_id=org, is_service=is_service, endpoint_id=request.endpoint_id, event_id=request.event_id
        )
        return pb.RedeliverWebhooksResponse(count=count)
