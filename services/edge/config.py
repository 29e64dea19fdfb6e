"""The edge's settings, read from the environment once at start-up."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal

from services.edge.transcription import TranscriptionConfig
from switchboard.config import env_float, env_int, env_str
from switchboard.errors import InvalidArgument

DEFAULT_PORT = 8000
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
OnDisconnect = Literal["continue", "cancel"]
ThreadsOrder = Literal["recent", "created"]


@dataclass(frozen=True)
class EdgeConfig:
    """Everything the edge needs.

    Attributes:
        thread_store: ``host:port`` of the thread store.
        session_api: ``host:port`` of session_api.
        agent_runner: ``host:port`` of the agent runner.
        public_url: The edge's URL as browsers reach it (attachment upload and
            preview URLs); empty: taken from each request.
        max_body_bytes: Largest request body of ``POST /chatkit`` and the REST endpoints.
        max_attachment_bytes: Largest attachment upload.
        rate_per_second: Requests per second a user may make, sustained.
        rate_burst: Requests a user may make at once.
        cors_origins: Browser origins allowed to call the edge; empty: none.
        session_auth_seconds: How long a session client secret's principal is
            reused before session_api is asked again (a cancelled session stops
            working within this time). Identity-provider tokens are reused
            until they expire.
        auth_cache_size: Tokens remembered.
        auth_failures_per_minute: Failed sign-ins (401) a client address may make per
            minute, and at once; past it the address is answered 429 without its token
            being checked. 0: no limit.
        trusted_proxies: Proxies (addresses or networks) whose ``X-Forwarded-For`` names
            the client address; empty: the connection's peer is the client.
        on_disconnect: What a client going away does to the run it started:
            ``continue`` (the answer completes and is saved) or ``cancel``.
        threads_order: How ChatKit's ``threads.list`` orders threads: ``recent``
            (last activity first, what a sidebar needs) or ``created`` (creation time, the SDK's).
        transcription: Dictation (``input.transcribe``).
        redis_url: Redis (``REDIS_URL``), where every replica shares users' rate limits;
            None: each replica limits on its own.
    """

    thread_store: str = "127.0.0.1:50051"
    session_api: str = "127.0.0.1:50053"
    agent_runner: str = "127.0.0.1:50052"
    public_url: str = ""
    max_body_bytes: int = 1024 * 1024
    max_attachment_bytes: int = 10 * 1024 * 1024
    rate_per_second: float = 20.0
    rate_burst: int = 60
    cors_origins: tuple[str, ...] = ()
    session_auth_seconds: float = 5.0
    auth_cache_size: int = 10_000
    auth_failures_per_minute: int = 30
    trusted_proxies: tuple[IpNetwork, ...] = ()
    on_disconnect: OnDisconnect = "continue"
    threads_order: ThreadsOrder = "recent"
    transcription: TranscriptionConfig = field(default_factory=TranscriptionConfig)
    redis_url: str | None = None

    @classmethod
    def from_env(cls) -> EdgeConfig:
        """Read ``SWITCHBOARD_THREAD_STORE``, ``SWITCHBOARD_SESSION_API``, ``SWITCHBOARD_AGENT_RUNNER``,
        ``REDIS_URL`` and the ``SWITCHBOARD_EDGE_*`` variables (see the README)."""
        origins = tuple(o.strip() for o in (env_str("SWITCHBOARD_EDGE_CORS_ORIGINS") or "").split(",") if o.strip())
        for origin in origins:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise InvalidArgument(
                    f"SWITCHBOARD_EDGE_CORS_ORIGINS: {origin!r} is not an origin like https://app.example.com"
                )
        return cls(
            thread_store=env_str("SWITCHBOARD_THREAD_STORE") or cls.thread_store,
            session_api=env_str("SWITCHBOARD_SESSION_API") or cls.session_api,
            agent_runner=env_str("SWITCHBOARD_AGENT_RUNNER") or cls.agent_runner,
            public_url=(env_str("SWITCHBOARD_EDGE_PUBLIC_URL") or "").rstrip("/"),
            max_body_bytes=env_int("SWITCHBOARD_EDGE_MAX_BODY_BYTES", cls.max_body_bytes, minimum=1024),
            max_attachment_bytes=env_int("SWITCHBOARD_MAX_ATTACHMENT_BYTES", cls.max_attachment_bytes, minimum=1),
            rate_per_second=env_float("SWITCHBOARD_EDGE_RATE_PER_SECOND", cls.rate_per_second, minimum=0.1),
            rate_burst=env_int("SWITCHBOARD_EDGE_RATE_BURST", cls.rate_burst, minimum=1),
            cors_origins=origins,
            session_auth_seconds=env_float("SWITCHBOARD_EDGE_SESSION_AUTH_SECONDS", cls.session_auth_seconds),
            auth_cache_size=env_int("SWITCHBOARD_AUTH_CACHE_SIZE", cls.auth_cache_size, minimum=0),
            auth_failures_per_minute=env_int(
                "SWITCHBOARD_EDGE_AUTH_FAILURES_PER_MINUTE", cls.auth_failures_per_minute, minimum=0
            ),
            trusted_proxies=_networks("SWITCHBOARD_EDGE_TRUSTED_PROXIES"),
            on_disconnect=_on_disconnect(env_str("SWITCHBOARD_ON_DISCONNECT") or "continue"),
            threads_order=_threads_order(env_str("SWITCHBOARD_THREADS_ORDER") or "recent"),
            transcription=TranscriptionConfig.from_env(),
            redis_url=env_str("REDIS_URL"),
        )


def _networks(name: str) -> tuple[IpNetwork, ...]:
    """Comma-separated addresses and CIDR networks (``10.0.0.0/8, 192.0.2.7, ::1``)."""
    networks: list[IpNetwork] = []
    for entry in (env_str(name) or "").split(","):
        if not entry.strip():
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise InvalidArgument(f"{name}: {entry.strip()!r} is not an address or network like 10.0.0.0/8") from None
    return tuple(networks)


def _on_disconnect(value: str) -> OnDisconnect:
    choice = value.strip().lower()
    if choice == "continue":
        return "continue"
    if choice == "cancel":
        return "cancel"
    raise InvalidArgument(f"SWITCHBOARD_ON_DISCONNECT must be 'continue' or 'cancel', not {value!r}")


def _threads_order(value: str) -> ThreadsOrder:
    choice = value.strip().lower()
    if choice == "recent":
        return "recent"
    if choice == "created":
        return "created"
    raise InvalidArgument(f"SWITCHBOARD_THREADS_ORDER must be 'recent' or 'created', not {value!r}")
