"""The operator console: the app routes what the feeds report to the screens that show it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.widgets import Input

from switchboard.errors import Unavailable
from switchboard.principal import Principal
from tui import feeds
from tui.backend import AGENT_RUNNER, REFUSED_DECISIONS, ConsoleBackend
from tui.cards import ActionCard
from tui.data import EscalationInfo
from tui.keys import KeyBindingsProvider
from tui.messages import (
    CardDecided,
    ConnectionChanged,
    MetricsLoaded,
    SessionChanged,
    SignedIn,
    SnapshotLoaded,
    ThreadChanged,
    ThreadFeedResumed,
)
from tui.screens.conversation import ConversationScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.dialogs import HelpScreen, ResolveScreen
from tui.state import ConsoleState
from tui.widgets.escalation_queue import EscalationQueue
from tui.widgets.sessions_table import SessionsTable
from tui.widgets.status_line import ServiceStatus, StatusLine
from tui.widgets.transcript import Transcript


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


class ConsoleApp(App[None]):
    """Watch live sessions, work escalations and take over conversations.

    Args:
        backend: How to reach session_api and thread_store.
        clock: The current time (snapshot tests pass a fixed one).
        metrics_interval: Seconds between metrics refreshes.
    """

    TITLE = "Switchboard console"
    CSS_PATH = Path(__file__).with_name("console.tcss")
    COMMANDS = App.COMMANDS | {KeyBindingsProvider}
    BINDINGS = [
        Binding("question_mark", "help", "Help", key_display="?", tooltip="Show every key binding"),
        Binding("q", "quit", "Quit", tooltip="Quit the console"),
    ]

    def __init__(
        self, backend: ConsoleBackend, *, clock: Callable[[], datetime] = utc_now, metrics_interval: float = 5.0
    ) -> None:
        super().__init__()
        self.backend = backend
        self.clock = clock
        self.metrics_interval = metrics_interval
        self.state = ConsoleState()
        self.principal: Principal | None = None
        self.connections: dict[str, ServiceStatus] = {name: ServiceStatus() for name in backend.targets}
        self._signed_in = asyncio.Event()
        self.deciding: set[str] = set()  # ids of the action cards whose decision is on its way
        self.dashboard = DashboardScreen(self.state, clock=clock, services=list(backend.targets))

    # -- lifecycle ------------------------------------------------------------

    async def on_mount(self) -> None:
        await self.push_screen(self.dashboard)
        self.dashboard.sessions_table.focus()
        self.follow_sessions()
        self.follow_threads()
        self.poll_metrics()

    async def on_unmount(self) -> None:
        await self.backend.close()

    @work(exclusive=True, group="session-feed", exit_on_error=False)
    async def follow_sessions(self) -> None:
        """Sign in and follow the org's sessions and escalations (reconnecting for ever)."""
        await feeds.follow_sessions(self.backend, self.post_message, self._signed_in)

    @work(exclusive=True, group="thread-feed", exit_on_error=False)
    async def follow_threads(self) -> None:
        """Follow the org's thread changes (reconnecting for ever)."""
        await feeds.follow_threads(self.backend, self.post_message, self._signed_in)

    @work(exclusive=True, group="metrics", exit_on_error=False)
    async def poll_metrics(self) -> None:
        """Refresh the metrics now and then."""
        await feeds.poll_metrics(self.backend, self.post_message, self._signed_in, self.metrics_interval)

    # -- what the feeds report ------------------------------------------------

    def on_signed_in(self, message: SignedIn) -> None:
        self.principal = message.principal
        self.sub_title = f"{message.principal.user_id} @ {message.principal.org_id}"
        for line in self._status_lines():
            line.set_operator(self.sub_title)

    def on_connection_changed(self, message: ConnectionChanged) -> None:
        before = self.connections.get(message.service, ServiceStatus())
        self.connections[message.service] = ServiceStatus(message.state, message.detail, message.attempt)
        for line in self._status_lines():
            line.set_connection(message.service, message.state, message.detail, message.attempt)
        if message.state == "reconnecting" and before.state != "reconnecting":
            self.notify(f"{message.service} lost: {message.detail}. Reconnecting…", severity="warning")
        elif message.state == "connected" and before.state == "reconnecting":
            self.notify(f"{message.service} is back", severity="information")
        elif message.state == "failed":
            self.notify(message.detail, title="cannot sign in", severity="error", timeout=30)

    def on_snapshot_loaded(self, message: SnapshotLoaded) -> None:
        self.state.load(message.sessions, message.escalations, message.thread_activity)
        self.dashboard.sessions_table.show_rows()
        self.dashboard.queue.show_all(self.state.pending_escalations())
        self._after_change()
        for screen in self._conversations():
            screen.refresh_info()

    def on_session_changed(self, message: SessionChanged) -> None:
        change = message.change
        session_id = self.state.apply_session_change(change)
        if session_id is not None and (row := self.state.row(session_id)) is not None:
            self.dashboard.sessions_table.upsert_row(row)
        if change.escalation is not None:
            self.dashboard.queue.upsert(change.escalation)
        for screen in self._conversations():
            if change.session is not None:
                screen.session_changed(change.session)
            else:
                screen.refresh_info()
        self._after_change()

    def on_thread_changed(self, message: ThreadChanged) -> None:
        session_id = self.state.apply_thread_change(message.change)
        if session_id is not None and (row := self.state.row(session_id)) is not None:
            self.dashboard.sessions_table.upsert_row(row)
        for screen in self._conversations():
            screen.apply_thread_change(message.change)

    def on_thread_feed_resumed(self, _message: ThreadFeedResumed) -> None:
        for screen in self._conversations():
            screen.action_reload()

    def on_metrics_loaded(self, message: MetricsLoaded) -> None:
        active, escalations = self.state.counts()
        self.dashboard.metrics.show(message.metrics, active=active, escalations=escalations)

    def _after_change(self) -> None:
        active, escalations = self.state.counts()
        for line in self._status_lines():
            line.set_counts(active, escalations)

    def _status_lines(self) -> list[StatusLine]:
        return [line for screen in self.screen_stack for line in screen.query(StatusLine)]

    def _conversations(self) -> list[ConversationScreen]:
        return [screen for screen in self.screen_stack if isinstance(screen, ConversationScreen)]

    def copy_status_to(self, line: StatusLine) -> None:
        """Give a new screen's status line what the console knows."""
        for service, status in self.connections.items():
            line.set_connection(service, status.state, status.detail, status.attempt)
        if self.sub_title:
            line.set_operator(self.sub_title)
        line.set_counts(*self.state.counts())

    # -- operator actions -----------------------------------------------------

    def on_sessions_table_session_opened(self, message: SessionsTable.SessionOpened) -> None:
        session = self.state.sessions.get(message.session_id)
        if session is not None:
            self.push_screen(ConversationScreen(thread_id=session.thread_id, session_id=session.id))

    def on_escalation_queue_action_requested(self, message: EscalationQueue.ActionRequested) -> None:
        escalation = self.state.escalations.get(message.escalation_id)
        if escalation is None:
            return
        if message.action == "claim":
            self.claim_escalation(escalation.id)
        elif message.action == "resolve":
            self.ask_and_resolve(escalation.id)
        elif message.action == "reply" and (problem := self.reply_problem(escalation.thread_id)):
            self.notify(problem, severity="warning")
        else:
            self.push_screen(
                ConversationScreen(
                    thread_id=escalation.thread_id,
                    session_id=escalation.session_id,
                    reply=message.action == "reply",
                )
            )

    def holder_label(self, escalation: EscalationInfo) -> str:
        """`` by you`` / `` by <operator>`` for a claimed escalation."""
        if not escalation.claimed_by:
            return ""
        mine = self.principal is not None and escalation.claimed_by == self.principal.user_id
        return " by you" if mine else f" by {escalation.claimed_by}"

    def reply_problem(self, thread_id: str) -> str | None:
        """Why the operator may not reply into a thread now (None: they may)."""
        escalation = self.state.escalation_for_thread(thread_id)
        if escalation is None or self.principal is None:
            return None
        if escalation.claimed_by != self.principal.user_id:
            if escalation.claimed_by:
                return f"{escalation.claimed_by} holds this escalation"
            return "claim the escalation first (c)"
        return None

    @work(group="actions", exit_on_error=False)
    async def claim_escalation(self, escalation_id: str) -> None:
        """Claim an escalation."""
        try:
            escalation = await self.backend.claim(escalation_id)
        except Exception as error:
            self.notify(f"could not claim: {feeds.describe(error)}", severity="error")
            return
        self._escalation_updated(escalation)
        self.notify(f"claimed: {escalation.reason}")

    def ask_and_resolve(self, escalation_id: str) -> None:
        """Ask for a resolution note, then resolve."""
        escalation = self.state.escalations.get(escalation_id)
        if escalation is None:
            return
        if self.principal is not None and escalation.claimed_by != self.principal.user_id:
            self.notify(
                "only the operator holding an escalation can resolve it; claim it first (c)", severity="warning"
            )
            return

        def resolve(note: str | None) -> None:
            if note is not None:
                self.resolve_escalation(escalation_id, note)

        self.push_screen(ResolveScreen(f"{escalation.user_id}: {escalation.reason}"), resolve)

    @work(group="actions", exit_on_error=False)
    async def resolve_escalation(self, escalation_id: str, resolution: str) -> None:
        """Resolve an escalation this operator holds."""
        try:
            escalation = await self.backend.resolve(escalation_id, resolution)
        except Exception as error:
            self.notify(f"could not resolve: {feeds.describe(error)}", severity="error")
            return
        self._escalation_updated(escalation)
        self.notify("resolved; the conversation is back with the agent")

    @work(group="actions", exit_on_error=False)
    async def send_reply(self, thread_id: str, text: str) -> None:
        """Write the operator's reply into the thread."""
        try:
            item = await self.backend.reply(thread_id, text)
        except Exception as error:
            self.notify(f"reply not sent: {feeds.describe(error)}", severity="error")
            return
        for screen in self._conversations():
            if screen.thread_id == thread_id and screen.loaded:
                screen.query_one(Transcript).upsert(item)

    def decide_card(self, card: ActionCard, approve: bool) -> None:
        """Approve or reject an action card for the user (once: a second key press waits for the first)."""
        if card.id in self.deciding:
            self.notify(f"the decision on “{card.summary}” is on its way", markup=False)
            return
        self.send_decision(card, approve)

    @work(exclusive=True, group="approvals", exit_on_error=False)
    async def send_decision(self, card: ActionCard, approve: bool) -> None:
        """Send the decision to the agent runner and wait until the run it resumes has ended.

        A newer decision stops the wait for an older one: that run goes on in the
        agent runner, and its card shows the decision through the thread feed.
        """
        # Marked here, not by the caller: a worker cancelled before it started sent nothing and marks nothing.
        self.deciding.add(card.id)
        try:
            outcome = await self.backend.decide_card(card.thread_id, card.id, approve)
        except Exception as error:
            if isinstance(error, Unavailable):
                await self.backend.reset(AGENT_RUNNER)  # the next decision dials afresh
            verb = "approve" if approve else "reject"
            self.notify(f"could not {verb} “{card.summary}”: {feeds.describe(error)}", severity="error", markup=False)
            return
        finally:
            self.deciding.discard(card.id)
        self.post_message(CardDecided(card, approve, outcome, refused=outcome in REFUSED_DECISIONS))

    def on_card_decided(self, message: CardDecided) -> None:
        card = message.card
        if not message.refused:
            self.notify(f"“{card.summary}” {message.outcome}", title="action card", markup=False)
            return
        verb = "approve" if message.approve else "reject"
        self.notify(
            f"could not {verb} “{card.summary}”: {message.outcome}",
            title="action card",
            severity="warning",
            markup=False,
        )
        for screen in self._conversations():  # show the card as it really is now
            if screen.thread_id == card.thread_id:
                screen.action_reload()

    def _escalation_updated(self, escalation: EscalationInfo) -> None:
        # The watch reports it too; applying the reply now makes the console feel instant.
        if escalation.pending:
            self.state.escalations[escalation.id] = escalation
        else:
            self.state.escalations.pop(escalation.id, None)
        self.dashboard.queue.upsert(escalation)
        if (row := self.state.row(escalation.session_id)) is not None:
            self.dashboard.sessions_table.upsert_row(row)
        for screen in self._conversations():
            screen.refresh_info()
        self._after_change()

    def action_help(self) -> None:
        owners: list[tuple[str, Any]] = [
            ("Everywhere", ConsoleApp),
            ("Main screen", DashboardScreen),
            ("Sessions", SessionsTable),
            ("Escalation queue", EscalationQueue),
            ("Conversation", ConversationScreen),
            ("Transcript", Transcript),
        ]
        self.push_screen(HelpScreen(owners))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Typing "q" or "?" in a text box must not quit or open the help.
        return not (action in ("quit", "help") and isinstance(self.focused, Input))


__all__ = ["ConsoleApp"]
