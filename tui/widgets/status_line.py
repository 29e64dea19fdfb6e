"""The status line: each service's connection, the operator, and the org at a glance."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static

from tui.messages import ConnectionState

MARKS: dict[ConnectionState, tuple[str, str]] = {
    "connecting": ("◌", "yellow"),
    "connected": ("●", "green"),
    "reconnecting": ("◌", "bold yellow"),
    "failed": ("✗", "bold red"),
}


@dataclass
class ServiceStatus:
    """What the console knows of one service's connection."""

    state: ConnectionState = "connecting"
    detail: str = ""
    attempt: int = 0

    def describe(self) -> str:
        """``connected``, ``reconnecting (attempt 3)``, ..."""
        if self.state == "reconnecting":
            return f"reconnecting (attempt {self.attempt})"
        if self.state == "failed":
            return f"failed: {self.detail}"
        return self.state


class StatusLine(Static):
    """One line at the bottom: connections, operator, counts."""

    DEFAULT_CSS = """
    StatusLine {
        height: 1;
        background: $panel;
        color: $text;
        padding: 0 1;
    }
    """

    def __init__(self, services: list[str], *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.services = {name: ServiceStatus() for name in services}
        self.operator = ""
        self.counts = (0, 0)

    def set_connection(self, service: str, state: ConnectionState, detail: str = "", attempt: int = 0) -> None:
        """Record a service's connection state."""
        self.services[service] = ServiceStatus(state, detail, attempt)
        self._redraw()

    def set_operator(self, operator: str) -> None:
        """Show who is signed in."""
        self.operator = operator
        self._redraw()

    def set_counts(self, active: int, escalations: int) -> None:
        """Show the active sessions and pending escalations."""
        if (active, escalations) != self.counts:
            self.counts = (active, escalations)
            self._redraw()

    @property
    def plain(self) -> str:
        """The line as plain text."""
        return self._line().plain

    @property
    def reconnecting(self) -> bool:
        """Whether any service is being reconnected."""
        return any(s.state == "reconnecting" for s in self.services.values())

    def _line(self) -> Text:
        line = Text()
        for name, status in self.services.items():
            mark, style = MARKS[status.state]
            line.append(f"{mark} ", style)
            # A green mark says "connected"; only the other states need words (narrow terminals keep the counts).
            words = name if status.state == "connected" else f"{name} {status.describe()}"
            line.append(f"{words}  ", style if status.state != "connected" else "")
        if self.operator:
            line.append(f"│ {self.operator}  ", "bold")
        active, escalations = self.counts
        line.append(f"│ {active} active", "")
        line.append(f" · {escalations} escalated", "bold red" if escalations else "")
        return line

    def _redraw(self) -> None:
        self.update(self._line())
