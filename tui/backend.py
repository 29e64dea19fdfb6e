"""How the console reaches Switchboard: one small interface, and its gRPC implementation.

The app receives a ``ConsoleBackend`` in its constructor. ``GrpcConsoleBackend``
talks to session_api, thread_store and (for hand-offs and decisions on action
cards) the agent runner through their public client modules (the only parts of
``services`` the console may import); tests use an in-memory backend with the
same rules instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Protocol

import jwt
from chatkit.store import NotFoundError
from chatkit.types import AssistantMessageItem, ThreadItem

from services.agent_runner.client import AgentRunnerClient, Handoff
from services.session_api.client import SessionApiClient
from services.thread_store.client import GrpcThreadStore, item_from_json
from switchboard.errors import AlreadyExists, FailedPrecondition, NotFound, Unauthenticated
from switchboard.principal import Principal
from switchboard.service_auth import BearerCredentials
from tui.data import (
    ACTIVE_RUN_STATES,
    EscalationInfo,
    HostedConversation,
    LastMessage,
    MetricsSnapshot,
    RunInfo,
    SessionChange,
    SessionInfo,
    ThreadChange,
    ThreadSummary,
    last_message_of,
)

SESSION_API = "session_api"
THREAD_STORE = "thread_store"
AGENT_RUNNER = "agent_runner"
DEFAULT_AGENT_RUNNER = "127.0.0.1:50052"
MAX_SESSIONS = 2000
MAX_ESCALATIONS = 1000
MAX_TRANSCRIPT = 10_000
RECENT_SESSIONS = 100
PAGE = 200
HOSTED_THREADS = 20  # a hosted session's conversations read at once (its user's newest at OpenAI)
MAX_THREADS = MAX_SESSIONS  # thread summaries loaded at once (the org's most recently active)
LAST_MESSAGE_LOOKBACK = 8  # newest items read to find a thread's last message (tool calls come between)
CALLS_AT_ONCE = 8  # per-thread calls in flight together (last messages, runs)
RUNS_PER_THREAD = 5  # newest runs read per thread: its active ones are among them
# Where the agent runner refuses an operator's Cancel (it cancels the caller's own runs only).
CANNOT_CANCEL = (
    "the agent runner cancels only the caller's own runs, so an operator cannot cancel a user's run "
    "(t takes the conversation over, which stops the running answer)"
)


# What deciding an action card can come to besides a decision (``decide_card`` returns one of these).
NOT_ALLOWED = (
    "not allowed: this deployment does not let operators decide action cards "
    "(SWITCHBOARD_OPERATOR_MAY_APPROVE on the agent runner)"
)
ALREADY_DECIDED = "it was decided already"
NOT_PENDING = "it no longer waits for approval"
REFUSED_DECISIONS = frozenset({NOT_ALLOWED, ALREADY_DECIDED, NOT_PENDING})

# What became of the run a decision resumed, by its final status.
_AFTER_DECISION = {
    "completed": "the agent finished its answer",
    "waiting_approval": "the agent asks for another approval",
    "cancelled": "the answer was cancelled",
    "failed": "the answer failed",
    "interrupted": "the answer was interrupted",
}


class SignInFailed(Unauthenticated):
    """The operator token was refused, is not an operator's, or expired: retrying will not help."""


RENEW_BEFORE_SECONDS = 60.0


def token_expiry(token: str) -> float | None:
    """When a JWT says it expires (read, not verified: the services verify it), or None."""
    try:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
    except jwt.PyJWTError:
        return None
    return float(exp) if isinstance(exp, (int, float)) else None


