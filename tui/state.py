"""The console's model of the org: sessions, pending escalations and last activity.

Pure Python, no Textual: feeds apply changes here and widgets read the result.
Every change is an upsert by id, so applying one twice (a snapshot that already
holds it, a replayed feed event) is harmless.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from tui.data import EscalationInfo, SessionChange, SessionInfo, ThreadChange

StatusFilter = Literal["all", "active", "escalated"]
STATUS_FILTERS: tuple[StatusFilter, ...] = ("all", "active", "escalated")
SortKey = Literal["newest", "activity", "user", "agent", "status"]
SORT_KEYS: tuple[SortKey, ...] = ("newest", "activity", "user", "agent", "status")


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A session with what the console adds to it: last activity and escalation flag."""

    session: SessionInfo
    last_activity: datetime
    escalation: str  # "", "open" or "claimed"

    def matches(self, text: str, status: StatusFilter) -> bool:
        """Whether the row passes the table's filter."""
        if status == "active" and self.session.status != "active":
            return False
        if status == "escalated" and not self.escalation:
            return False
        if not text:
            return True
        s = self.session
        haystack = f"{s.user_id} {s.org_id} {s.agent_id} {s.channel} {s.status} {s.id} {self.escalation}".lower()
        return all(word in haystack for word in text.lower().split())

    def sort_value(self, key: SortKey) -> tuple[object, ...]:
        """The value the table sorts by (ascending; ``newest`` and ``activity`` reverse it)."""
        s = self.session
        if key == "activity":
            return (self.last_activity, s.id)
        if key == "user":
            return (s.user_id, s.created_at, s.id)
        if key == "agent":
            return (s.agent_id, s.created_at, s.id)
        if key == "status":
            return (s.status, s.created_at, s.id)
        return (s.created_at, s.id)


class ConsoleState:
    """Sessions, pending escalations and activity of the operator's org."""

    def __init__(self) -> None:
        self.sessions: dict[str, SessionInfo] = {}
        self.escalations: dict[str, EscalationInfo] = {}
        self._activity: dict[str, datetime] = {}
        self._session_of_thread: dict[str, str] = {}

    # -- loading and changes --------------------------------------------------

    def load(
        self,
        sessions: Iterable[SessionInfo],
        escalations: Iterable[EscalationInfo],
        thread_activity: dict[str, datetime] | None = None,
    ) -> None:
        """Replace everything with a fresh snapshot (after connecting or reconnecting)."""
        known_activity = self._activity
        self.sessions, self.escalations = {}, {}
        self._activity, self._session_of_thread = {}, {}
        for session in sessions:
            self._put_session(session)
            if session.id in known_activity:
                self._touch(session.id, known_activity[session.id])
        for escalation in escalations:
            if escalation.pending:
                self.escalations[escalation.id] = escalation
        for thread_id, at in (thread_activity or {}).items():
            session_id = self._session_of_thread.get(thread_id)
            if session_id is not None:
                self._touch(session_id, at)

    def apply_session_change(self, change: SessionChange) -> str | None:
        """Apply a watch change; returns the id of the session whose row changed, if any."""
        if change.session is not None:
            self._put_session(change.session)
            self._touch(change.session.id, change.at)
            return change.session.id
        if change.escalation is not None:
            escalation = change.escalation
            if escalation.pending:
                self.escalations[escalation.id] = escalation
            else:
                self.escalations.pop(escalation.id, None)
            self._touch(escalation.session_id, change.at)
            return escalation.session_id if escalation.session_id in self.sessions else None
        return None

    def apply_thread_change(self, change: ThreadChange) -> str | None:
        """Note activity in a thread; returns the id of the session it belongs to, if known."""
        session_id = self._session_of_thread.get(change.thread_id)
        if session_id is None:
            return None
        self._touch(session_id, change.at)
        return session_id

    def _put_session(self, session: SessionInfo) -> None:
        self.sessions[session.id] = session
        for thread_id in session.thread_ids:
            self._session_of_thread[thread_id] = session.id
        self._touch(session.id, session.ended_at or session.created_at)

    def _touch(self, session_id: str, at: datetime) -> None:
        current = self._activity.get(session_id)
        if current is None or at > current:
            self._activity[session_id] = at

    # -- reading --------------------------------------------------------------

    def row(self, session_id: str) -> SessionRow | None:
        """The table row of a session."""
        session = self.sessions.get(session_id)
        if session is None:
            return None
        return SessionRow(
            session=session,
            last_activity=self._activity.get(session_id, session.created_at),
            escalation=self.escalation_flag(session_id),
        )

    def rows(self) -> list[SessionRow]:
        """Every session's row."""
        return [row for sid in self.sessions if (row := self.row(sid)) is not None]

    def escalation_flag(self, session_id: str) -> str:
        """``claimed`` or ``open`` when the session has a pending escalation, else empty."""
        statuses = {e.status for e in self.escalations.values() if e.session_id == session_id}
        if "claimed" in statuses:
            return "claimed"
        return "open" if "open" in statuses else ""

    def pending_escalations(self) -> list[EscalationInfo]:
        """Open and claimed escalations, oldest first."""
        return sorted(self.escalations.values(), key=lambda e: (e.opened_at, e.id))

    def escalation_for_thread(self, thread_id: str) -> EscalationInfo | None:
        """The oldest pending escalation of a thread."""
        for escalation in self.pending_escalations():
            if escalation.thread_id == thread_id:
                return escalation
        return None

    def counts(self) -> tuple[int, int]:
        """Active sessions and pending escalations."""
        active = sum(1 for s in self.sessions.values() if s.status == "active")
        return active, len(self.escalations)
