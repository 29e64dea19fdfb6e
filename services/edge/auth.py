"""Who is calling: bearer tokens checked by session_api, remembered here; per-user rate limits.

Every request's token goes to session_api's ``Authenticate`` once; the edge then
reuses the principal until the token expires (identity-provider JWTs), or for a
few seconds (session client secrets, which die when their session is cancelled).
That keeps the hot path to one gRPC hop: the data itself.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from services.session_api.client import SessionApiClient
from switchboard.api.v1 import session_api_pb2
from switchboard.errors import ResourceExhausted, Unauthenticated
from switchboard.principal import Principal
from switchboard.proto_convert import principal_from_proto

MAX_SCOPE_LENGTH = 200


@dataclass
class RequestContext:
    """The ChatKit ``Store`` context of one request: the principal, and what the request learned.

    Attributes:
        principal: The caller.
        scope: The opportunity, case or project the request is about
            (``X-Switchboard-Scope``), if any.
        base_url: The edge's URL as this client reached it (upload and preview URLs; set
            only for attachment requests, off the hot path).
    """

    principal: Principal
    scope: str | None = None
    base_url: str = ""

    @property
    def user_id(self) -> str:
        """The caller's user id (what ``GrpcThreadStore`` reads)."""
        return self.principal.user_id

    @property
    def org_id(self) -> str | None:
        """The caller's org."""
        return self.principal.org_id

    @property
    def roles(self) -> tuple[str, ...]:
        """The caller's roles."""
        return self.principal.roles

    @property
    def session_id(self) -> str | None:
        """The caller's chat session, if the token names one."""
        return self.principal.session_id


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header.

    Raises:
        Unauthenticated: the header is missing or not a bearer token.
    """
    if not authorization:
        raise Unauthenticated("sign in: this request needs an Authorization: Bearer <token> header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("sign in: the Authorization header must be 'Bearer <token>'")
    return token.strip()


class Authenticator:
    """Principals of bearer tokens, asked of session_api and remembered.

    Args:
        client: session_api.
        session_seconds: How long a session client secret's principal is reused.
        max_entries: Tokens remembered (the oldest go first).
    """

    def __init__(self, client: SessionApiClient, *, session_seconds: float, max_entries: int) -> None:
        self._client = client
        self._session_seconds = session_seconds
        self._max_entries = max_entries
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    async def principal(self, authorization: str | None) -> Principal:
        """The caller of a request.

        Raises:
            Unauthenticated: no token, or one session_api refuses (expired, forged, revoked).
        """
        token = bearer_token(authorization)
        now = time.time()
        cached = self._cache.get(token)
        if cached is not None and cached[1] > now:
            return cached[0]
        reply = await self._client.authenticate(token)
        principal = principal_from_proto(reply.principal)
        until = reply.expires_at.ToSeconds() if reply.HasField("expires_at") else now
        if reply.kind == session_api_pb2.TOKEN_KIND_SESSION:
            until = min(until, now + self._session_seconds)
        if self._max_entries and until > now:
            self._cache[token] = (principal, until)
            if len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        return principal


class RateLimiter:
    """A token bucket per user, on this replica (decision: no Redis round trip per
    request; with N replicas behind a balancer a user gets up to N times the rate).

    Args:
        per_second: Sustained requests per second.
        burst: Requests allowed at once.
        max_users: Buckets kept (least recently used go first).
        clock: Seconds, monotonic (tests pass their own to decide exactly when tokens refill).
    """

    def __init__(
        self,
        *,
        per_second: float,
        burst: int,
        max_users: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._rate = per_second
        self._burst = float(burst)
        self._max_users = max_users
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def check(self, user_id: str) -> None:
        """Take one request from the user's bucket.

        Raises:
            ResourceExhausted: the user is over the limit (the message says when to retry).
        """
        now = self._clock()
        tokens, last = self._buckets.pop(user_id, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens < 1.0:
            self._buckets[user_id] = (tokens, now)
            raise RateLimited(retry_after=(1.0 - tokens) / self._rate)
        self._buckets[user_id] = (tokens - 1.0, now)
        if len(self._buckets) > self._max_users:
            self._buckets.popitem(last=False)


class RateLimited(ResourceExhausted):
    """Too many requests from one user."""

    http_status = 429

    def __init__(self, *, retry_after: float) -> None:
        super().__init__(f"too many requests; retry in {retry_after:.1f} s")
        self.retry_after = retry_after
