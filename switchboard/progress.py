"""Progress bars of long commands (``threads export|import``): counts, rates and time left, on stderr.

On a terminal the bars redraw in place; when stderr is a file or a pipe they are
off, so logs and CI output stay clean (the commands print their summary either way).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class LineRateColumn(ProgressColumn):
    """Lines per second."""

    def render(self, task: Task) -> Text:
        """The rate, once there is one."""
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} lines/s", style="progress.data.speed")


@contextlib.contextmanager
def line_progress(*, console: Console | None = None) -> Iterator[Progress]:
    """A progress display counting lines; its tasks take ``total=None`` when the count is unknown."""
    console = console or Console(stderr=True)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        LineRateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
        transient=False,
    )
    with progress:
        yield progress
