"""Who is calling: bearer tokens checked by session_api, remembered here; per-user rate limits, shared
by every replica through Redis; failed sign-ins limited per client address.

Every request's token goes to session_api's ``Authenticate`` once; the edge then
reuses the principal until the token expires (identity-provider JWTs), or for a
few seconds (session client secrets, which die when their session is cancelled).
That keeps the hot path to one gRPC hop: the data itself.

A token that fails costs a call to session_api each time, and the per-user limit
cannot apply before there is a user: failures are counted per client address
instead (``SignInThrottle``), and an address past its budget is refused before
its token is looked at.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from services.edge.config import IpNetwork
from services.session_api.client import TokenAuthenticator
from switchboard.errors import InvalidArgument, ResourceExhausted, Unauthenticated
from switchboard.principal import Principal

log = logging.getLogger(__name__)

MAX_SCOPE_LENGTH = 200


def check_scope(value: object, what: str) -> str:
    """A scope from a client (a header, a request's metadata): at most ``MAX_SCOPE_LENGTH`` printable characters."""
    if not isinstance(value, str) or not value or len(value) > MAX_SCOPE_LENGTH or not value.isprintable():
        raise InvalidArgument(f"{what} must be 1 to {MAX_SCOPE_LENGTH} printable characters")
    return value


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


class Authenticator(TokenAuthenticator):
    """Principals of ``Authorization: Bearer`` headers, asked of session_api and remembered
    (``TokenAuthenticator``, the one verifier every service shares)."""

    def known(self, authorization: str | None) -> Principal | None:
        """The caller, when the token was verified already and has not expired (no call made)."""
        try:
            token = bearer_token(authorization)
        except Unauthenticated:
            return None
        return self.cached(token)

    async def principal(self, authorization: str | None) -> Principal:
        """The caller of a request.

        Raises:
            Unauthenticated: no token, or one session_api refuses (expired, forged, revoked).
        """
        return await self.verify(bearer_token(authorization))


class RateLimiter:
    """A token bucket per key (a user, a client address), on this replica alone: the failed
    sign-ins of an address (``SignInThrottle``, no Redis round trip for a request that will be
    refused anyway), and the fallback of ``SharedRateLimiter`` while Redis is down (then, with N
    replicas behind a balancer, a user gets up to N times the rate).

    Args:
        per_second: Sustained requests per second.
        burst: Requests allowed at once.
        max_keys: Buckets kept (least recently used go first, so memory stays bounded).
        clock: Seconds, monotonic (tests pass their own to decide exactly when tokens refill).
        message: What a refused request is told, before "; retry in N s".
    """

    def __init__(
        self,
        *,
        per_second: float,
        burst: int,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        message: str = "too many requests",
    ) -> None:
        self._clock = clock
        self._rate = per_second
        self._burst = float(burst)
        self._max_keys = max_keys
        self._message = message
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        """Buckets kept."""
        return len(self._buckets)

    def check(self, key: str) -> None:
        """Take one request from the key's bucket.

        Raises:
            RateLimited: the key is over the limit (the message says when to retry).
        """
        now = self._clock()
        tokens = self._refilled(self._buckets.pop(key, None), now)
        if tokens < 1.0:
            self._keep(key, tokens, now)
            raise self._refusal(tokens)
        self._keep(key, tokens - 1.0, now)

    def ensure_available(self, key: str) -> None:
        """Refuse as ``check`` would, without taking anything (a bucket that is full again is forgotten).

        Raises:
            RateLimited: the key's bucket holds less than one request.
        """
        bucket = self._buckets.get(key)
        if bucket is None:
            return
        tokens = self._refilled(bucket, self._clock())
        if tokens >= self._burst:
            del self._buckets[key]  # as good as never seen: the map keeps only keys that owe something
        elif tokens < 1.0:
            raise self._refusal(tokens)

    def charge(self, key: str) -> None:
        """Take one request from the key's bucket even when it is empty.

        What was taken while the bucket was empty is owed (down to minus the burst), so
        requests already under way when the limit was reached are counted too, and the
        longest wait stays bounded (twice the burst's refill time).
        """
        now = self._clock()
        tokens = self._refilled(self._buckets.pop(key, None), now)
        self._keep(key, max(tokens - 1.0, -self._burst), now)

    def _refilled(self, bucket: tuple[float, float] | None, now: float) -> float:
        if bucket is None:
            return self._burst
        tokens, last = bucket
        return min(self._burst, tokens + (now - last) * self._rate)

    def _keep(self, key: str, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)

    def _refusal(self, tokens: float) -> RateLimited:
        return RateLimited(retry_after=(1.0 - tokens) / self._rate, message=self._message)


# A token bucket in one hash (tokens, and when they were counted), on Redis's clock so that
# every replica counts the same time. ARGV: rate per second, burst, the request's id. Returns
# {1, tokens left} when the request is taken, {0, tokens} when it is refused (nothing is written
# then). Numbers travel as strings: Redis truncates a Lua number in a reply to an integer.
# The hash keeps the id of the last request taken: the same request sent again (the client
# resends a command whose connection dropped before its reply, and the script may have run)
# is answered "taken" without taking a second token. Decision: only the last id is kept, so a
# resend that another request of the same user overtook in between is charged again; that
# needs a dropped connection and a concurrent request within one round trip.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at', 'req')
if state[3] and state[3] == ARGV[3] then return {1, state[1]} end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local tokens = burst
if state[1] and state[2] then
  tokens = math.min(burst, tonumber(state[1]) + math.max(0, now - tonumber(state[2])) * rate)
end
if tokens < 1 then return {0, string.format('%.6f', tokens)} end
tokens = tokens - 1
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'at', string.format('%.6f', now), 'req', ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return {1, string.format('%.6f', tokens)}
"""


def rate_limit_key(user_id: str) -> str:
    """The Redis key of a user's bucket (the user's hash tag, like every key of the user)."""
    return f"chat:user:{{{user_id}}}:rate"


class SharedRateLimiter:
    """A token bucket per user shared by every edge replica: one Lua script in Redis takes a
    request atomically (a user gets the configured rate however many replicas serve them).

    When Redis fails (or there is none) each replica limits with its own ``RateLimiter``
    instead, so limits still hold per replica; Redis is then left alone for ``cooldown``
    seconds, so an outage costs one timeout per cooldown rather than one per request. The
    switch to per-replica limits and back is logged once each way, and ``shared`` says
    which holds now (the edge's ``switchboard_edge_rate_limit_shared`` gauge).

    Args:
        redis: Redis, or None for per-replica limits only.
        per_second: Sustained requests per second.
        burst: Requests allowed at once.
        cooldown: Seconds Redis is left alone after a failure.
        message: What a refused request is told, before "; retry in N s".
    """

    def __init__(
        self,
        redis: aioredis.Redis | None,
        *,
        per_second: float,
        burst: int,
        cooldown: float = 1.0,
        message: str = "too many requests",
    ) -> None:
        self._redis = redis
        self._rate = per_second
        self._burst = burst
        self._cooldown = cooldown
        self._message = message
        self._take = redis.register_script(_TAKE) if redis is not None else None
        self._local = RateLimiter(per_second=per_second, burst=burst, message=message)
        self._down_until = 0.0
        self._shared = redis is not None

    @property
    def shared(self) -> bool:
        """Whether limits are shared through Redis right now (False: this replica's own buckets)."""
        return self._shared

    async def check(self, user_id: str) -> None:
        """Take one request from the user's bucket.

        Raises:
            RateLimited: the user is over the limit (the message says when to retry).
        """
        if self._take is None or time.monotonic() < self._down_until:
            self._local.check(user_id)
            return
        try:
            request_id = secrets.token_hex(8)  # the same on a resend of this call: charged once
            reply: Any = await self._take(keys=[rate_limit_key(user_id)], args=[self._rate, self._burst, request_id])
        except Exception as error:  # any Redis failure: limit on this replica
            self._down_until = time.monotonic() + self._cooldown
            if self._shared:
                self._shared = False
                log.warning(
                    "rate limits are per replica until Redis answers again (%s: %s)", type(error).__name__, error
                )
            self._local.check(user_id)
            return
        if not self._shared:
            self._shared = True
            log.info("rate limits are shared through Redis again")
        if reply[0] != 1:
            tokens = float(reply[1])
            raise RateLimited(retry_after=(1.0 - tokens) / self._rate, message=self._message)

    async def close(self) -> None:
        """Close the Redis client."""
        if self._redis is not None:
            await self._redis.aclose()


class RateLimited(ResourceExhausted):
    """Too many requests from one user or address."""

    http_status = 429

    def __init__(self, *, retry_after: float, message: str = "too many requests") -> None:
        super().__init__(f"{message}; retry in {retry_after:.1f} s")
        self.retry_after = retry_after


IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class ClientAddresses:
    """The address a request comes from, as the key of per-address limits.

    The connection's peer address, unless the peer is one of the deployment's trusted
    proxies (``SWITCHBOARD_EDGE_TRUSTED_PROXIES``): then ``X-Forwarded-For`` is read from
    its right end, past every trusted proxy, and the first address no trusted proxy
    stands for is the client (what a client writes in the header itself stays to the
    left of what the proxies append, so it is never believed). IPv6 clients are keyed
    by their /64, since one host usually holds a whole /64.

    Args:
        trusted_proxies: Proxies whose ``X-Forwarded-For`` is believed; empty: none.
    """

    def __init__(self, trusted_proxies: Sequence[IpNetwork] = ()) -> None:
        self._trusted = tuple(trusted_proxies)

    def key(self, peer: str | None, forwarded_for: Iterable[str] = ()) -> str:
        """The limit key of a request from ``peer`` with these ``X-Forwarded-For`` header values."""
        address = _ip_address(peer or "")
        if address is None:
            return peer or "unknown"  # a Unix socket, or a test client: one key for all of them
        if self._trusted and self._is_trusted(address):
            hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
            for hop in reversed(hops):
                hop_address = _ip_address(hop)
                if hop_address is None:
                    break  # not an address a proxy wrote: the chain of trust ends at the last proxy
                address = hop_address
                if not self._is_trusted(address):
                    break
        return _limit_key(address)

    def _is_trusted(self, address: IpAddress) -> bool:
        return any(address.version == net.version and address in net for net in self._trusted)


def _ip_address(text: str) -> IpAddress | None:
    """An address, also as proxies sometimes write it: ``1.2.3.4:5678`` or ``[2001:db8::1]:443``."""
    candidate = text.strip()
    if candidate.startswith("["):
        candidate = candidate[1:].partition("]")[0]
    elif candidate.count(":") == 1:
        candidate = candidate.partition(":")[0]
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _limit_key(address: IpAddress) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class SignInThrottle:
    """Failed sign-ins counted per client address; past the budget the address is refused (429)
    for every request that would need session_api, without asking it, until its bucket
    refills (a token verified already still passes).

    Only failures (401: no token, a malformed header, a token session_api refuses) take from
    the budget; a successful sign-in takes nothing, so many users behind one address are
    limited only by their failures.

    Args:
        authenticator: Principals of tokens.
        failures: The budget of failures, per address (one request taken per failure).
    """

    def __init__(self, authenticator: Authenticator, failures: RateLimiter | None) -> None:
        self._authenticator = authenticator
        self._failures = failures

    async def principal(self, authorization: str | None, *, address: str) -> Principal:
        """The caller of a request from ``address``.

        Raises:
            RateLimited: the address is past its budget of failed sign-ins (nothing was asked).
            Unauthenticated: no token, or one session_api refuses; counted against the address.
        """
        if self._failures is None:
            return await self._authenticator.principal(authorization)
        # Decision: a token this replica verified already passes even from a refused address
        # (it costs no call), so one user's bad tokens behind a shared address (an office,
        # a carrier's NAT) never lock out the others who signed in.
        known = self._authenticator.known(authorization)
        if known is not None:
            return known
        self._failures.ensure_available(address)
        try:
            return await self._authenticator.principal(authorization)
        except Unauthenticated:
            self._failures.charge(address)
            raise
