"""Table cells that know how to sort themselves."""

from __future__ import annotations

from typing import Any

from rich.style import Style
from rich.text import Text


class Cell(Text):
    """Rich text shown in a ``DataTable`` cell, with the value the table sorts it by."""

    def __init__(self, text: str, sort_key: Any = None, style: str | Style = "") -> None:
        super().__init__(text, style=style, no_wrap=True, overflow="ellipsis")
        self.sort_key = text if sort_key is None else sort_key


def sort_key_of(cell: Any) -> Any:
    """A cell's sort key (``DataTable.sort(key=...)``)."""
    return getattr(cell, "sort_key", str(cell))