class OperatorToken:
    """The operator's bearer token, sent with every call the console makes.

    Decisions: a token the operator gave is used until it expires, and then every
    call fails with ``SignInFailed`` (the console says to start again with a new
    token; it never keeps working on an expired token). A development token (``renew``:
    the console minted it from ``switchboard up``'s development secret) is minted
    again a minute before it expires.

    Args:
        token: The token.
        renew: Mints a new one (development tokens only).
    """

    def __init__(self, token: str, *, renew: Callable[[], str | None] | None = None) -> None:
        self._token = token
        self._renew = renew
        self.expires_at = token_expiry(token)

    @property
    def renewable(self) -> bool:
        """Whether a new token is minted before this one expires (a development token)."""
        return self._renew is not None

    def current(self) -> str:
        """The token to send now.

        Raises:
            SignInFailed: it expired and cannot be renewed.
        """
        if self.expires_at is not None and time.time() >= self.expires_at - RENEW_BEFORE_SECONDS and self._renew:
            fresh = self._renew()
            if fresh:
                self._token, self.expires_at = fresh, token_expiry(fresh)
        if self.expires_at is not None and time.time() >= self.expires_at:
            when = datetime.fromtimestamp(self.expires_at, UTC).strftime("%H:%M:%S UTC")
            raise SignInFailed(
                f"the operator token expired at {when}; start the console again with a new one"
                " (--token, or SWITCHBOARD_OPERATOR_TOKEN)"
            )
        return self._token


def decision_outcome(approve: bool, run_status: str) -> str:
    """What the console says after a decision went through: the decision, then what the resumed run did."""
    verdict = "approved" if approve else "rejected"
    after = _AFTER_DECISION.get(run_status, f"the run ended {run_status}" if run_status else "")
    return f"{verdict}; {after}" if after else verdict


class ConsoleBackend(Protocol):
    """Everything the console reads and does, as plain values."""

    @property
    def targets(self) -> dict[str, str]:
        """``host:port`` by service name, for the status line."""
        ...

    async def sign_in(self) -> Principal:
        """Authenticate the operator token; ``SignInFailed`` when it is not an operator's."""
        ...

    async def token_expired(self) -> None:
        """Return (raising ``SignInFailed``) when the operator token expires for good; renew it meanwhile."""
        ...

    def watch_sessions(self) -> AsyncIterator[SessionChange]:
        """The org's session and escalation changes; the first is ``watch.started``."""
        ...

    async def load_sessions(self) -> list[SessionInfo]:
        """Every active session of the org, and the most recent others."""
        ...

    async def load_escalations(self) -> list[EscalationInfo]:
        """The org's open and claimed escalations, oldest first."""
        ...

    async def load_threads(self) -> list[ThreadSummary]:
        """The org's most recently active threads: title, sticky agent, handler, last activity."""
        ...

    async def load_last_messages(self, thread_ids: list[str]) -> dict[str, LastMessage]:
        """The newest user, agent or operator message of each thread that has one."""
        ...

    async def load_runs(self, thread_ids: list[str]) -> list[RunInfo]:
        """The active runs (queued, running, waiting for approval) of these threads."""
        ...

    async def cancel_run(self, run_id: str) -> list[str]:
        """Stop a run; the ids of the runs stopped (NotFound: not one this operator may cancel, or ended)."""
        ...

    def watch_threads(self, since: str) -> AsyncIterator[ThreadChange]:
        """The org's thread changes after the change id ``since``."""
        ...

    async def load_transcript(self, thread_id: str) -> list[ThreadItem]:
        """A thread's items, oldest first."""
        ...

    async def load_hosted_conversations(self, session_id: str) -> list[HostedConversation]:
        """A hosted session's conversations at OpenAI, newest first, read-only."""
        ...

    async def load_metrics(self) -> MetricsSnapshot:
        """The org's figures now."""
        ...

    async def take_over(self, thread_id: str) -> Handoff:
        """Hold a thread: the agent stops answering and only this operator may reply."""
        ...

    async def claim(self, escalation_id: str) -> Handoff:
        """Claim an escalation, which takes over its thread."""
        ...

    async def reply(self, thread_id: str, text: str) -> AssistantMessageItem:
        """Write the holding operator's reply to the user; the item as stored."""
        ...

    async def hand_back(self, thread_id: str, resolution: str) -> Handoff:
        """Give a thread back to the agent, resolving its escalation with the note."""
        ...

    async def cancel_session(self, session: SessionInfo) -> SessionInfo:
        """Cancel a session of the org: its client secret dies and its answers stop (hosted: at OpenAI)."""
        ...

    async def decide_card(self, thread_id: str, card_id: str, approve: bool) -> str:
        """Approve or reject an action card for the user; what came of it (a decision, or a refusal)."""
        ...

    async def reset(self, service: str) -> None:
        """Drop the connection to a service after a failure, so the next call dials afresh."""
        ...

    async def close(self) -> None:
        """Close every connection."""
        ...


