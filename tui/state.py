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
from services.thread_store.client import item_from_json
from tui.data import (
    EPOCH,
    ITEM_WRITES,
    THREAD_HANDLER,
    EscalationInfo,
    LastMessage,
    RunInfo,
    SessionChange,
    SessionInfo,
    ThreadChange,
    ThreadSummary,
    handoff_of,
    last_message_of,
    thread_written,
)

StatusFilter = Literal["all", "active", "escalated"]
STATUS_FILTERS: tuple[StatusFilter, ...] = ("all", "active", "escalated")
SortKey = Literal["newest", "activity", "user", "handler", "status"]
SORT_KEYS: tuple[SortKey, ...] = ("newest", "activity", "user", "handler", "status")
DEFAULT_AGENT = "default"
HOSTED_HANDLER = "OpenAI (hosted)"


def handler_label(handoff: Handoff, operator_id: str | None) -> str:
    """Who answers a thread, as the console shows it: ``agent``, ``waiting``, ``you`` or the holding operator's id."""
    if handoff.kind == "human":
        if operator_id is not None and handoff.operator_id == operator_id:
            return "you"
        return handoff.operator_id or "a person"
    return "waiting" if handoff.kind == "waiting" else "agent"


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A session with what the console adds to it: its thread's title, last message and handler, its escalation.

    Attributes:
        escalation: ``""``, ``"open"`` or ``"claimed"``.
        handler: ``""`` (no thread yet), ``"agent"``, ``"waiting"``, ``"you"`` or an operator's id.
        agent: The agent answering the thread (the thread's sticky agent, else the session's; '' when unknown).
        waiting_since: When the user began waiting for a person (handler ``waiting``; None otherwise or unknown).
    """

    session: SessionInfo
    last_activity: datetime
    escalation: str = ""
    handler: str = ""
    title: str = ""
    last_message: LastMessage | None = None
    agent: str = ""
    escalation_reason: str = ""
    waiting_since: datetime | None = None

    def matches(self, text: str, status: StatusFilter) -> bool:
        """Whether the row passes the table's filter: every word in user, title, last message,
        escalation reason, handler, agent, channel, status or session id."""
        if status == "active" and self.session.status != "active":
            return False
        if status == "escalated" and not self.escalation:
            return False
        if not text:
            return True
        return all(word in self.haystack for word in text.lower().split())

    @property
    def haystack(self) -> str:
        """What the filter searches, lower-cased."""
        s = self.session
        last = self.last_message.text if self.last_message is not None else ""
        return (
            f"{s.user_id} {self.title} {last} {self.escalation_reason} {self.handler} {self.agent} "
            f"{s.org_id} {s.channel} {s.status} {s.id} {self.escalation}"
        ).lower()

    def sort_value(self, key: SortKey) -> tuple[object, ...]:
        """The value the table sorts by (ascending; ``newest`` and ``activity`` reverse it)."""
        s = self.session
        if key == "activity":
            return (self.last_activity, s.id)
        if key == "user":
            return (s.user_id, s.created_at, s.id)
        if key == "handler":
            return (self.handler, s.created_at, s.id)
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
        self.threads: dict[str, ThreadSummary] = {}
        self.last_messages: dict[str, LastMessage] = {}
        self._activity: dict[str, datetime] = {}
        self._session_of_thread: dict[str, str] = {}

    # -- loading and changes --------------------------------------------------

    def load(
        self,
        sessions: Iterable[SessionInfo],
        escalations: Iterable[EscalationInfo],
        threads: Iterable[ThreadSummary] = (),
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
        self.load_threads(threads)

    def load_threads(self, threads: Iterable[ThreadSummary]) -> list[str]:
        """Note threads as thread_store lists them (title, agent, handler, activity); the sessions they changed."""
        changed: list[str] = []
        for thread in threads:
            self.threads[thread.id] = thread
            if thread.handler is not None:
                self._note_handler(thread.handler)
            session_id = self._session_of_thread.get(thread.id)
            if session_id is not None:
                self._touch(session_id, thread.updated_at)
                changed.append(session_id)
        return changed

    def load_last_messages(self, messages: dict[str, LastMessage]) -> list[str]:
        """Note threads' newest messages (read from thread_store); the sessions whose rows changed."""
        changed: list[str] = []
        for thread_id, message in messages.items():
            if self._note_last_message(thread_id, message) and (sid := self._session_of_thread.get(thread_id)):
                changed.append(sid)
        return changed

    def _note_last_message(self, thread_id: str, message: LastMessage) -> bool:
        known = self.last_messages.get(thread_id)
        if known is not None and known.item_id != message.item_id and message.at < known.at:
            return False
        self.last_messages[thread_id] = message
        return True

    def threads_without_last_message(self, limit: int) -> list[str]:
        """Threads of listed sessions whose last message the console has not read yet, most recently active first."""
        missing = [
            (self._activity.get(session_id, session.created_at), thread_id)
            for session_id, session in self.sessions.items()
            if (thread_id := session.thread_id) is not None and thread_id not in self.last_messages
        ]
        missing.sort(reverse=True)
        return [thread_id for _at, thread_id in missing[:limit]]

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
        elif (written := thread_written(change)) is not None:
            known = self.threads.get(change.thread_id)
            self.threads[change.thread_id] = ThreadSummary(
                id=written.id,
                title=written.title,
                agent_id=written.agent_id,
                updated_at=written.updated_at,
                handler=known.handler if known is not None else None,
            )
        elif change.type in ITEM_WRITES and change.json:
            message = _message_of(change.json)
            if message is not None:
                self._note_last_message(change.thread_id, message)
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
        pending = [e for e in self.escalations.values() if e.session_id == session_id]
        return self._row(session, pending)

    def _row(self, session: SessionInfo, pending: list[EscalationInfo]) -> SessionRow:
        thread_id = session.thread_id
        statuses = {e.status for e in pending}
        flag = "claimed" if "claimed" in statuses else "open" if "open" in statuses else ""
        oldest = min(pending, key=lambda e: (e.opened_at, e.id)) if pending else None
        handler = ""
        waiting_since = None
        agent = session.agent_id if session.agent_id != DEFAULT_AGENT else ""
        title = ""
        last = None
        if session.hosted:
            handler = HOSTED_HANDLER  # OpenAI runs the conversation; the console reads it only
        elif thread_id is not None:
            handoff = self.handler(thread_id)
            handler = handler_label(handoff, self.operator_id)
            if handoff.kind == "waiting":
                waiting_since = self.handoff_started(thread_id)
            thread = self.threads.get(thread_id)
            if thread is not None:
                title = thread.title
                agent = thread.agent_id or agent
            last = self.last_messages.get(thread_id)
        return SessionRow(
            session=session,
            last_activity=self._activity.get(session.id, session.created_at),
            escalation=flag,
            handler=handler,
            title=title,
            last_message=last,
            agent=agent,
            escalation_reason=oldest.reason if oldest is not None else "",
            waiting_since=waiting_since,
        )

    def rows(self) -> list[SessionRow]:
        """Every session's row."""
        pending: dict[str, list[EscalationInfo]] = {}
        for escalation in self.escalations.values():
            pending.setdefault(escalation.session_id, []).append(escalation)
        return [self._row(session, pending.get(sid, [])) for sid, session in self.sessions.items()]

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

    def last_activity(self, session_id: str) -> datetime:
        """When the session or its thread last changed, as far as the console knows."""
        session = self.sessions[session_id]
        return self._activity.get(session_id, session.created_at)

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


