"""Database migrations: numbered SQL files applied with yoyo-migrations.

``switchboard migrate`` applies them, and every service applies them at
start-up; yoyo takes a lock so concurrent starts do not race.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from yoyo import get_backend, read_migrations

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def yoyo_url(database_url: str) -> str:
    """Turn a libpq URL into the one yoyo wants for psycopg 3."""
    parts = urlsplit(database_url)
    if parts.scheme not in ("postgres", "postgresql", "postgresql+psycopg"):
        raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got scheme {parts.scheme!r}")
    return urlunsplit(("postgresql+psycopg", *parts[1:]))


def apply_migrations(database_url: str) -> list[str]:
    """Apply every pending migration.

    Returns:
        The ids of the migrations applied now (empty when up to date).
    """
    backend = get_backend(yoyo_url(database_url))
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with backend.lock():
        pending = backend.to_apply(migrations)
        applied = [m.id for m in pending]
        if applied:
            log.info("applying migrations: %s", ", ".join(applied))
            backend.apply_migrations(pending)
    backend.connection.close()
    return applied