class GrpcConsoleBackend:
    """The console's backend over gRPC.

    Args:
        token: The operator's bearer token (an ``OperatorToken`` to renew a development token); every
            call to every service carries it.
        session_api: ``host:port`` of session_api.
        thread_store: ``host:port`` of thread_store.
        agent_runner: ``host:port`` of the agent runner (hand-offs, decisions on action cards; default: this host's).
        timeout: Seconds per unary call.
    """

    def __init__(
        self,
        *,
        token: str | OperatorToken,
        session_api: str,
        thread_store: str,
        agent_runner: str = DEFAULT_AGENT_RUNNER,
        timeout: float = 5.0,
    ) -> None:
        self.token = token if isinstance(token, OperatorToken) else OperatorToken(token)
        # The status line follows the two services the console watches; the runner is called on demand.
        self._targets = {SESSION_API: session_api, THREAD_STORE: thread_store}
        credentials = BearerCredentials(self.token.current)
        self.sessions = SessionApiClient(session_api, timeout=timeout, credentials=credentials)
        self.threads = GrpcThreadStore(thread_store, timeout=timeout, credentials=credentials)
        self.runner = AgentRunnerClient(agent_runner, timeout=timeout, credentials=credentials)
        self._timeout = timeout
        self._principal: Principal | None = None

    @property
    def targets(self) -> dict[str, str]:
        """``host:port`` by service name."""
        return dict(self._targets)

    @property
    def principal(self) -> Principal:
        """The signed-in operator."""
        if self._principal is None:
            raise RuntimeError("sign_in() first")
        return self._principal

    async def token_expired(self) -> None:
        """Sleep until the token is due for renewal (then renew it) or expires (then raise ``SignInFailed``):
        a watch that began with a valid token would otherwise outlive it."""
        while True:
            expires = self.token.expires_at
            if expires is None:
                await asyncio.Event().wait()  # a token that never expires
                continue
            due = expires - (RENEW_BEFORE_SECONDS if self.token.renewable else 0.0)
            await asyncio.sleep(max(0.05, due - time.time()))
            self.token.current()  # renews a development token; raises once expired for good
            if self.token.expires_at == expires:  # not renewed: wait for the end, then say so
                await asyncio.sleep(max(0.05, expires - time.time()))
                self.token.current()

    async def sign_in(self) -> Principal:
        """Authenticate the token with session_api and check it is an operator's."""
        try:
            principal = await self.sessions.authenticate_principal(self.token.current())
        except Unauthenticated as error:
            raise SignInFailed(f"session_api refused the operator token ({error.message})") from None
        if not principal.is_operator or not principal.org_id:
            raise SignInFailed(
                f"the token of {principal.user_id!r} has no operator role and org; mint one with --operator"
            )
        self._principal = principal
        return principal

    async def watch_sessions(self) -> AsyncIterator[SessionChange]:
        """The org's session and escalation changes."""
        async for change in self.sessions.watch(self.principal, org=True):
            yield SessionChange.of(change)

    async def load_sessions(self) -> list[SessionInfo]:
        """Every active session of the org (up to 2,000), and the 100 most recent of any status."""
        found: dict[str, SessionInfo] = {}
        recent = await self.sessions.list_sessions(self.principal, org_wide=True, limit=RECENT_SESSIONS)
        for s in recent.items:
            found[s.id] = SessionInfo.of(s)
        after: str | None = None
        while len(found) < MAX_SESSIONS:
            page = await self.sessions.list_sessions(
                self.principal, org_wide=True, status="active", limit=PAGE, after=after
            )
            for s in page.items:
                found[s.id] = SessionInfo.of(s)
            if not page.has_more:
                break
            after = page.after
        return list(found.values())

    async def load_escalations(self) -> list[EscalationInfo]:
        """Open and claimed escalations, oldest first."""
        found: list[EscalationInfo] = []
        for status in ("open", "claimed"):
            after: str | None = None
            while len(found) < MAX_ESCALATIONS:
                page = await self.sessions.list_escalations(self.principal, status=status, limit=PAGE, after=after)
                found += [EscalationInfo.of(e) for e in page.items]
                if not page.has_more:
                    break
                after = page.after
        return sorted(found, key=lambda e: (e.opened_at, e.id))

    async def load_threads(self) -> list[ThreadSummary]:
        """The org's most recently active threads (up to 2,000), read in pages of 200."""
        found: list[ThreadSummary] = []
        after: str | None = None
        while len(found) < MAX_THREADS:
            page = await self.threads.load_org_threads(self.principal, limit=PAGE, after=after)
            found += [ThreadSummary.from_thread(t) for t in page.data]
            if not page.has_more:
                break
            after = page.after
        return found

    async def load_last_messages(self, thread_ids: list[str]) -> dict[str, LastMessage]:
        """Each thread's newest message among its last few items, read a few threads at a time.

        A thread that is gone or unreadable is left out; a lost connection fails the whole load.
        """
        gate = asyncio.Semaphore(CALLS_AT_ONCE)
        found: dict[str, LastMessage] = {}

        async def read(thread_id: str) -> None:
            async with gate:
                try:
                    page = await self.threads.load_thread_items(
                        thread_id, None, LAST_MESSAGE_LOOKBACK, "desc", self.principal
                    )
                except (NotFoundError, NotFound):
                    return
            message = next((m for item in page.data if (m := last_message_of(item)) is not None), None)
            if message is not None:
                found[thread_id] = message

        await asyncio.gather(*(read(thread_id) for thread_id in thread_ids))
        return found

    async def load_runs(self, thread_ids: list[str]) -> list[RunInfo]:
        """The active runs of these threads: the agent runner lists runs per thread (there is no org-wide list)."""
        gate = asyncio.Semaphore(CALLS_AT_ONCE)
        found: list[RunInfo] = []

        async def read(thread_id: str) -> None:
            async with gate:
                try:
                    page = await self.runner.list_runs(self.principal, thread_id=thread_id, limit=RUNS_PER_THREAD)
                except NotFound:
                    return
            found.extend(run for r in page.items if (run := RunInfo.of(r)).status in ACTIVE_RUN_STATES)

        await asyncio.gather(*(read(thread_id) for thread_id in thread_ids))
        return sorted(found, key=lambda run: (run.created_at, run.id))

    async def cancel_run(self, run_id: str) -> list[str]:
        """Ask the agent runner to stop the run."""
        try:
            return await self.runner.cancel(self.principal, run_id)
        except NotFound as error:
            raise NotFound(f"{error.message}; {CANNOT_CANCEL}") from None

    async def watch_threads(self, since: str) -> AsyncIterator[ThreadChange]:
        """The org's thread changes after ``since``."""
        async for event in self.threads.watch(self.principal, org=True, since=since):
            yield ThreadChange.of(event)

    async def load_transcript(self, thread_id: str) -> list[ThreadItem]:
        """A thread's items, oldest first (up to 10,000)."""
        items: list[ThreadItem] = []
        after: str | None = None
        while len(items) < MAX_TRANSCRIPT:
            page = await self.threads.load_thread_items(thread_id, after, 1000, "asc", self.principal)
            items += page.data
            if not page.has_more:
                break
            after = page.after
        return items

    async def load_hosted_conversations(self, session_id: str) -> list[HostedConversation]:
        """A hosted session's conversations (its user's newest 20 threads at OpenAI), read-only."""
        threads = await self.sessions.list_hosted_threads(self.principal, session_id, limit=HOSTED_THREADS)
        conversations = []
        for thread in threads.items:
            items = await self.sessions.list_hosted_items(self.principal, session_id, thread["id"], limit=100)
            conversations.append(HostedConversation.from_openai(thread, items.items))
        return conversations

    async def load_metrics(self) -> MetricsSnapshot:
        """The org's figures now."""
        reply = await self.sessions.get_metrics(self.principal)
        return MetricsSnapshot.of(reply, at=datetime.now(UTC))

    # The agent runner owns the hand-off: it moves the escalation (session_api) and the
    # thread's handler (thread_store) together and refuses what the rules forbid.

    async def take_over(self, thread_id: str) -> Handoff:
        """Take the thread through the agent runner (FailedPrecondition: another operator holds it)."""
        return await self.runner.take_over(self.principal, thread_id=thread_id)

    async def claim(self, escalation_id: str) -> Handoff:
        """Claim the escalation through the agent runner, which makes this operator its thread's holder."""
        return await self.runner.take_over(self.principal, escalation_id=escalation_id)

    async def reply(self, thread_id: str, text: str) -> AssistantMessageItem:
        """Post the reply through the agent runner (PermissionDenied: this operator does not hold the thread)."""
        return await self.runner.post_operator_message(self.principal, thread_id=thread_id, text=text)

    async def hand_back(self, thread_id: str, resolution: str) -> Handoff:
        """Give the thread back to the agent; the runner resolves its escalation with ``resolution``."""
        return await self.runner.hand_back(self.principal, thread_id=thread_id, resolution=resolution)

    async def cancel_session(self, session: SessionInfo) -> SessionInfo:
        """Cancel the session in session_api (a hosted one at OpenAI first), then stop its answers
        (decision: in this order, as the edge's cancel route does, so no answer starts in between)."""
        cancelled = await self.sessions.cancel_session(
            self.principal, session.id, reason=f"cancelled by operator {self.principal.user_id}"
        )
        if not session.hosted:  # a hosted session's answers run at OpenAI, which its cancel stopped
            await self.runner.cancel(self.principal, session_id=session.id)
        return SessionInfo.of(cancelled)

    async def decide_card(self, thread_id: str, card_id: str, approve: bool) -> str:
        """Decide the card through the agent runner, then follow the resumed run to its end.

        The runner accepts an operator's decision only where the deployment allows it
        (``SWITCHBOARD_OPERATOR_MAY_APPROVE``); elsewhere the operator is just another
        user, and another user's thread is not found. The resumed run streams into the
        thread as usual, so the console sees the decided card on thread_store's feed.
        """
        stream = self.runner.run(self.principal, thread_id=thread_id, approval=(card_id, approve))
        try:
            await stream.started()
            async for _event in stream:
                pass
        except NotFound:
            return NOT_ALLOWED
        except AlreadyExists:
            return ALREADY_DECIDED
        except FailedPrecondition:
            return NOT_PENDING
        finally:
            stream.close()
        return decision_outcome(approve, stream.status)

    async def reset(self, service: str) -> None:
        """Close the service's channel; the next call opens a fresh one instead of waiting out gRPC's back-off."""
        if service == SESSION_API:
            await self.sessions.close()
        elif service == AGENT_RUNNER:
            await self.runner.close()
        else:
            await self.threads.close()

    async def close(self) -> None:
        """Close every channel."""
        await self.sessions.close()
        await self.threads.close()
        await self.runner.close()


__all__ = [
    "AGENT_RUNNER",
    "ALREADY_DECIDED",
    "CANNOT_CANCEL",
    "NOT_ALLOWED",
    "NOT_PENDING",
    "REFUSED_DECISIONS",
    "SESSION_API",
    "THREAD_STORE",
    "ConsoleBackend",
    "GrpcConsoleBackend",
    "SignInFailed",
    "decision_outcome",
    "item_from_json",
]
