"""Who may manage which org's webhook endpoints, and the checks of what they send.

Operators manage their own org's endpoints; a service identity (a service
token with the ``webhooks:admin`` scope, e.g. ``switchboard webhooks``) manages
the org it names, or only its own when the token is bound to one. End users
may not. The deployment's endpoint is configured by environment only
(``SWITCHBOARD_WEBHOOK_URL``) and is not listed here.
"""

from __future__ import annotations

from services.session_api.domain import WebhookDelivery, WebhookEndpoint
from services.session_api.webhooks import (
    WebhookConfig,
    WebhookRepository,
    check_event_types,
    check_secret,
    check_target_url,
    generate_secret,
)
from switchboard.errors import InvalidArgument, PermissionDenied
from switchboard.principal import MAX_ID_LENGTH, Principal

DELIVERY_STATUSES = ("pending", "delivered", "dead")
MAX_DESCRIPTION = 500


class WebhookAdmin:
    """The webhook RPCs' rules.

    Args:
        repository: Endpoints and deliveries.
        config: The deployment's webhook settings (whether private targets are allowed).
    """

    def __init__(self, repository: WebhookRepository, config: WebhookConfig) -> None:
        self._repository = repository
        self._config = config

    def org_of(self, principal: Principal, org_id: str, *, is_service: bool) -> str:
        """The org whose endpoints the caller manages.

        Raises:
            PermissionDenied: neither an operator of that org nor a service identity.
            InvalidArgument: no org at all.
        """
        org = org_id or principal.org_id or ""
        if not org:
            raise InvalidArgument("org_id is required (the caller has no org)")
        if len(org) > MAX_ID_LENGTH or "\x00" in org:
            raise InvalidArgument(f"org_id must be at most {MAX_ID_LENGTH} characters")
        if is_service:
            return org
        if not principal.is_operator:
            raise PermissionDenied("managing webhooks needs the operator role or a service token (webhooks:admin)")
        if org != principal.org_id:
            raise PermissionDenied("operators manage the webhooks of their own org only")
        return org

    async def add(
        self,
        principal: Principal,
        *,
        org_id: str,
        is_service: bool,
        url: str,
        event_types: list[str],
        description: str,
        secret: str,
    ) -> WebhookEndpoint:
        """Add an endpoint; the reply is the only time its secret is shown."""
        org = self.org_of(principal, org_id, is_service=is_service)
        check_target_url(url.strip(), allow_private=self._config.allow_private)
        if len(description) > MAX_DESCRIPTION or "\x00" in description:
            raise InvalidArgument(f"description must be at most {MAX_DESCRIPTION} characters")
        return await self._repository.add_endpoint(
            org_id=org,
            url=url.strip(),
            secret=check_secret(secret) if secret else generate_secret(),
            event_types=check_event_types(event_types),
            description=description,
            created_by=principal.user_id,
        )

    async def list_endpoints(self, principal: Principal, *, org_id: str, is_service: bool) -> list[WebhookEndpoint]:
        """The org's endpoints, oldest first."""
        return await self._repository.list_endpoints(org_id=self.org_of(principal, org_id, is_service=is_service))

    async def remove(self, principal: Principal, *, org_id: str, is_service: bool, endpoint_id: str) -> None:
        """Remove an endpoint with its pending deliveries."""
        org = self.org_of(principal, org_id, is_service=is_service)
        await self._repository.remove_endpoint(endpoint_id=_id(endpoint_id, "endpoint_id"), org_id=org)

    async def test(self, principal: Principal, *, org_id: str, is_service: bool, endpoint_id: str) -> str:
        """Queue a ``webhook.test`` event for the endpoint; returns its id."""
        org = self.org_of(principal, org_id, is_service=is_service)
        endpoint = await self._repository.get_endpoint(endpoint_id=_id(endpoint_id, "endpoint_id"), org_id=org)
        return await self._repository.enqueue_test(endpoint=endpoint, requested_by=principal.user_id)

    async def deliveries(
        self,
        principal: Principal,
        *,
        org_id: str,
        is_service: bool,
        endpoint_id: str,
        status: str,
        before: int,
        limit: int,
    ) -> tuple[list[WebhookDelivery], int]:
        """A page of the endpoint's deliveries, newest first, and the ``before`` of the next (0: none)."""
        org = self.org_of(principal, org_id, is_service=is_service)
        if status and status not in DELIVERY_STATUSES:
            raise InvalidArgument(f"status must be one of {', '.join(DELIVERY_STATUSES)} (or empty)")
        if before < 0:
            raise InvalidArgument("before must be an event_seq from a previous page (or 0)")
        limit = limit or 50
        if not 1 <= limit <= 200:
            raise InvalidArgument("limit must be 1 to 200")
        page = await self._repository.list_deliveries(
            endpoint_id=_id(endpoint_id, "endpoint_id"),
            org_id=org,
            status=status or None,
            before=before or None,
            limit=limit + 1,
        )
        more = len(page) > limit
        page = page[:limit]
        return page, page[-1].event_seq if more else 0

    async def redeliver(
        self, principal: Principal, *, org_id: str, is_service: bool, endpoint_id: str, event_id: str
    ) -> int:
        """Send one event again, or every dead-lettered one; returns how many."""
        org = self.org_of(principal, org_id, is_service=is_service)
        return await self._repository.redeliver(
            endpoint_id=_id(endpoint_id, "endpoint_id"),
            org_id=org,
            event_id=_id(event_id, "event_id") if event_id else None,
        )


def _id(value: str, name: str) -> str:
    if not value or len(value) > MAX_ID_LENGTH or "\x00" in value:
        raise InvalidArgument(f"{name} is required and must be at most {MAX_ID_LENGTH} characters")
    return value
