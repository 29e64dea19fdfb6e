"""Named SQL queries loaded once from ``.sql`` files.

A file holds queries separated by ``-- name: <query_name>`` lines, in the style
of aiosql and procrastinate. Parameters are asyncpg's ``$1``-style placeholders.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import asyncpg

_NAME = re.compile(r"^--\s*name:\s*(?P<name>[a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


class Queries:
    """The named queries of a folder of ``.sql`` files, as attributes."""

    def __init__(self, queries: dict[str, str]) -> None:
        self._queries = queries

    @classmethod
    def load(cls, folder: Path) -> Queries:
        """Read every ``*.sql`` file in ``folder``.

        Raises:
            ValueError: two queries share a name, or a file has text before its first name.
        """
        queries: dict[str, str] = {}
        for path in sorted(folder.glob("*.sql")):
            text = path.read_text()
            matches = list(_NAME.finditer(text))
            if not matches or text[: matches[0].start()].strip():
                raise ValueError(f"{path}: every query must start with a '-- name: <query>' line")
            for match, following in zip(matches, [*matches[1:], None], strict=True):
                name = match["name"]
                body = text[match.end() : following.start() if following else len(text)].strip()
                if name in queries:
                    raise ValueError(f"{path}: query {name!r} is defined twice")
                queries[name] = body
        return cls(queries)

    def __getattr__(self, name: str) -> str:
        try:
            return self._queries[name]
        except KeyError:
            raise AttributeError(f"no SQL query named {name!r}") from None


async def create_pool(database_url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """Create an asyncpg pool.

    JSON columns travel as text both ways (asyncpg's default): ChatKit JSON is
    passed through untouched, never decoded and re-encoded on the hot path.
    """
    pool: Any = await asyncpg.create_pool(database_url, min_size=min_size, max_size=max_size)
    return pool
