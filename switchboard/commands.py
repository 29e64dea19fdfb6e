"""Shared helpers of the subcommands: where Postgres and Redis are, checked before anything uses them.

The subcommands themselves (their arguments, help and handlers) are declared in
``switchboard.cli`` so ``--help`` imports nothing heavy.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

from switchboard.config import StorageConfig
from switchboard.embedded import EmbeddedUrls, storage_urls
from switchboard.errors import InvalidArgument, Unavailable

CONNECT_TIMEOUT = 3.0


def redact_url(url: str) -> str:
    """The URL without its password, fit to print."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _reason(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:300] or type(error).__name__


def check_database_url(url: str, *, timeout: float = CONNECT_TIMEOUT) -> None:
    """Connect once to ``DATABASE_URL``.

    Raises:
        InvalidArgument: it is not a PostgreSQL URL.
        Unavailable: nothing usable answers there; the message says what to do.
    """
    import psycopg

    shown = redact_url(url)
    scheme = urlsplit(url).scheme if "://" in url else ""
    if scheme not in ("postgres", "postgresql"):
        raise InvalidArgument(
            f"DATABASE_URL={shown!r} is not a postgresql:// URL: write it as "
            "postgresql://user:password@host:5432/dbname, or unset it to use the embedded Postgres"
        )
    try:
        psycopg.connect(url, connect_timeout=max(1, round(timeout)), autocommit=True).close()
    except psycopg.ProgrammingError as error:
        raise InvalidArgument(f"DATABASE_URL={shown!r} is malformed ({_reason(error)}); fix it or unset it") from None
    except psycopg.Error as error:
        raise Unavailable(
            f"cannot connect to DATABASE_URL={shown!r} ({_reason(error)}): start PostgreSQL there, fix DATABASE_URL, "
            "or unset it to use the embedded Postgres"
        ) from None


def check_redis_url(url: str, *, timeout: float = CONNECT_TIMEOUT) -> None:
    """PING ``REDIS_URL`` once.

    Raises:
        InvalidArgument: it is not a Redis URL.
        Unavailable: nothing usable answers there; the message says what to do.
    """
    import redis

    from switchboard.redis_client import cluster_seed_url

    shown = redact_url(url)
    try:
        # A cluster is checked at the node its URL names (any node answers PING).
        seed = cluster_seed_url(url) or url
        client = redis.Redis.from_url(seed, socket_timeout=timeout, socket_connect_timeout=timeout)
    except ValueError as error:
        raise InvalidArgument(
            f"REDIS_URL={shown!r} is not a Redis URL ({_reason(error)}): write it as redis://host:6379/0 "
            "(or rediss://, unix://, redis+cluster://), or unset it to use the embedded Redis"
        ) from None
    try:
        client.ping()
    except redis.RedisError as error:
        raise Unavailable(
            f"cannot reach REDIS_URL={shown!r} ({_reason(error)}): start Redis there, fix REDIS_URL, "
            "or unset it to use the embedded Redis"
        ) from None
    finally:
        client.close()


@contextlib.contextmanager
def storage_from_env() -> Iterator[EmbeddedUrls]:
    """Postgres and Redis from ``DATABASE_URL``/``REDIS_URL`` (each checked with one connection), or
    embedded servers for those unset.

    Raises:
        InvalidArgument, Unavailable: a configured URL is malformed or unreachable (one line, with the next step).
    """
    config = StorageConfig.from_env()
    if config.database_url:
        check_database_url(config.database_url)
    if config.redis_url:
        check_redis_url(config.redis_url)
    with storage_urls(config.database_url, config.redis_url, config.data_dir) as urls:
        yield urls


def migrate(args: argparse.Namespace) -> int:
    """``switchboard migrate``."""
    from switchboard.migrate import apply_migrations

    with storage_from_env() as urls:
        applied = apply_migrations(urls.database_url)
    print(f"applied {len(applied)} migration(s): {', '.join(applied)}" if applied else "database is up to date")
    return 0


def health(args: argparse.Namespace) -> int:
    """``switchboard health``: 0 when the target answers healthy, 1 (saying why) otherwise."""
    from switchboard.config import env_str

    target = args.target or env_str("SWITCHBOARD_HEALTH_TARGET")
    if not target:
        raise InvalidArgument("name what to check: --target grpc://host:port or http://host:port/healthz")
    if target.startswith(("http://", "https://")):
        import httpx

        try:
            status = httpx.get(target, timeout=args.timeout).status_code
        except httpx.HTTPError as error:
            print(f"{target}: {type(error).__name__}: {error}", file=sys.stderr)
            return 1
        print(f"{target}: HTTP {status}")
        return 0 if status == 200 else 1
    if not target.startswith("grpc://"):
        raise InvalidArgument(f"{target!r}: use grpc://host:port or http://host:port/healthz")
    from switchboard.grpc_client import health_status

    said = health_status(target.removeprefix("grpc://"), timeout=args.timeout)
    answered = said in ("SERVING", "NOT_SERVING", "SERVICE_UNKNOWN", "UNKNOWN")  # else the call failed
    print(f"{target}: {said}", file=sys.stdout if answered else sys.stderr)
    return 0 if said == "SERVING" else 1
