"""Configuration from the environment.

Every process is configured only by environment variables and flags. This
module reads the variables shared by all of them; each service adds its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from switchboard.errors import InvalidArgument


def env_str(name: str, default: str | None = None) -> str | None:
    """Return an environment variable, treating an empty value as unset."""
    value = os.environ.get(name, "").strip()
    return value or default


def env_bool(name: str, default: bool) -> bool:
    """A yes/no setting: true/yes/on/1 or false/no/off/0 (unset: ``default``), with a clear error otherwise."""
    raw = env_str(name)
    if raw is None:
        return default
    text = raw.lower()
    if text in ("0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise InvalidArgument(f"{name}={raw!r}: use true or false")


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    """Return a float environment variable, with a clear error when it is malformed."""
    raw = env_str(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidArgument(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise InvalidArgument(f"{name}={raw!r} must be at least {minimum}")
    return value


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    """Return an integer environment variable, with a clear error when it is malformed."""
    raw = env_str(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidArgument(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise InvalidArgument(f"{name}={raw!r} must be at least {minimum}")
    return value


@dataclass(frozen=True)
class StorageConfig:
    """Where Postgres and Redis are.

    Attributes:
        database_url: A libpq URL, or None to start the embedded Postgres.
        redis_url: A redis-py URL, or None to start the embedded Redis.
        data_dir: Where the embedded servers keep their data.
    """

    database_url: str | None
    redis_url: str | None
    data_dir: Path

    @classmethod
    def from_env(cls) -> StorageConfig:
        """Read ``DATABASE_URL``, ``REDIS_URL`` and ``SWITCHBOARD_DATA_DIR``."""
        return cls(
            database_url=env_str("DATABASE_URL"),
            redis_url=env_str("REDIS_URL"),
            data_dir=Path(env_str("SWITCHBOARD_DATA_DIR", ".switchboard") or ".switchboard").resolve(),
        )
