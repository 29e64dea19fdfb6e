"""Every key binding, for the help screen and the command palette.

Bindings are declared once, on the widgets and screens that own them; this
module reads them back so the help screen and the palette can never drift from
what the keys really do. The palette lists the console's own commands only:
not Textual's (cursor moves of its widgets, themes, screenshots) and not the
keys that only move (j/k/g/G and the like); ``SessionsProvider`` adds "open a
conversation" by user, title or last message, as k9s's ``:`` jumps to a resource.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.dom import DOMNode

from tui.widgets.vim import MOVE

CONSOLE_PACKAGE = "tui."


def _bindings(owner: Any) -> list[Binding]:
    found: list[Binding] = []
    for entry in getattr(owner, "BINDINGS", []):
        binding: BindingType = entry
        if isinstance(binding, Binding):
            found.append(binding)
        else:
            key, action, description = (*binding, "")[:3]
            found.append(Binding(key, action, description))
    return found


def key_label(binding: Binding) -> str:
    """How a key reads: ``ctrl+p``, ``enter``, ``/``."""
    return binding.key_display or binding.key


def binding_groups(owners: Iterable[tuple[str, Any]]) -> list[tuple[str, list[tuple[str, str]]]]:
    """(group title, [(keys, what they do)]) for each owner of bindings, in order."""
    groups: list[tuple[str, list[tuple[str, str]]]] = []
    for title, owner in owners:
        rows: dict[str, list[str]] = {}
        for binding in _bindings(owner):
            what = binding.tooltip or binding.description or binding.action
            for key in binding.key.split(","):
                rows.setdefault(what, []).append(binding.key_display or key.strip())
        groups.append((title, [(" / ".join(keys), what) for what, keys in rows.items()]))
    return groups


def is_console_command(node: DOMNode, binding: Binding) -> bool:
    """Whether a binding is one of the console's own commands (declared in ``tui``, and not a move)."""
    if binding.system or not binding.description or binding.group == MOVE:
        return False
    return any(binding in _bindings(cls) for cls in type(node).__mro__ if cls.__module__.startswith(CONSOLE_PACKAGE))


class KeyBindingsProvider(Provider):
    """The command palette's list of the console's commands active where it was opened (with their keys)."""

    def _commands(self) -> list[tuple[str, str, Any]]:
        commands: list[tuple[str, str, Any]] = []
        seen: set[str] = set()
        for key, active in self.screen.active_bindings.items():
            binding = active.binding
            if binding.action in seen or not is_console_command(active.node, binding):
                continue
            seen.add(binding.action)
            name = f"{binding.description} ({key_label(binding) or key})"
            run = functools.partial(self.app.run_action, binding.action, active.node)
            commands.append((name, binding.tooltip or binding.description, run))
        return sorted(commands, key=lambda command: command[0])

    async def discover(self) -> Hits:
        """Every binding, for browsing."""
        for name, help_text, run in self._commands():
            yield DiscoveryHit(name, run, help=help_text)

    async def search(self, query: str) -> Hits:
        """Bindings matching what the operator typed."""
        matcher = self.matcher(query)
        for name, help_text, run in self._commands():
            score = matcher.match(f"{name} {help_text}")
            if score > 0:
                yield Hit(score, matcher.highlight(name), run, help=help_text)


class SessionsProvider(Provider):
    """Open a conversation from the palette: type part of a user, title, last message or escalation reason."""

    def _sessions(self) -> list[tuple[str, str, str]]:
        """(what the palette shows, its help, session id) of every session with a conversation."""
        from tui.app import ConsoleApp

        app = self.app
        if not isinstance(app, ConsoleApp):
            return []
        found = []
        for row in app.state.rows():
            if row.session.thread_id is None:
                continue
            who = f"{row.handler} · " if row.handler and row.handler != "agent" else ""
            title = row.title or "untitled"
            last = row.last_message.line if row.last_message is not None else ""
            found.append((f"Open {row.session.user_id}: {title}", f"{who}{last}"[:120], row.session.id))
        return found

    def _open(self, session_id: str) -> Any:
        from tui.app import ConsoleApp

        def open_it() -> None:
            if isinstance(self.app, ConsoleApp):
                self.app.open_session(session_id)

        return open_it

    async def discover(self) -> Hits:
        """Nothing until the operator types: 2,000 sessions would bury the commands."""
        for _ in ():
            yield DiscoveryHit("", self._open(""))

    async def search(self, query: str) -> Hits:
        """Sessions whose user, title or last message match what the operator typed."""
        matcher = self.matcher(query)
        for name, help_text, session_id in self._sessions():
            score = matcher.match(f"{name} {help_text}")
            if score > 0:
                yield Hit(score * 0.9, matcher.highlight(name), self._open(session_id), help=help_text)