def _message_of(item_json: bytes) -> LastMessage | None:
    """A feed item's JSON as a last message (None: not a message, or not readable)."""
    if b'"user_message"' not in item_json and b'"assistant_message"' not in item_json:
        return None  # most feed items are tool calls, widgets and streamed updates of other kinds
    try:
        item = item_from_json(item_json)
    except ValueError:
        return None
    return last_message_of(item)


@dataclass(frozen=True, slots=True)
class WorkRow:
    """One line of the runs view.

    Attributes:
        key: The run's id, or ``handoff:<thread id>`` for a conversation a person handles.
        state: ``running``, ``queued``, ``waiting_approval``, ``waiting`` (for a person) or ``human``.
        who: The agent of a run, or the operator holding the conversation.
        run_id: '' for a hand-off (there is no run to cancel).
    """

    key: str
    state: str
    thread_id: str
    session_id: str | None
    user_id: str
    who: str
    title: str
    since: datetime | None
    run_id: str = ""


# What the runs view asks the agent runner about (it lists runs per thread only: there is no org-wide list).
RUNS_WINDOW_SECONDS = 15 * 60  # threads with activity this recent
RUNS_MAX_THREADS = 100
_URGENCY = {"waiting": 0, "waiting_approval": 1, "human": 2, "running": 3, "queued": 4}


def threads_to_watch_for_runs(state: ConsoleState, now: datetime) -> list[str]:
    """The threads whose runs the runs view reads: the sessions' threads that were active lately.

    A run writes to its thread at least every second while it runs, and a run waiting for
    an approval wrote its card when it paused; a paused run older than the window is missed
    (the agent runner has no org-wide list of runs to ask instead).
    """
    recent = []
    for session_id, session in state.sessions.items():
        thread_id = session.thread_id
        if thread_id is None:  # a run goes on when its session ends (the browser went away): any status
            continue
        at = state.last_activity(session_id)
        if (now - at).total_seconds() <= RUNS_WINDOW_SECONDS:
            recent.append((at, thread_id))
    recent.sort(reverse=True)
    return [thread_id for _at, thread_id in recent[:RUNS_MAX_THREADS]]


def work_rows(state: ConsoleState, runs: list[RunInfo]) -> list[WorkRow]:
    """The runs view's rows: active runs, and the conversations a person handles or is awaited in."""
    rows: list[WorkRow] = []

    def title_of(thread_id: str) -> str:
        thread = state.threads.get(thread_id)
        return thread.title if thread is not None else ""

    for run in runs:
        rows.append(
            WorkRow(
                key=run.id,
                state=run.status,
                thread_id=run.thread_id,
                session_id=run.session_id or state.session_of_thread(run.thread_id),
                user_id=run.user_id,
                who=run.agent_id or "agent",
                title=title_of(run.thread_id),
                since=run.started_at or run.created_at,
                run_id=run.id,
            )
        )
    for session in state.sessions.values():
        thread_id = session.thread_id
        if thread_id is None:
            continue
        handoff = state.handler(thread_id)
        if handoff.kind == "agent":
            continue
        rows.append(
            WorkRow(
                key=f"handoff:{thread_id}",
                state="human" if handoff.kind == "human" else "waiting",
                thread_id=thread_id,
                session_id=session.id,
                user_id=session.user_id,
                who=handler_label(handoff, state.operator_id) if handoff.kind == "human" else "",
                title=title_of(thread_id),
                since=state.handoff_started(thread_id),
            )
        )
    return sorted(rows, key=lambda r: (_URGENCY.get(r.state, 9), r.since is None, r.since or EPOCH, r.key))
