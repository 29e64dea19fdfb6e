"""The operator console: the app routes what the feeds report to the screens that show it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.widgets import Input

from services.agent_runner.client import Handoff
from switchboard.errors import Unavailable
from switchboard.principal import Principal
from tui import feeds
from tui.backend import AGENT_RUNNER, REFUSED_DECISIONS, ConsoleBackend
from tui.cards import ActionCard
from tui.data import SessionInfo
from tui.keys import KeyBindingsProvider, SessionsProvider
from tui.logs import ConsoleLogging
from tui.messages import (
    CardDecided,
    ConnectionChanged,
    LastMessagesLoaded,
    MetricsLoaded,
    RunsLoaded,
    SessionChanged,
    SignedIn,
    SnapshotLoaded,
    ThreadChanged,
    ThreadFeedResumed,
    ThreadsLoaded,
)
from tui.screens.conversation import ConversationScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.dialogs import ConfirmScreen, HandBackScreen, HelpScreen
from tui.screens.hosted import HostedConversationScreen
from tui.screens.logs import LogScreen
from tui.state import ConsoleState, WorkRow, threads_to_watch_for_runs, work_rows
from tui.widgets.escalation_queue import EscalationQueue
from tui.widgets.runs_table import RunsTable
from tui.widgets.sessions_table import SessionsTable
from tui.widgets.status_line import ServiceStatus, StatusLine
from tui.widgets.transcript import Transcript

RUNS_POLL_SECONDS = 2.0  # while the runs tab is shown


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


class ConsoleApp(App[None]):
    """Watch live sessions, work escalations and take over conversations.

    Args:
        backend: How to reach session_api and thread_store.
        clock: The current time (snapshot tests pass a fixed one).
        metrics_interval: Seconds between metrics refreshes.
        log_file: Where log records go while the console runs (None: only the log panel keeps them).
    """

    TITLE = "Switchboard console"
    CSS_PATH = Path(__file__).with_name("console.tcss")
    # The console's own commands and its conversations; not Textual's system commands (themes, screenshots).
    COMMANDS = {KeyBindingsProvider, SessionsProvider}
    BINDINGS = [
        Binding("question_mark", "help", "Help", key_display="?", tooltip="Show every key binding"),
        Binding("L", "show_log", "Log", tooltip="Show the console's log (it never prints over the screen)"),
        Binding("q", "quit", "Quit", tooltip="Quit the console"),
    ]

    def __init__(
        self,
        backend: ConsoleBackend,
        *,
        clock: Callable[[], datetime] = utc_now,
        metrics_interval: float = 5.0,
        log_file: Path | None = None,
    ) -> None:
        super().__init__()
        self.logs = ConsoleLogging(log_file)
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

    def on_load(self) -> None:
        # Before the terminal turns into the screen: from here on no log line may reach it.
        self.logs.start()

    async def on_mount(self) -> None:
        if self.logs.error:
            self.notify(f"{self.logs.error}; the log panel (L) still shows the records", severity="warning")
        await self.push_screen(self.dashboard)
        self.dashboard.sessions_table.focus()
        self.follow_sessions()
        self.follow_threads()
        self.poll_metrics()
        self.set_interval(RUNS_POLL_SECONDS, self._poll_runs)

    async def on_unmount(self) -> None:
        try:
            await self.backend.close()
        finally:
            self.logs.stop()

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
        self.state.operator_id = message.principal.user_id
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
        self.state.load(message.sessions, message.escalations, message.threads)
        self.dashboard.sessions_table.show_rows()
        self.load_last_messages()
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

    def on_threads_loaded(self, message: ThreadsLoaded) -> None:
        self._rows_changed(self.state.load_threads(message.threads))
        self.load_last_messages()

    def on_last_messages_loaded(self, message: LastMessagesLoaded) -> None:
        self._rows_changed(self.state.load_last_messages(message.messages))

    def _rows_changed(self, session_ids: list[str]) -> None:
        table = self.dashboard.sessions_table
        for session_id in dict.fromkeys(session_ids):
            if (row := self.state.row(session_id)) is not None:
                table.upsert_row(row)

    @work(exclusive=True, group="last-messages", exit_on_error=False)
    async def load_last_messages(self) -> None:
        """Read the last message of the sessions' threads the console has not seen one of yet."""
        await feeds.load_last_messages(self.backend, self.post_message, self.state.threads_without_last_message)

    # -- the runs view --------------------------------------------------------
    # The agent runner lists runs per thread (ListRuns), not per org: the view asks about the
    # threads of active sessions with recent activity (tui.state.threads_to_watch_for_runs),
    # and only while it is shown.

    def _poll_runs(self) -> None:
        if self.screen is self.dashboard and self.dashboard.active_tab == "runs":
            self.load_runs()

    def on_dashboard_screen_runs_shown(self, _message: DashboardScreen.RunsShown) -> None:
        self.load_runs()

    @work(exclusive=True, group="runs", exit_on_error=False)
    async def load_runs(self) -> None:
        """Read the active runs of the threads worth asking about."""
        if self.principal is None:
            return
        threads = threads_to_watch_for_runs(self.state, self.clock())
        try:
            runs = await self.backend.load_runs(threads)
        except Exception as error:
            if isinstance(error, Unavailable):
                await self.backend.reset(AGENT_RUNNER)
            self.dashboard.say_runs(
                f"cannot read the runs: {feeds.describe(error)} (is --agent-runner right?); "
                f"trying again every {RUNS_POLL_SECONDS:.0f} s. Hand-offs below come from the thread feed."
            )
            self.dashboard.runs.show(work_rows(self.state, []))
            return
        self.post_message(RunsLoaded(runs, len(threads)))

    def on_runs_loaded(self, message: RunsLoaded) -> None:
        if not self.dashboard.is_mounted:  # the console is closing
            return
        rows = work_rows(self.state, message.runs)
        self.dashboard.runs.show(rows)
        handoffs = sum(1 for row in rows if not row.run_id)
        self.dashboard.say_runs(
            f"{len(message.runs)} active runs, {handoffs} with a person · runs of the {message.watched} threads "
            "active in the last 15 min · x cancels, enter opens"
        )

    def on_runs_table_action_requested(self, message: RunsTable.ActionRequested) -> None:
        row = message.row
        if message.action == "open":
            self.push_screen(ConversationScreen(thread_id=row.thread_id, session_id=row.session_id))
            return
        if not row.run_id:
            self.notify(
                f"{row.user_id}'s conversation is with a person: there is no run to cancel (b hands it back)",
                severity="warning",
                markup=False,
            )
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.cancel_run(row)

        what = "answer" if row.state == "running" else "queued answer" if row.state == "queued" else "paused answer"
        question = f"Cancel {row.user_id}'s {what} ({row.run_id})? The part already written stays."
        self.push_screen(ConfirmScreen(question), answered)

    @work(group="actions", exit_on_error=False)
    async def cancel_run(self, row: WorkRow) -> None:
        """Ask the agent runner to stop a run, then read the runs again."""
        try:
            stopped = await self.backend.cancel_run(row.run_id)
        except Exception as error:
            await self._runner_refused(f"could not cancel {row.user_id}'s run", error)
            return
        self.notify(f"cancelled {row.user_id}'s run ({', '.join(stopped) or row.run_id})", markup=False)
        self.load_runs()

    def on_thread_feed_resumed(self, _message: ThreadFeedResumed) -> None:
        for screen in self._conversations():
            screen.action_reload()

    def on_metrics_loaded(self, message: MetricsLoaded) -> None:
        active, escalations = self.state.counts()
        # Figures that arrive while the console closes find the dashboard's widgets gone: dropped.
        with contextlib.suppress(NoMatches):
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
    # The agent runner enforces the hand-off's rules (who holds a thread, who may
    # reply); the console asks, shows the answer, and says clearly why it was refused.

    def on_sessions_table_action_requested(self, message: SessionsTable.ActionRequested) -> None:
        session = self.state.sessions.get(message.session_id)
        if session is None:
            return
        thread_id = session.thread_id
        if message.action == "open":
            self.open_session(session.id)
        elif message.action == "cancel":
            self.ask_and_cancel_session(session)
        elif session.hosted:
            self.notify(
                f"{session.user_id}'s session is hosted by OpenAI: its conversation can be read, not taken over",
                severity="warning",
                markup=False,
            )
        elif thread_id is None:
            self.notify(f"{session.user_id}'s session has no conversation yet", severity="warning", markup=False)
        elif message.action == "take_over":
            self.take_over_thread(thread_id)
        else:
            self.ask_and_hand_back(thread_id)

    def ask_and_cancel_session(self, session: SessionInfo) -> None:
        """Ask, then cancel a session (any of the org's, hosted ones included)."""
        if session.status != "active":
            self.notify(f"{session.user_id}'s session is {session.status} already", severity="warning", markup=False)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.cancel_session(session)

        what = "it is cancelled at OpenAI too" if session.hosted else "its answers stop; what they wrote stays"
        question = f"Cancel {session.user_id}'s session ({session.id})? Its client secret stops working and {what}."
        self.push_screen(ConfirmScreen(question), answered)

    @work(group="actions", exit_on_error=False)
    async def cancel_session(self, session: SessionInfo) -> None:
        """Cancel a session; the table follows session_api's change feed."""
        try:
            await self.backend.cancel_session(session)
        except Exception as error:
            self.notify(
                f"could not cancel {session.user_id}'s session: {feeds.describe(error)}", severity="error", markup=False
            )
            return
        self.notify(f"cancelled {session.user_id}'s session ({session.id})", markup=False)

    def open_session(self, session_id: str) -> None:
        """Open a session's conversation (from the table, or the command palette)."""
        session = self.state.sessions.get(session_id)
        if session is not None and session.hosted:
            self.push_screen(HostedConversationScreen(session_id=session.id, user_id=session.user_id))
        elif session is not None:
            self.push_screen(ConversationScreen(thread_id=session.thread_id, session_id=session.id))

    def on_escalation_queue_action_requested(self, message: EscalationQueue.ActionRequested) -> None:
        escalation = self.state.escalations.get(message.escalation_id)
        if escalation is None:
            return
        if message.action == "claim":
            self.claim_escalation(escalation.id)
        elif message.action == "hand_back":
            self.ask_and_hand_back(escalation.thread_id)
        else:
            self.push_screen(
                ConversationScreen(
                    thread_id=escalation.thread_id,
                    session_id=escalation.session_id,
                    reply=message.action == "reply",
                )
            )

    def conversation_name(self, thread_id: str) -> str:
        """How a notice names a conversation: by its user (``alice's conversation``)."""
        session = self.state.sessions.get(self.state.session_of_thread(thread_id) or "")
        escalation = self.state.escalation_for_thread(thread_id)
        user = session.user_id if session is not None else escalation.user_id if escalation is not None else None
        return f"{user}'s conversation" if user else f"conversation {thread_id}"

    async def _runner_refused(self, what: str, error: Exception) -> None:
        """Say why the agent runner did not do it; after a lost connection, the next call dials afresh."""
        if isinstance(error, Unavailable):
            await self.backend.reset(AGENT_RUNNER)
        self.notify(f"{what}: {feeds.describe(error)}", severity="error", markup=False)

    @work(group="actions", exit_on_error=False)
    async def take_over_thread(self, thread_id: str) -> None:
        """Take over a conversation: the agent stops answering and only this operator may reply."""
        name = self.conversation_name(thread_id)
        try:
            handoff = await self.backend.take_over(thread_id)
        except Exception as error:
            await self._runner_refused(f"could not take over {name}", error)
            return
        self._handoff_applied(handoff)
        self.notify(f"you hold {name}; b hands it back to the agent", markup=False)

    @work(group="actions", exit_on_error=False)
    async def claim_escalation(self, escalation_id: str) -> None:
        """Claim an escalation, which takes over its conversation."""
        escalation = self.state.escalations.get(escalation_id)
        reason = escalation.reason if escalation is not None else escalation_id
        try:
            handoff = await self.backend.claim(escalation_id)
        except Exception as error:
            await self._runner_refused("could not claim", error)
            return
        self._handoff_applied(handoff)
        self.notify(f"claimed: {reason}", markup=False)

    def ask_and_hand_back(self, thread_id: str) -> None:
        """Ask for an optional resolution note, then hand the conversation back to the agent."""

        def hand_back(note: str | None) -> None:
            if note is not None:
                self.hand_back_thread(thread_id, note)

        escalation = self.state.escalation_for_thread(thread_id)
        summary = f"{escalation.user_id}: {escalation.reason}" if escalation else self.conversation_name(thread_id)
        self.push_screen(HandBackScreen(summary), hand_back)

    @work(group="actions", exit_on_error=False)
    async def hand_back_thread(self, thread_id: str, resolution: str) -> None:
        """Give a conversation back to the agent; the agent runner resolves its escalation with the note."""
        name = self.conversation_name(thread_id)
        try:
            handoff = await self.backend.hand_back(thread_id, resolution)
        except Exception as error:
            await self._runner_refused(f"could not hand back {name}", error)
            return
        self._handoff_applied(handoff)
        self.notify(f"handed back to the agent: {name}", markup=False)

    @work(group="actions", exit_on_error=False)
    async def send_reply(self, thread_id: str, text: str) -> None:
        """Post the operator's reply to the user (only the operator holding the conversation may)."""
        try:
            item = await self.backend.reply(thread_id, text)
        except Exception as error:
            await self._runner_refused("reply not sent", error)
            for screen in self._conversations():  # give the text back, so nothing typed is lost
                if screen.thread_id == thread_id:
                    screen.open_reply(text)
            return
        for screen in self._conversations():
            if screen.thread_id == thread_id and screen.loaded:
                screen.transcript.upsert(item)

    def _handoff_applied(self, handoff: Handoff) -> None:
        # The thread feed reports it too; applying the answer now makes the console feel instant.
        session_id = self.state.apply_handoff(handoff)
        if session_id is not None and (row := self.state.row(session_id)) is not None:
            self.dashboard.sessions_table.upsert_row(row)
        for screen in self._conversations():
            if screen.thread_id == handoff.thread_id:
                screen.refresh_info()

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
            verb = "approve" if approve else "reject"
            await self._runner_refused(f"could not {verb} “{card.summary}”", error)
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

    def action_show_log(self) -> None:
        if not isinstance(self.screen, LogScreen):
            self.push_screen(LogScreen(self.logs))

    def action_help(self) -> None:
        owners: list[tuple[str, Any]] = [
            ("Everywhere", ConsoleApp),
            ("Main screen", DashboardScreen),
            ("Sessions", SessionsTable),
            ("Escalation queue", EscalationQueue),
            ("Runs", RunsTable),
            ("Conversation", ConversationScreen),
            ("Transcript", Transcript),
            ("Log panel", LogScreen),
        ]
        self.push_screen(HelpScreen(owners))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Typing "q" or "?" in a text box must not quit or open the help.
        return not (action in ("quit", "help", "show_log") and isinstance(self.focused, Input))


__all__ = ["ConsoleApp"]
