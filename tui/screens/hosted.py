"""A hosted session's conversations: read through OpenAI's ChatKit threads API, read-only.

OpenAI runs an Agent Builder workflow's conversations, so there is nothing to take
over or reply to here; escalations of hosted sessions (``hitl_escalation`` events)
wait in the same queue as every other.
"""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Header, Static

from switchboard.errors import SwitchboardError
from tui.data import HostedConversation
from tui.screens import ConsoleScreen

WHO_STYLE = {"user": "bold", "agent": "green"}


def conversations_text(conversations: list[HostedConversation]) -> Text:
    """The conversations as the screen shows them: a title line, then who said what."""
    text = Text()
    if not conversations:
        text.append("OpenAI has no conversations of this user yet.", style="dim")
    for n, conversation in enumerate(conversations):
        if n:
            text.append("\n\n")
        text.append(f"{conversation.title}", style="bold underline")
        text.append(f"  {conversation.id}", style="dim")
        for who, said in conversation.messages:
            text.append(f"\n{who}: ", style=WHO_STYLE.get(who, "dim"))
            text.append(said)
    return text


class HostedConversationScreen(ConsoleScreen):
    """A hosted session's conversations (its user's newest at OpenAI), oldest message first.

    Args:
        session_id: The hosted session.
        user_id: Its user, for the title.
    """

    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="Back to the sessions and queue"),
        Binding("ctrl+r", "reload", "Reload", tooltip="Read the conversations from OpenAI again"),
    ]

    def __init__(self, *, session_id: str, user_id: str) -> None:
        super().__init__()
        self.session_id = session_id
        self.user_id = user_id
        self.loaded = False
        self.text = ""

    def compose(self) -> ComposeResult:
        yield Header(icon="☎")
        yield Static(
            f"{self.user_id}'s session {self.session_id}: hosted by OpenAI (read-only; ctrl+r reloads)",
            id="hosted-info",
            markup=False,
        )
        with VerticalScroll():
            yield Static("Reading the conversations from OpenAI…", id="hosted-transcript", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.load()

    @work(exclusive=True, exit_on_error=False)
    async def load(self) -> None:
        """Read the conversations through session_api (which asks OpenAI)."""
        shown = self.query_one("#hosted-transcript", Static)
        try:
            conversations = await self.console.backend.load_hosted_conversations(self.session_id)
        except SwitchboardError as error:
            self.text = f"Could not read the conversations: {error.message}"
            shown.update(Text(self.text, style="bold red"))
        else:
            rendered = conversations_text(conversations)
            self.text = rendered.plain
            shown.update(rendered)
        self.loaded = True

    def action_back(self) -> None:
        """Back to the dashboard."""
        self.dismiss()

    def action_reload(self) -> None:
        """Read again."""
        self.loaded = False
        self.load()
