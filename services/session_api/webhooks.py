"""Outgoing webhooks: endpoints, the outbox's deliveries, and the deliverer.

Events are enqueued by Postgres itself (triggers of migration 0008 call
``webhook_enqueue`` in the transaction of the change), so no code path can
commit a change and lose its event, whichever service or replica made it.

The deliverer runs as a background task in every session_api replica. Each of
its workers takes the oldest due delivery with ``FOR UPDATE SKIP LOCKED`` and
holds that row lock while it POSTs: two replicas never send the same attempt,
and a replica killed mid-delivery loses its lock with its connection, so the
delivery is simply due again (at least once; receivers dedupe on
``webhook-id``). A delivery waits while an earlier one of the same endpoint and
thread (or session) is pending, so each endpoint sees a thread's events in
order. Deliverers use their own small pool: a slow or dead endpoint holds only
those connections and never a request's.

Signatures follow the Standard Webhooks specification (``standardwebhooks``):
``webhook-id`` is the event's id (the same on every retry), ``webhook-timestamp``
the attempt's time, ``webhook-signature`` ``v1,<base64 HMAC-SHA256>`` of
``id.timestamp.body`` with the endpoint's ``whsec_`` secret.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import logging
import random
import secrets
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
from prometheus_client import Counter, Histogram
from standardwebhooks.webhooks import Webhook

from services.session_api.domain import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from switchboard.config import env_bool, env_float, env_int, env_str
from switchboard.errors import InvalidArgument, NotFound
from switchboard.sql import Queries, create_pool
from switchboard.streams import Attempt, Backoff, reconnecting

log = logging.getLogger(__name__)

# Between a deliverer's tries after a failure it could not record (Postgres down): 1 s at most at
# first, doubling up to 30 s, never under 0.5 s.
DELIVERER_BACKOFF = Backoff(first=1.0, limit=30.0, floor=0.5)

DEPLOYMENT_ENDPOINT_ID = "deployment"
SECRET_PREFIX = "whsec_"
EVENT_TYPES = frozenset(
    {
        "session.created",
        "session.ended",
        "session.cancelled",
        "escalation.opened",
        "escalation.claimed",
        "escalation.resolved",
        "escalation.timed_out",
        "handoff.started",
        "handoff.ended",
        "run.completed",
        "run.failed",
        "run.cancelled",
        "run.waiting_for_approval",
        "approval.decided",
        "feedback.given",
        "thread.deleted",
        "webhook.test",
    }
)
MAX_ENDPOINTS_PER_ORG = 20

DELIVERIES = Counter(
    "switchboard_webhook_attempts_total",
    "Webhook delivery attempts, by outcome: delivered, failed (to be retried), dead (dead-lettered).",
    ["outcome"],
)
DELIVERY_SECONDS = Histogram(
    "switchboard_webhook_attempt_seconds",
    "Time of one webhook POST, answered or not.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


# -- configuration and checks -------------------------------------------------------


@dataclass(frozen=True)
class WebhookConfig:
    """How webhooks are delivered.

    Attributes:
        url: The deployment's endpoint (every org's events), or None.
        secret: Its ``whsec_`` secret.
        allow_private: Allow targets on loopback, private and link-local addresses.
        timeout_seconds: One attempt's limit (connect to last byte).
        retry_for_seconds: How long failures are retried before a delivery is dead-lettered.
        backoff_base_seconds: The first retry's delay; each next one doubles, up to ``backoff_max_seconds``.
        backoff_max_seconds: The longest delay between attempts.
        workers: Concurrent deliveries per replica (each holds one Postgres connection while it POSTs).
        poll_seconds: How often an idle replica looks for due deliveries.
        keep_events_days: Outbox rows whose deliveries are all done are deleted after this many days.
    """

    url: str | None = None
    secret: str | None = None
    allow_private: bool = False
    timeout_seconds: float = 10.0
    retry_for_seconds: float = 24 * 3600.0
    backoff_base_seconds: float = 5.0
    backoff_max_seconds: float = 3600.0
    workers: int = 2
    poll_seconds: float = 1.0
    keep_events_days: int = 7
    enabled: bool = True

    @classmethod
    def from_env(cls) -> WebhookConfig:
        """Read ``SWITCHBOARD_WEBHOOK_*``.

        Raises:
            InvalidArgument: a URL without a secret (or the reverse), or a malformed one.
        """
        url = env_str("SWITCHBOARD_WEBHOOK_URL") or None
        secret = env_str("SWITCHBOARD_WEBHOOK_SECRET") or None
        allow_private = env_bool("SWITCHBOARD_WEBHOOK_ALLOW_PRIVATE", False)
        if (url is None) != (secret is None):
            raise InvalidArgument(
                "set both SWITCHBOARD_WEBHOOK_URL and SWITCHBOARD_WEBHOOK_SECRET (whsec_..., see "
                "`switchboard webhooks secret`), or neither"
            )
        if url is not None and secret is not None:
            check_target_url(url, allow_private=allow_private, where="SWITCHBOARD_WEBHOOK_URL")
            check_secret(secret, where="SWITCHBOARD_WEBHOOK_SECRET")
        return cls(
            url=url,
            secret=secret,
            allow_private=allow_private,
            timeout_seconds=env_float("SWITCHBOARD_WEBHOOK_TIMEOUT_SECONDS", cls.timeout_seconds, minimum=0.1),
            retry_for_seconds=env_float("SWITCHBOARD_WEBHOOK_RETRY_FOR_SECONDS", cls.retry_for_seconds, minimum=0),
            backoff_base_seconds=env_float("SWITCHBOARD_WEBHOOK_BACKOFF_SECONDS", cls.backoff_base_seconds, minimum=0),
            backoff_max_seconds=env_float(
                "SWITCHBOARD_WEBHOOK_BACKOFF_MAX_SECONDS", cls.backoff_max_seconds, minimum=0
            ),
            workers=env_int("SWITCHBOARD_WEBHOOK_WORKERS", cls.workers, minimum=0),
            poll_seconds=env_float("SWITCHBOARD_WEBHOOK_POLL_SECONDS", cls.poll_seconds, minimum=0.01),
            keep_events_days=env_int("SWITCHBOARD_WEBHOOK_KEEP_EVENTS_DAYS", cls.keep_events_days, minimum=1),
            enabled=env_bool("SWITCHBOARD_WEBHOOK_DELIVERY", True),
        )


def generate_secret() -> str:
    """A new ``whsec_`` secret: 32 random bytes, base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def check_secret(secret: str, *, where: str = "secret") -> str:
    """A ``whsec_`` secret whose key is 24 to 64 bytes of base64.

    Raises:
        InvalidArgument: anything else.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidArgument(
            f"{where} must start with {SECRET_PREFIX!r} (make one with `switchboard webhooks secret`)"
        )
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except ValueError:
        raise InvalidArgument(f"{where}: the part after {SECRET_PREFIX!r} must be base64") from None
    if not 24 <= len(key) <= 64:
        raise InvalidArgument(f"{where}: the key must be 24 to 64 bytes (32 recommended), got {len(key)}")
    return secret


def _address_refused(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def check_target_url(url: str, *, allow_private: bool, where: str = "url") -> str:
    """An ``http(s)`` URL with a host; a literal loopback, private or link-local
    address is refused unless ``allow_private``. Names are resolved (and checked
    again) at every delivery, by ``resolve_target``.

    Raises:
        InvalidArgument: what is wrong with it.
    """
    if len(url) > 2048 or "\x00" in url:
        raise InvalidArgument(f"{where} must be a URL of at most 2048 characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(f"{where} must be an http:// or https:// URL with a host, got {url!r}")
    if parts.username or parts.password:
        raise InvalidArgument(f"{where} must not carry credentials; the signature authenticates the sender")
    try:
        ipaddress.ip_address(parts.hostname)
    except ValueError:
        if parts.hostname == "localhost" and not allow_private:
            raise InvalidArgument(_private_message(where, parts.hostname)) from None
        return url
    if not allow_private and _address_refused(parts.hostname):
        raise InvalidArgument(_private_message(where, parts.hostname))
    return url


def _private_message(where: str, host: str) -> str:
    return (
        f"{where}: {host} is a loopback, private or link-local address; webhooks go to public hosts "
        "unless the deployment sets SWITCHBOARD_WEBHOOK_ALLOW_PRIVATE=true"
    )


async def resolve_target(url: str, *, allow_private: bool) -> None:
    """Check where ``url``'s host resolves to now (a name may point at a private address).

    Raises:
        InvalidArgument: it resolves to a refused address.
        OSError: it does not resolve.
    """
    if allow_private:
        return
    host = urlsplit(url).hostname or ""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    for info in infos:
        if _address_refused(str(info[4][0])):
            raise InvalidArgument(_private_message("the endpoint", f"{host} ({info[4][0]})"))


def check_event_types(types: list[str]) -> list[str]:
    """Known event types, without duplicates (empty: all).

    Raises:
        InvalidArgument: an unknown type.
    """
    unknown = sorted(set(types) - EVENT_TYPES)
    if unknown:
        raise InvalidArgument(f"unknown event types {unknown}; known: {sorted(EVENT_TYPES)}")
    return sorted(set(types))


def backoff_seconds(failures: int, *, base: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Exponential back-off with jitter: ``min(cap, base * 2**(failures-1))``, times 0.5 to 1."""
    delay = min(cap, base * float(2 ** max(0, min(failures - 1, 32))))
    return float(delay * (0.5 + rng() / 2))


