"""Whether a session still accepts its client secret, cached per replica.

A session token is valid only while its session is active. Checking Postgres on
every request would undo the verification cache, so each replica remembers
statuses: "not active" forever (it is final), "active" for a short TTL. A
cancel or end on any replica is published on Redis and forgotten here at once;
when Redis is down the TTL bounds how long another replica may still accept
the token.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from services.session_api.domain import SessionStatus
from switchboard.errors import Unavailable

log = logging.getLogger(__name__)


class SessionLiveness:
    """Cached answers to "is this session active?".

    Args:
        load_status: Reads a session's status from Postgres (None: no such session).
        active_ttl_seconds: How long "active" is believed without asking again.
        max_entries: The bound on remembered sessions.
    """

    def __init__(
        self,
        load_status: Callable[[str], Awaitable[SessionStatus | None]],
        *,
        active_ttl_seconds: float = 5.0,
        max_entries: int = 100_000,
    ) -> None:
        self._load_status = load_status
        self._ttl = active_ttl_seconds
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[bool, float]] = OrderedDict()

    async def is_active(self, session_id: str) -> bool:
        """Whether the session is active."""
        now = time.monotonic()
        entry = self._entries.get(session_id)
        if entry is not None and (not entry[0] or now - entry[1] < self._ttl):
            self._entries.move_to_end(session_id)
            return entry[0]
        try:
            active = await self._load_status(session_id) == "active"
        except Exception as error:
            log.warning("cannot read the status of session %s: %s", session_id, error)
            raise Unavailable("cannot check the session's status right now; retry shortly") from None
        self._remember(session_id, active, now)
        return active

    def mark_active(self, session_id: str) -> None:
        """A session just created here."""
        self._remember(session_id, True, time.monotonic())

    def mark_finished(self, session_id: str) -> None:
        """A session cancelled or ended (here or on another replica)."""
        self._remember(session_id, False, time.monotonic())

    def forget_active(self) -> None:
        """Drop every "active" answer (revocations may have been missed)."""
        for session_id in [sid for sid, (active, _) in self._entries.items() if active]:
            del self._entries[session_id]

    def _remember(self, session_id: str, active: bool, now: float) -> None:
        self._entries[session_id] = (active, now)
        self._entries.move_to_end(session_id)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
