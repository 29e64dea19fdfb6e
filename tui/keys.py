"""Every key binding, for the help screen and the command palette.

Bindings are declared once, on the widgets and screens that own them; this
module reads them back so the help screen and the palette can never drift from
what the keys really do.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider


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


class KeyBindingsProvider(Provider):
    """The command palette's list of every key binding active where it was opened."""

    def _commands(self) -> list[tuple[str, str, Any]]:
        commands: list[tuple[str, str, Any]] = []
        seen: set[str] = set()
        for key, active in self.screen.active_bindings.items():
            binding = active.binding
            if binding.system or not binding.description or binding.action in seen:
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
