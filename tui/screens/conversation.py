"""One conversation: its live transcript, who answers it, and the operator's take-over, reply, hand-back and
decisions on action cards."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, Input, Static

from services.thread_store.client import item_from_json
from tui.data import THREAD_HANDLER, EscalationInfo, SessionInfo, ThreadChange, format_wait
from tui.feeds import describe
from tui.screens import ConsoleScreen
from tui.state import handler_label
from tui.widgets.status_line import StatusLine
from tui.widgets.transcript import Transcript

SEARCH_PLACEHOLDER = "search the transcript — enter jumps to the newest match, then n / N; escape closes"
REPLY_PLACEHOLDER = "reply as the operator — enter sends, escape cancels"
NOT_HELD_PLACEHOLDER = "{who}: only the operator holding it may reply (t takes it over) — enter sends, escape cancels"


def handler_phrase(handler: str) -> str:
    """Who answers, as the conversation's header says it (``handler``: a ``tui.state.handler_label``)."""
    if handler == "agent":
        return "answered by the agent"
    if handler == "waiting":
        return "waiting for a person"
    return f"held by {handler}"


class ConversationScreen(ConsoleScreen):
    """The transcript of a session's thread (or an escalation's), updating live.

    Args:
        thread_id: The thread to show (None: the session has no thread yet).
        session_id: The session the thread belongs to, if known.
        reply: Open the reply box at once.
    """

    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="Back to the sessions and queue"),
        Binding("t", "take_over", "Take over", tooltip="Take over the conversation: the agent stops, you reply"),
        Binding("r", "reply", "Reply", tooltip="Write a reply into the conversation"),
        Binding("c", "claim", "Claim", tooltip="Claim the conversation's escalation (takes the conversation over)"),
        Binding("b", "hand_back", "Hand back", tooltip="Hand the conversation back to the agent with a note"),
        Binding("a", "approve", "Approve", tooltip="Approve the newest action card waiting for approval"),
        Binding("d", "reject", "Reject", tooltip="Reject (deny) the newest action card waiting for approval"),
        Binding("slash", "search", "Search", key_display="/", tooltip="Search the transcript (n: next match)"),
        Binding("ctrl+r", "reload", "Reload", show=False, tooltip="Reload the transcript"),
    ]

    def __init__(self, *, thread_id: str | None, session_id: str | None, reply: bool = False) -> None:
        super().__init__()
        self.thread_id = thread_id
        self.session_id = session_id
        self._open_reply = reply
        self.loaded = False
        self._pending: list[ThreadChange] = []

    def compose(self) -> ComposeResult:
        yield Header(icon="☎")
        yield Static("", id="conversation-info")
        yield Input(placeholder=SEARCH_PLACEHOLDER, id="search")
        yield Transcript(id="transcript")
        yield Input(placeholder=REPLY_PLACEHOLDER, id="reply")
        yield StatusLine(list(self.console.backend.targets), id="status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.console.copy_status_to(self.query_one(StatusLine))
        self.query_one("#reply", Input).display = False
        self.query_one("#search", Input).display = False
        self.refresh_info()
        self.set_interval(1.0, self._tick)
        self.query_one(Transcript).focus()
        if self.thread_id:
            self.load_transcript()
        if self._open_reply:
            self.action_reply()

    @property
    def transcript(self) -> Transcript:
        """The transcript widget."""
        return self.query_one(Transcript)

    @property
    def session(self) -> SessionInfo | None:
        """The session, as the console knows it now."""
        return self.console.state.sessions.get(self.session_id or "")

    @property
    def escalation(self) -> EscalationInfo | None:
        """The thread's pending escalation, if any."""
        return self.console.state.escalation_for_thread(self.thread_id) if self.thread_id else None

    # -- live updates ---------------------------------------------------------

    @work(exclusive=True, group="transcript", exit_on_error=False)
    async def load_transcript(self) -> None:
        """Load the thread's items; changes arriving meanwhile are applied afterwards."""
        assert self.thread_id is not None
        self.loaded = False
        self._pending = []
        try:
            items = await self.console.backend.load_transcript(self.thread_id)
        except Exception as error:
            self.notify(f"could not load the transcript: {describe(error)}", severity="warning")
            return
        self.transcript.load(items)
        self.loaded = True
        pending, self._pending = self._pending, []
        for change in pending:
            self.apply_thread_change(change)

    def apply_thread_change(self, change: ThreadChange) -> None:
        """Apply a change of the org's thread feed if it is this thread's."""
        if change.thread_id != self.thread_id:
            return
        if change.type == THREAD_HANDLER:  # the app has noted the new handler; only the header and marks change
            self.refresh_info()
            return
        if not self.loaded:
            self._pending.append(change)
            return
        if change.type in ("item.added", "item.updated"):
            if not change.json:  # too large for the feed: read it from the store
                self.load_transcript()
                return
            self.transcript.upsert(item_from_json(change.json))
        elif change.type == "item.deleted":
            self.transcript.remove_item(change.item_id)
        elif change.type == "thread.deleted":
            self.notify("the thread was deleted", severity="warning")

    def session_changed(self, session: SessionInfo) -> None:
        """The session changed (status, a first thread)."""
        if session.id != self.session_id:
            return
        if self.thread_id is None and session.thread_id:
            self.thread_id = session.thread_id
            self.load_transcript()
        self.refresh_info()

    @property
    def handler(self) -> str:
        """Who answers: ``agent``, ``waiting``, ``you`` or the holding operator ('' without a thread)."""
        if not self.thread_id:
            return ""
        state = self.console.state
        return handler_label(state.handler(self.thread_id), state.operator_id)

    def refresh_info(self) -> None:
        """The line above the transcript (who, which agent, who answers, the escalation), and the hand-off's marks."""
        parts: list[str] = []
        session = self.session
        if session is not None:
            parts.append(f"{session.user_id} · {session.agent_id} · {session.channel} · {session.status}")
        parts.append(f"thread {self.thread_id}" if self.thread_id else "no thread yet")
        if self.thread_id:
            parts.append(handler_phrase(self.handler))
        escalation = self.escalation
        if escalation is not None:
            waiting = format_wait((self.console.clock() - escalation.opened_at).total_seconds())
            parts.append(f"⚑ {escalation.status} · waiting {waiting} · {escalation.reason}")
        self.query_one("#conversation-info", Static).update("  │  ".join(parts))
        if self.thread_id:
            self.transcript.set_handoff_started(self.console.state.handoff_started(self.thread_id))

    # -- operator actions -----------------------------------------------------

    def _tick(self) -> None:
        # The header's waiting time ticks while the conversation waits for a person.
        if self.escalation is not None:
            self.refresh_info()

    def action_search(self) -> None:
        search = self.query_one("#search", Input)
        search.display = True
        search.focus()

    def action_back(self) -> None:
        search = self.query_one("#search", Input)
        if search.display:
            search.display = False
            self.transcript.focus()
            return
        reply = self.query_one("#reply", Input)
        if reply.display:
            reply.value = ""
            reply.display = False
            self.transcript.focus()
            return
        self.dismiss()

    def action_reply(self) -> None:
        self.open_reply()

    def open_reply(self, text: str = "") -> None:
        """Open the reply box (with ``text`` in it: a reply that was not sent)."""
        if not self.thread_id:
            self.notify("this session has no thread to reply into yet", severity="warning")
            return
        reply = self.query_one("#reply", Input)
        # The agent runner decides who may reply; the box only says what the console knows.
        handler = self.handler
        held = handler == "you"
        reply.placeholder = REPLY_PLACEHOLDER if held else NOT_HELD_PLACEHOLDER.format(who=handler_phrase(handler))
        if text:
            reply.value = text
        reply.display = True
        reply.focus()

    def action_take_over(self) -> None:
        if not self.thread_id:
            self.notify("this session has no conversation to take over yet", severity="warning")
            return
        self.console.take_over_thread(self.thread_id)

    def action_claim(self) -> None:
        escalation = self.escalation
        if escalation is None:
            self.notify("this conversation has no pending escalation (t takes it over)", severity="warning")
            return
        self.console.claim_escalation(escalation.id)

    def action_hand_back(self) -> None:
        if not self.thread_id:
            self.notify("this session has no conversation to hand back", severity="warning")
            return
        self.console.ask_and_hand_back(self.thread_id)

    def action_approve(self) -> None:
        self._decide(approve=True)

    def action_reject(self) -> None:
        self._decide(approve=False)

    def _decide(self, *, approve: bool) -> None:
        if not self.thread_id or not self.loaded:
            self.notify("no transcript shown yet: nothing to approve or reject", severity="warning")
            return
        card = self.transcript.pending_card()
        if card is None:
            self.notify("no action card waits for approval in this conversation", severity="warning")
            return
        self.console.decide_card(card, approve)

    def action_reload(self) -> None:
        if self.thread_id:
            self.load_transcript()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "search":
            event.input.display = False
            self.transcript.focus()
            self.transcript.search(event.value)
            self.transcript.selected_id = None  # from the end: the first jump lands on the newest match
            self.transcript.action_next_match(-1)
            return
        if event.input.id != "reply" or not self.thread_id:
            return
        text = event.value.strip()
        if not text:
            return
        event.input.value = ""
        event.input.display = False
        self.transcript.focus()
        self.console.send_reply(self.thread_id, text)