def sign(secret: str, *, msg_id: str, timestamp: datetime, body: bytes) -> str:
    """The ``webhook-signature`` header of a body, as the Standard Webhooks specification says."""
    return Webhook(secret).sign(msg_id=msg_id, timestamp=timestamp, data=body)


def event_body(*, type: str, created_at: datetime, data_json: str) -> bytes:
    """The JSON envelope the specification recommends: ``type``, ``timestamp`` and ``data``."""
    envelope = {"type": type, "timestamp": created_at.astimezone(UTC).isoformat(), "data": json.loads(data_json)}
    return json.dumps(envelope, separators=(",", ":")).encode()


# -- domain objects -----------------------------------------------------------------


def _endpoint(row: asyncpg.Record) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row["id"],
        org_id=row["org_id"],
        url=row["url"],
        secret=row["secret"],
        event_types=tuple(row["event_types"]),
        description=row["description"],
        created_by=row["created_by"],
        created_at=row["created_at"],
    )


def _delivery(row: asyncpg.Record) -> WebhookDelivery:
    attempts = tuple(
        WebhookAttempt(
            attempted_at=datetime.fromisoformat(a["attempted_at"]),
            status_code=a["status_code"],
            error=a["error"],
            duration_ms=a["duration_ms"],
        )
        for a in json.loads(row["attempt_list"])
    )
    return WebhookDelivery(
        endpoint_id=row["endpoint_id"],
        event_id=row["event_id"],
        event_seq=row["event_seq"],
        type=row["type"],
        status=row["status"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        delivered_at=row["delivered_at"],
        event_created_at=row["event_created_at"],
        attempt_list=attempts,
    )


# -- storage ------------------------------------------------------------------------


class WebhookRepository:
    """Endpoints, deliveries and attempts in Postgres; ``org_id`` None is the deployment's own."""

    def __init__(self, pool: asyncpg.Pool, queries: Queries) -> None:
        self._pool = pool
        self._q = queries

    async def configure_deployment_endpoint(self, *, url: str | None, secret: str | None) -> None:
        """Make the deployment's endpoint what the environment says (none: removed, its pending deliveries too)."""
        if url and secret:
            await self._pool.execute(self._q.upsert_deployment_endpoint, DEPLOYMENT_ENDPOINT_ID, url, secret)
        else:
            await self._pool.execute(self._q.delete_deployment_endpoint, DEPLOYMENT_ENDPOINT_ID)

    async def add_endpoint(
        self, *, org_id: str, url: str, secret: str, event_types: list[str], description: str, created_by: str
    ) -> WebhookEndpoint:
        """Add an org's endpoint."""
        async with self._pool.acquire() as conn, conn.transaction():
            # One org's adds are serialised so the cap holds under concurrency.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('webhook_endpoints:' || $1))", org_id)
            count = await conn.fetchval("SELECT count(*) FROM webhook_endpoints WHERE org_id = $1", org_id)
            if count >= MAX_ENDPOINTS_PER_ORG:
                raise InvalidArgument(f"an org may have at most {MAX_ENDPOINTS_PER_ORG} endpoints; remove one first")
            row = await conn.fetchrow(
                self._q.insert_endpoint,
                f"ep_{uuid.uuid4().hex}",
                org_id,
                url,
                secret,
                event_types,
                description,
                created_by,
            )
        return _endpoint(row)

    async def get_endpoint(self, *, endpoint_id: str, org_id: str | None) -> WebhookEndpoint:
        """One endpoint of the org.

        Raises:
            NotFound: no such endpoint of that org.
        """
        row = await self._pool.fetchrow(self._q.get_endpoint, endpoint_id, org_id)
        if row is None:
            raise NotFound(f"webhook endpoint {endpoint_id!r} not found; `switchboard webhooks list` shows the ids")
        return _endpoint(row)

    async def list_endpoints(self, *, org_id: str | None) -> list[WebhookEndpoint]:
        """The org's endpoints, oldest first."""
        return [_endpoint(r) for r in await self._pool.fetch(self._q.list_endpoints, org_id)]

    async def remove_endpoint(self, *, endpoint_id: str, org_id: str | None) -> None:
        """Remove an endpoint with its deliveries and attempts.

        Raises:
            NotFound: no such endpoint of that org.
        """
        if await self._pool.fetchval(self._q.delete_endpoint, endpoint_id, org_id) is None:
            raise NotFound(f"webhook endpoint {endpoint_id!r} not found; `switchboard webhooks list` shows the ids")

    async def enqueue_test(self, *, endpoint: WebhookEndpoint, requested_by: str) -> str:
        """Queue a ``webhook.test`` event for this endpoint only; returns the event id."""
        event_id = f"msg_{uuid.uuid4().hex}"
        data = json.dumps({"endpoint_id": endpoint.id, "requested_by": requested_by})
        key = f"test:{event_id}"
        await self._pool.execute(
            self._q.enqueue_for_endpoint, endpoint.id, event_id, "webhook.test", endpoint.org_id, key, data
        )
        return event_id

    async def list_deliveries(
        self, *, endpoint_id: str, org_id: str | None, status: str | None, before: int | None, limit: int
    ) -> list[WebhookDelivery]:
        """The endpoint's deliveries, newest first, each with its attempts."""
        await self.get_endpoint(endpoint_id=endpoint_id, org_id=org_id)
        rows = await self._pool.fetch(self._q.list_deliveries, endpoint_id, status, before, limit)
        return [_delivery(r) for r in rows]

    async def redeliver(self, *, endpoint_id: str, org_id: str | None, event_id: str | None) -> int:
        """Send one event again (``event_id``), or every dead-lettered one; returns how many.

        Raises:
            NotFound: no such endpoint, or no such event delivered to it.
        """
        await self.get_endpoint(endpoint_id=endpoint_id, org_id=org_id)
        if event_id:
            rows = await self._pool.fetch(self._q.redeliver, endpoint_id, event_id, org_id)
            if not rows:
                raise NotFound(f"event {event_id!r} was never queued for endpoint {endpoint_id!r}")
        else:
            rows = await self._pool.fetch(self._q.redeliver_dead, endpoint_id, org_id)
        return len(rows)

    async def delete_finished_events(self, *, older_than: datetime, batch: int = 500) -> int:
        """Delete one batch of outbox rows older than ``older_than`` whose deliveries are all done."""
        return len(await self._pool.fetch(self._q.delete_finished_events, older_than, batch))


# -- delivery -----------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptOutcome:
    """What one POST gave."""

    ok: bool
    status_code: int | None
    error: str
    duration_ms: int


class WebhookDeliverer:
    """Delivers due outbox rows from any replica; see the module's docstring.

    Args:
        pool: A pool of its own (``workers`` + 1 connections): it holds a connection per POST in flight.
        queries: The named queries.
        config: Time-outs, back-off and how many workers.
        transport: An httpx transport (tests); the default connects for real.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        queries: Queries,
        config: WebhookConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._pool = pool
        self._q = queries
        self._config = config
        # No redirects (a 3xx is a failure: a redirect could point at a private address), no proxy
        # variables (the endpoint is reached directly, as checked), one time-out for the whole attempt.
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(config.timeout_seconds),
            follow_redirects=False,
            trust_env=False,
            transport=transport,
            headers={"user-agent": "Switchboard-Webhooks/1"},
        )
        self._busy = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start the workers.

        Decision: while nothing is due only the first worker polls (one connection per idle
        replica, one cheap indexed query per ``poll_seconds``); the others wake when it
        finds work, and all keep going until none is due.
        """
        for n in range(self._config.workers):
            self._tasks.append(asyncio.create_task(self._work(n), name=f"webhook-deliverer-{n}"))
        if self._config.workers:
            self._tasks.append(asyncio.create_task(self._clean_up(), name="webhook-outbox-cleanup"))

    async def _clean_up(self) -> None:
        # Finished outbox rows go after keep_events_days, a batch at a time; every replica may run
        # this (concurrent DELETEs of the same rows just find fewer).
        repository = WebhookRepository(self._pool, self._q)
        while True:
            deleted = 0
            try:
                deleted = await repository.delete_finished_events(older_than=cleanup_cutoff(self._config))
            except Exception as error:  # tried again next round
                log.warning("webhooks: could not delete finished outbox rows (%s)", error)
            await asyncio.sleep(0.1 if deleted else 600)

    async def stop(self) -> None:
        """Stop the workers; a POST in flight is abandoned and its delivery stays due."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self._client.aclose()

    async def _work(self, n: int) -> None:
        async def deliver(attempt: Attempt) -> None:
            while True:
                delivered = await self.deliver_one()
                attempt.live()
                if delivered:
                    self._busy.set()
                elif n == 0:
                    await asyncio.sleep(self._config.poll_seconds)
                else:
                    self._busy.clear()
                    await self._busy.wait()

        # A worker never dies: a failure before the delivery was recorded leaves it due, and the
        # worker tries again after the one back-off policy (jittered, so replicas spread out).
        await reconnecting(deliver, name=f"webhook deliverer {n}", retry_on=(Exception,), backoff=DELIVERER_BACKOFF)

    async def deliver_one(self) -> bool:
        """Attempt the oldest due delivery; False when none is due."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(self._q.take_due_delivery)
            if row is None:
                return False
            outcome = await self._post(row)
            await conn.execute(
                self._q.record_attempt,
                row["endpoint_id"],
                row["event_seq"],
                outcome.status_code,
                outcome.error,
                outcome.duration_ms,
            )
            if outcome.ok:
                await conn.execute(self._q.mark_delivered, row["endpoint_id"], row["event_seq"])
                DELIVERIES.labels("delivered").inc()
                return True
            now = datetime.now(UTC)
            retry_until = row["retry_until"] or now + timedelta(seconds=self._config.retry_for_seconds)
            dead = now >= retry_until
            delay = backoff_seconds(
                row["attempts"] + 1, base=self._config.backoff_base_seconds, cap=self._config.backoff_max_seconds
            )
            # The last try falls at the window's end rather than past it.
            next_attempt = min(now + timedelta(seconds=delay), retry_until)
            await conn.execute(
                self._q.mark_failed,
                row["endpoint_id"],
                row["event_seq"],
                next_attempt,
                dead,
                retry_until,
                outcome.error[:1000],
            )
            DELIVERIES.labels("dead" if dead else "failed").inc()
            if dead:
                log.warning(
                    "webhooks: event %s to endpoint %s dead-lettered after %d attempts (%s); "
                    "`switchboard webhooks redeliver` sends it again",
                    row["event_id"],
                    row["endpoint_id"],
                    row["attempts"] + 1,
                    outcome.error,
                )
        return True

    async def _post(self, row: asyncpg.Record) -> AttemptOutcome:
        body = event_body(type=row["type"], created_at=row["created_at"], data_json=row["data"])
        now = datetime.now(UTC)
        started = time.perf_counter()

        def outcome(ok: bool, status: int | None, error: str) -> AttemptOutcome:
            elapsed = time.perf_counter() - started
            DELIVERY_SECONDS.observe(elapsed)
            return AttemptOutcome(ok=ok, status_code=status, error=error, duration_ms=int(elapsed * 1000))

        try:
            await resolve_target(row["url"], allow_private=self._config.allow_private)
            headers = {
                "content-type": "application/json",
                "webhook-id": row["event_id"],
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": sign(row["secret"], msg_id=row["event_id"], timestamp=now, body=body),
            }
            response = await self._client.post(row["url"], content=body, headers=headers)
        except InvalidArgument as error:
            return outcome(False, None, error.message)
        except httpx.TimeoutException:
            return outcome(False, None, f"timed out after {self._config.timeout_seconds:g}s")
        except (httpx.HTTPError, OSError) as error:
            return outcome(False, None, f"{type(error).__name__}: {error}"[:500])
        if 200 <= response.status_code < 300:
            return outcome(True, response.status_code, "")
        return outcome(False, response.status_code, f"HTTP {response.status_code}: {response.text[:200]}")


def cleanup_cutoff(config: WebhookConfig, now: datetime | None = None) -> datetime:
    """Outbox rows older than this, with every delivery done, may be deleted."""
    return (now or datetime.now(UTC)) - timedelta(days=config.keep_events_days)


def to_json_text(value: dict[str, Any]) -> str:
    """Compact JSON text, as the outbox stores ``data``."""
    return json.dumps(value, separators=(",", ":"))


async def start_delivery(
    *, database_url: str, repository: WebhookRepository, queries: Queries, config: WebhookConfig
) -> Callable[[], Awaitable[None]]:
    """Configure the deployment's endpoint and start this replica's deliverer; returns its stop.

    The deliverer gets a pool of its own (up to ``workers`` + 1 connections, none kept
    beyond what it uses) so that slow endpoints never take a request's connection.
    """
    await repository.configure_deployment_endpoint(url=config.url, secret=config.secret)
    if not config.enabled or config.workers == 0:
        log.info("webhooks: this replica delivers none (SWITCHBOARD_WEBHOOK_DELIVERY / _WORKERS)")

        async def nothing() -> None:
            return None

        return nothing
    pool = await create_pool(database_url, min_size=0, max_size=config.workers + 1)
    deliverer = WebhookDeliverer(pool, queries, config)
    await deliverer.start()

    async def stop() -> None:
        await deliverer.stop()
        await pool.close()

    return stop
