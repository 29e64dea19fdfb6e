"""Pages of a listing and the limits that size them: one shape for every service.

A page is what ChatKit means by one: ``after`` is the cursor of the last item,
set only when there is more. Repositories fetch ``limit + 1`` rows and let
``make_page`` decide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from switchboard.errors import InvalidArgument

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing."""

    items: list[T]
    has_more: bool
    after: str | None


def check_limit(limit: int, *, default: int, maximum: int) -> int:
    """A page size from a request: 0 means the default; negative or past the maximum is refused.

    Raises:
        InvalidArgument: the size is out of range.
    """
    if limit == 0:
        return default
    if limit < 0 or limit > maximum:
        raise InvalidArgument(f"limit must be between 1 and {maximum}, got {limit}")
    return limit


def make_page(rows: list[T], limit: int, cursor: Callable[[T], object]) -> Page[T]:
    """The page of ``rows`` fetched with ``limit + 1``: the extra row only says there is more."""
    items = rows[:limit]
    has_more = len(rows) > limit
    return Page(items=items, has_more=has_more, after=str(cursor(items[-1])) if has_more and items else None)
