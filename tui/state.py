"""The console's model of the org: sessions, pending escalations, who answers each thread, and last activity.

Pure Python, no Textual: feeds apply changes here and widgets read the result.
Every change is an upsert by id, so applying one twice (a snapshot that already
holds it, a replayed feed event) is harmless.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from services.agent_runner.client import Handoff
from tui.data import THREAD_HANDLER, EscalationInfo, SessionChange, SessionInfo, ThreadChange, handoff_of

StatusFilter = Literal["all", "active", "escalated"]
STATUS_FILTERS: tuple[StatusFilter, ...] = ("all", "active", "escalated")
SortKey = Literal["newest", "activity", "user", "agent", "status"]
SORT_KEYS: tuple[SortKey, ...] = ("newest", "activity", "user", "agent", "status")


def handler_label(handoff: Handoff, operator_id: str | None) -> str:
    """Who answers a thread, as the console shows it: ``agent``, ``waiting``, ``you`` or the holding operator's id."""
    if handoff.kind == "human":
        if operator_id is not None and handoff.operator_id == operator_id:
            return "you"
        return handoff.operator_id or "a person"
    return "waiting" if handoff.kind == "waiting" else "agent"


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A session with what the console adds to it: last activity, escalation flag and its thread's handler."""

    session: SessionInfo
    last_activity: datetime
    escalation: str  # "", "open" or "claimed"
    handler: str = ""  # "" (no thread yet), "agent", "waiting", "you" or an operator's id

    def matches(self, text: str, status: StatusFilter) -> bool:
        """Whether the row passes the table's filter."""
        if status == "active" and self.session.status != "active":
            return False
        if status == "escalated" and not self.escalation:
            return False
        if not text:
            return True
        s = self.session
        haystack = f"{s.user_id} {s.org_id} {s.agent_id} {s.channel} {s.status} {s.id} {self.escalation} {self.handler}"
        haystack = haystack.lower()
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
    """Sessions, pending escalations, thread handlers and activity of the operator's org.

    Attributes:
        operator_id: The signed-in operator (their threads read "you").
        handlers: Each thread's handler as the change feed or the operator's own hand-off calls last reported it.
    """

    def __init__(self) -> None:
        self.operator_id: str | None = None
        self.sessions: dict[str, SessionInfo] = {}
        self.escalations: dict[str, EscalationInfo] = {}
        self.handlers: dict[str, Handoff] = {}
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
        """Note activity (and a new handler) in a thread; returns the id of the session it belongs to, if known."""
        if change.type == THREAD_HANDLER and (handoff := handoff_of(change)) is not None:
            self._note_handler(handoff)
        session_id = self._session_of_thread.get(change.thread_id)
        if session_id is None:
            return None
        self._touch(session_id, change.at)
        return session_id

    def apply_handoff(self, handoff: Handoff) -> str | None:
        """Note a thread's handler (a hand-off call's answer); returns the id of the session it belongs to, if known."""
        self._note_handler(handoff)
        return self._session_of_thread.get(handoff.thread_id)

    def _note_handler(self, handoff: Handoff) -> None:
        # A call's answer and the feed's event of the same change may arrive in either
        # order, and after a later change: the newest (by when the handler changed) wins.
        known = self.handlers.get(handoff.thread_id)
        if known is not None and known.since is not None and handoff.since is not None and handoff.since < known.since:
            return
        self.handlers[handoff.thread_id] = handoff

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
        thread_id = session.thread_id
        return SessionRow(
            session=session,
            last_activity=self._activity.get(session_id, session.created_at),
            escalation=self.escalation_flag(session_id),
            handler=handler_label(self.handler(thread_id), self.operator_id) if thread_id else "",
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
        pending = [e for e in self.escalations.values() if e.thread_id == thread_id]
        return min(pending, key=lambda e: (e.opened_at, e.id)) if pending else None

    def session_of_thread(self, thread_id: str) -> str | None:
        """The id of the session a thread belongs to, if known."""
        return self._session_of_thread.get(thread_id)

    def handler(self, thread_id: str) -> Handoff:
        """Who answers a thread now.

        What the feed or a hand-off call reported wins. Before either has spoken
        about a thread, its pending escalation stands for it (open: waiting for a
        person; claimed: held by the claimer), since every hand-off has one.
        """
        known = self.handlers.get(thread_id)
        if known is not None:
            return known
        escalation = self.escalation_for_thread(thread_id)
        if escalation is None:
            return Handoff(thread_id=thread_id, kind="agent")
        return Handoff(
            thread_id=thread_id,
            kind="human" if escalation.status == "claimed" else "waiting",
            operator_id=escalation.claimed_by or None,
            escalation_id=escalation.id,
            since=escalation.opened_at,
            session_id=escalation.session_id,
        )

    def handoff_started(self, thread_id: str) -> datetime | None:
        """When a thread's current hand-off began (None: the agent answers it).

        That is when its escalation opened, if the console knows it: the user's
        messages while they waited for a person matter as much as those after the take-over.
        """
        handoff = self.handler(thread_id)
        if handoff.kind == "agent":
            return None
        starts = [handoff.since] if handoff.since is not None else []
        escalation = self.escalation_for_thread(thread_id)
        if escalation is not None and handoff.escalation_id in (None, escalation.id):
            starts.append(escalation.opened_at)
        return min(starts) if starts else None

    def counts(self) -> tuple[int, int]:
        """Active sessions and pending escalations."""
        active = sum(1 for s in self.sessions.values() if s.status == "active")
        return active, len(self.escalations)
