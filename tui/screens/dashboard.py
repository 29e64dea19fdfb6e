"""The main screen: live sessions, the escalation queue and metrics, one tab each."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static, TabbedContent, TabPane

from tui.state import ConsoleState
from tui.widgets.escalation_queue import EscalationQueue
from tui.widgets.metrics_panel import MetricsPanel
from tui.widgets.runs_table import RunsTable
from tui.widgets.sessions_table import SessionsTable
from tui.widgets.status_line import StatusLine

RUNS_HELP = "Active runs and hand-offs, most urgent first; x cancels a run, enter opens its conversation."
TICK_SECONDS = 1.0  # waiting times tick every second
FULL_REFRESH_TICKS = 5  # ages and last activity (minutes) every fifth tick


class DashboardScreen(Screen[None]):
    """Sessions, escalations and metrics of the operator's org.

    Args:
        state: The console's model of the org.
        clock: The current time.
        services: Names of the services, for the status line.
    """

    # The footer shows the tab keys as one "1 2 3 Tabs" (the tab bar names them), leaving room for the actions.
    TABS = Binding.Group("Tabs")
    BINDINGS = [
        Binding("1", "show_tab('sessions')", "Sessions", tooltip="Show the live sessions", group=TABS),
        Binding("2", "show_tab('escalations')", "Escalations", tooltip="Show the escalation queue", group=TABS),
        Binding("3", "show_tab('metrics')", "Metrics", tooltip="Show the metrics", group=TABS),
        Binding("4", "show_tab('runs')", "Runs", tooltip="Show the active runs and hand-offs", group=TABS),
        Binding("slash", "filter", "Filter", key_display="/", tooltip="Filter the sessions by words"),
        Binding("escape", "close_filter", "Clear filter", show=False, tooltip="Clear and close the filter"),
    ]

    def __init__(self, state: ConsoleState, *, clock: Callable[[], datetime], services: list[str]) -> None:
        super().__init__()
        self.state = state
        self._clock = clock
        self._services = services

    def compose(self) -> ComposeResult:
        yield Header(icon="☎")
        with TabbedContent(initial="sessions", id="tabs"):
            with TabPane("Sessions", id="sessions"):
                yield Input(
                    placeholder="filter: user, title, last message, escalation reason, handler… (esc clears)",
                    id="filter",
                )
                yield Static("", id="view")
                yield SessionsTable(rows=self.state.rows, clock=self._clock, id="sessions-table")
                yield Static("", id="detail")
            with TabPane("Escalations", id="escalations"):
                yield Static("Open and claimed escalations, oldest first.", id="queue-help")
                yield EscalationQueue(clock=self._clock, id="queue")
            with TabPane("Metrics", id="metrics"):
                yield MetricsPanel(id="metrics-panel")
            with TabPane("Runs", id="runs"):
                yield Static(RUNS_HELP, id="runs-help")
                yield RunsTable(clock=self._clock, id="runs-table")
        yield StatusLine(self._services, id="status")
        yield Footer(compact=True)

    class RunsShown(Message):
        """The runs tab was opened: read the runs now, not at the next poll."""

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self._show_view()
        self._ticks = 0
        self.set_interval(TICK_SECONDS, self._refresh_times)

    @property
    def sessions_table(self) -> SessionsTable:
        """The live sessions table."""
        return self.query_one(SessionsTable)

    @property
    def queue(self) -> EscalationQueue:
        """The escalation queue."""
        return self.query_one(EscalationQueue)

    @property
    def runs(self) -> RunsTable:
        """The runs view."""
        return self.query_one(RunsTable)

    @property
    def active_tab(self) -> str:
        """The tab shown: ``sessions``, ``escalations``, ``metrics`` or ``runs``."""
        return self.query_one(TabbedContent).active

    def say_runs(self, text: str) -> None:
        """The line above the runs view: where its data comes from, and when it could not be read."""
        self.query_one("#runs-help", Static).update(text)

    @property
    def metrics(self) -> MetricsPanel:
        """The metrics panel."""
        return self.query_one(MetricsPanel)

    def _refresh_times(self) -> None:
        self._ticks += 1
        self.sessions_table.refresh_times(waiting_only=self._ticks % FULL_REFRESH_TICKS != 0)
        self.queue.refresh_times()
        self.runs.refresh_times()

    def _show_view(self) -> None:
        self.query_one("#view", Static).update(self.sessions_table.describe_view())

    def on_sessions_table_view_changed(self, _event: SessionsTable.ViewChanged) -> None:
        self._show_view()

    def on_sessions_table_selection_changed(self, _event: SessionsTable.SelectionChanged) -> None:
        self.query_one("#detail", Static).update(self.sessions_table.describe_selected())

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        if tab == "sessions":
            self.sessions_table.focus()
        elif tab == "escalations":
            self.queue.focus()
        elif tab == "runs":
            self.runs.focus()

    def action_filter(self) -> None:
        self.action_show_tab("sessions")
        field = self.query_one("#filter", Input)
        field.display = True
        field.focus()

    def action_close_filter(self) -> None:
        field = self.query_one("#filter", Input)
        if field.display:
            field.value = ""
            field.display = False
            self.sessions_table.set_filter("")
            self.sessions_table.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.sessions_table.set_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            if not event.value:
                event.input.display = False
            self.sessions_table.focus()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        pane = event.pane.id
        if pane == "sessions":
            self.sessions_table.focus()
        elif pane == "escalations":
            self.queue.focus()
        elif pane == "runs":
            self.runs.focus()
            self.post_message(self.RunsShown())
