"""Vim keys, as operators coming from k9s and lazygit expect them: ``j``/``k`` move, ``g``/``G`` jump."""

from __future__ import annotations

from textual.binding import Binding, BindingType

# The group of the keys that only move: the command palette leaves them out (it lists what the console does).
MOVE = Binding.Group("Move")

# For a DataTable (its own actions): the arrow keys, home and end keep working beside them.
VIM_TABLE_BINDINGS: list[BindingType] = [
    Binding("j", "cursor_down", "Down", show=False, tooltip="Move down (vim j)", group=MOVE),
    Binding("k", "cursor_up", "Up", show=False, tooltip="Move up (vim k)", group=MOVE),
    Binding("g", "scroll_top", "Top", show=False, tooltip="Jump to the first row (vim g)", group=MOVE),
    Binding("G", "scroll_bottom", "Bottom", show=False, tooltip="Jump to the last row (vim G)", group=MOVE),
]
