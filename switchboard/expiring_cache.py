"""A bounded map whose entries expire: verified tokens, minted tokens, principals of tokens."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class ExpiringCache(Generic[K, V]):
    """Values by key until their own expiry; past ``max_entries`` the least recently used go first.

    Args:
        max_entries: The bound (0 disables caching).
    """

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K, now: float | None = None) -> V | None:
        """The value, unless missing or expired (an expired one is dropped)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= (time.time() if now is None else now):
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: K, value: V, until: float) -> None:
        """Remember ``value`` until ``until`` (epoch seconds)."""
        if self._max <= 0:
            return
        self._entries[key] = (until, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
