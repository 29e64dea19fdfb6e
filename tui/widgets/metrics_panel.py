"""Figures of the org, with small charts of how they moved while the console watched."""

from __future__ import annotations

from collections import deque

from rich.table import Table
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Sparkline, Static

from tui.data import Durations, MetricsSnapshot

HISTORY = 120


def _seconds(value: float) -> str:
    if value < 60:
        return f"{value:.1f}s"
    if value < 3600:
        return f"{value / 60:.1f}m"
    return f"{value / 3600:.1f}h"


def _durations(d: Durations) -> str:
    if not d.count:
        return "—"
    return f"p50 {_seconds(d.p50)} · p90 {_seconds(d.p90)}  ({d.count})"


def metrics_table(m: MetricsSnapshot | None) -> Table:
    """The figures as a two-column table."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    if m is None:
        table.add_row("metrics", "waiting for session_api…")
        return table
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(m.by_status.items())) or "—"
    table.add_row("sessions", f"{m.total_sessions}  ({statuses})")
    table.add_row("cancel rate", f"{m.cancel_rate:.1%}")
    table.add_row("time to escalation", _durations(m.time_to_escalation))
    table.add_row("time to claim", _durations(m.time_to_claim))
    table.add_row("time to resolution", _durations(m.time_to_resolution))
    return table


class MetricsPanel(Vertical):
    """Figures from session_api and charts of active sessions and waiting escalations over time."""

    DEFAULT_CSS = """
    MetricsPanel { padding: 1 2; }
    MetricsPanel #figures { height: auto; margin-bottom: 1; }
    MetricsPanel Label { color: $text-muted; }
    MetricsPanel Sparkline { height: 4; margin-bottom: 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.latest: MetricsSnapshot | None = None
        self.active_history: deque[float] = deque(maxlen=HISTORY)
        self.escalation_history: deque[float] = deque(maxlen=HISTORY)

    def compose(self) -> ComposeResult:
        yield Static(metrics_table(None), id="figures")
        yield Label("active sessions", id="active-label")
        yield Sparkline([], id="active-chart")
        yield Label("escalations waiting", id="escalations-label")
        yield Sparkline([], id="escalations-chart")

    def show(self, metrics: MetricsSnapshot, *, active: int, escalations: int) -> None:
        """Show new figures and add a point to each chart."""
        self.latest = metrics
        self.active_history.append(active)
        self.escalation_history.append(escalations)
        self.query_one("#figures", Static).update(metrics_table(metrics))
        self.query_one("#active-label", Label).update(
            f"active sessions (now {active}, peak {max(self.active_history):.0f})"
        )
        self.query_one("#escalations-label", Label).update(
            f"escalations waiting (now {escalations}, peak {max(self.escalation_history):.0f})"
        )
        self.query_one("#active-chart", Sparkline).data = list(self.active_history)
        self.query_one("#escalations-chart", Sparkline).data = list(self.escalation_history)
