"""What the console's workers tell the app, as past-tense Textual messages."""

from __future__ import annotations

from typing import Literal

from textual.message import Message

from switchboard.principal import Principal
from tui.cards import ActionCard
from tui.data import (
    EscalationInfo,
    LastMessage,
    MetricsSnapshot,
    RunInfo,
    SessionChange,
    SessionInfo,
    ThreadChange,
    ThreadSummary,
)

ConnectionState = Literal["connecting", "connected", "reconnecting", "failed"]


class ConnectionChanged(Message):
    """A service was reached, lost, or refused the operator."""

    def __init__(self, service: str, state: ConnectionState, detail: str = "", attempt: int = 0) -> None:
        super().__init__()
        self.service = service
        self.state = state
        self.detail = detail
        self.attempt = attempt


class SignedIn(Message):
    """session_api accepted the operator token."""

    def __init__(self, principal: Principal) -> None:
        super().__init__()
        self.principal = principal


class SnapshotLoaded(Message):
    """Sessions and escalations were (re)loaded after the watch went live."""

    def __init__(
        self, sessions: list[SessionInfo], escalations: list[EscalationInfo], threads: list[ThreadSummary]
    ) -> None:
        super().__init__()
        self.sessions = sessions
        self.escalations = escalations
        self.threads = threads


class ThreadsLoaded(Message):
    """The org's threads (titles, agents, handlers, activity) were (re)loaded after the thread feed went live."""

    def __init__(self, threads: list[ThreadSummary]) -> None:
        super().__init__()
        self.threads = threads


class LastMessagesLoaded(Message):
    """Threads' newest messages were read from thread_store."""

    def __init__(self, messages: dict[str, LastMessage]) -> None:
        super().__init__()
        self.messages = messages


class RunsLoaded(Message):
    """The active runs of the threads the runs view watches were read from the agent runner.

    Attributes:
        watched: How many threads were asked about.
    """

    def __init__(self, runs: list[RunInfo], watched: int) -> None:
        super().__init__()
        self.runs = runs
        self.watched = watched


class SessionChanged(Message):
    """session_api's watch reported a session or escalation change."""

    def __init__(self, change: SessionChange) -> None:
        super().__init__()
        self.change = change


class ThreadChanged(Message):
    """thread_store's change feed reported a change in one of the org's threads."""

    def __init__(self, change: ThreadChange) -> None:
        super().__init__()
        self.change = change


class ThreadFeedResumed(Message):
    """The thread feed reconnected: open transcripts reload what they may have missed."""


class MetricsLoaded(Message):
    """New figures arrived."""

    def __init__(self, metrics: MetricsSnapshot) -> None:
        super().__init__()
        self.metrics = metrics


class CardDecided(Message):
    """The agent runner answered the operator's decision on an action card.

    Attributes:
        card: The card as it was shown when the operator decided.
        approve: Whether the operator approved it.
        outcome: What came of it: the decision and what the resumed run did, or why nothing was decided.
        refused: Whether nothing was decided (not allowed here, decided already, no longer waiting).
    """

    def __init__(self, card: ActionCard, approve: bool, outcome: str, *, refused: bool) -> None:
        super().__init__()
        self.card = card
        self.approve = approve
        self.outcome = outcome
        self.refused = refused
