"""Turns: the ChatKit requests that start an answer, handed to the agent runner whole.

The edge validates the request, builds the user message (as ChatKit's server
does) and starts a run; the runner saves the message, the answer and the
thread. The edge relays the runner's JSON bytes as Server-Sent Events, each
with an ``id:`` of ``<run id>:<sequence number>``, so a client that lost the
stream joins it again (``GET /chatkit/threads/{id}/stream`` with
``Last-Event-ID``) on any edge replica. A client that goes away leaves the run
going (``SWITCHBOARD_ON_DISCONNECT=continue``, the default) or cancels it
(``cancel``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard, TypeVar

from chatkit.server import ChatKitServer
from chatkit.store import NotFoundError
from chatkit.types import (
    Attachment,
    ClientToolCallItem,
    ErrorEvent,
    StreamingReq,
    StructuredInputItem,
    ThreadItemReplacedEvent,
    ThreadMetadata,
    ThreadsAddClientToolOutputReq,
    ThreadsAddStructuredInputReq,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsCustomActionReq,
    ThreadsRetryAfterItemReq,
    UserMessageItem,
)

from services.agent_runner.client import APPROVAL_ACTIONS, APPROVE_ACTION, AgentRunnerClient, RunStream
from services.edge.auth import RequestContext
from services.edge.config import OnDisconnect
from services.thread_store.client import GrpcThreadStore
from switchboard.errors import AlreadyExists, FailedPrecondition, InvalidArgument, SwitchboardError

log = logging.getLogger(__name__)

TURN_REQUESTS = (
    ThreadsCreateReq,
    ThreadsAddUserMessageReq,
    ThreadsRetryAfterItemReq,
    ThreadsAddClientToolOutputReq,
    ThreadsAddStructuredInputReq,
)
T = TypeVar("T")
# Seconds of silence before the edge sends an SSE comment (well under the usual proxy idle timeouts of 60 s).
KEEPALIVE_SECONDS = 15.0
KEEPALIVE = b": keep-alive\n\n"
RUNNER_LOST = (
    "The answer stopped because the agent runner went away; what it had written is kept."
    " Reload to see it, or send your message again."
)
RELAY_FAILED = (
    "The answer could not be shown because of an error on the server; what the agent wrote is kept. Reload to see it."
)


async def with_keepalive(source: AsyncIterator[T], seconds: float) -> AsyncIterator[T | None]:
    """The source's values, and None after every ``seconds`` without one."""
    iterator = source.__aiter__()
    upcoming = asyncio.ensure_future(iterator.__anext__())
    try:
        while True:
            done, _ = await asyncio.wait({upcoming}, timeout=seconds)
            if not done:
                yield None
                continue
            try:
                value = upcoming.result()
            except StopAsyncIteration:
                return
            upcoming = asyncio.ensure_future(iterator.__anext__())
            yield value
    finally:
        upcoming.cancel()


def starts_a_turn(request: object) -> TypeGuard[StreamingReq]:
    """Whether a ChatKit request is answered by the agent runner (a message, a retry, a
    client tool output, a structured input, or a click on an approval card)."""
    if isinstance(request, ThreadsCustomActionReq):
        return request.params.action.type in APPROVAL_ACTIONS
    return isinstance(request, TURN_REQUESTS)


def sse(body: bytes, event_id: str | None = None) -> bytes:
    """One Server-Sent Event."""
    head = b"id: " + event_id.encode() + b"\n" if event_id else b""
    return head + b"data: " + body + b"\n\n"


def sse_error(message: str, *, allow_retry: bool = True) -> bytes:
    """A ChatKit ``error`` event, as an SSE event without an id (it is not in the run's log)."""
    event = ErrorEvent(code="custom", message=message, allow_retry=allow_retry)
    return sse(event.model_dump_json(by_alias=True, exclude_none=True).encode())


def parse_event_id(value: str | None) -> tuple[str | None, int]:
    """A ``Last-Event-ID`` (``<run id>:<seq>``) as (run id, seq); nothing: (None, 0).

    Raises:
        InvalidArgument: the id is not one this edge sent.
    """
    if not value:
        return None, 0
    run_id, _, seq = value.rpartition(":")
    if not run_id or not seq.isdigit() or len(value) > 100:
        raise InvalidArgument("Last-Event-ID (or after) must be an event id like 'run_abc:12'")
    return run_id, int(seq)


@dataclass
class StartedTurn:
    """A run the edge started or joined: its stream, and what to send before its events."""

    stream: RunStream
    prelude: list[bytes]


class Turns:
    """Starts and relays runs for the ChatKit requests that answer.

    Args:
        server: The edge's ChatKit server (its store, and the SDK's own item building).
        store: The thread store.
        runner: The agent runner.
        on_disconnect: What a client going away does to its run.
    """

    def __init__(
        self,
        server: ChatKitServer[RequestContext],
        store: GrpcThreadStore,
        runner: AgentRunnerClient,
        *,
        on_disconnect: OnDisconnect = "continue",
    ) -> None:
        self._server = server
        self._store = store
        self._runner = runner
        self._on_disconnect = on_disconnect
        self._cancels: set[asyncio.Task[None]] = set()

    async def start(self, request: StreamingReq, context: RequestContext) -> StartedTurn:
        """Start the run a request asks for; refusals raise before any byte is sent.

        Raises:
            SwitchboardError: the thread or an item is not the caller's, the input is bad, a service is down.
        """
        prelude: list[bytes] = []
        principal = context.principal
        scope = context.scope
        message: UserMessageItem | None = None
        match request:
            case ThreadsCreateReq():
                thread = ThreadMetadata(id=self._store.generate_thread_id(context), created_at=datetime.now(UTC))
                message = await self._user_message(request, thread, context)
                stream = self._runner.run(
                    principal, thread_id=thread.id, user_message=message, create_thread=thread, scope=scope
                )
            case ThreadsAddUserMessageReq():
                thread = ThreadMetadata(id=request.params.thread_id, created_at=datetime.now(UTC))
                message = await self._user_message(request, thread, context)
                stream = self._runner.run(principal, thread_id=thread.id, user_message=message)
            case ThreadsRetryAfterItemReq():
                stream = self._runner.run(
                    principal, thread_id=request.params.thread_id, retry_after_item_id=request.params.item_id
                )
            case ThreadsAddClientToolOutputReq():
                await self._complete_client_tool_call(request, context)
                stream = self._runner.run(principal, thread_id=request.params.thread_id, continue_thread=True)
            case ThreadsAddStructuredInputReq():
                prelude.append(await self._answer_structured_input(request, context))
                stream = await self._continue_after_answer(request, context)
            case ThreadsCustomActionReq() if request.params.action.type in APPROVAL_ACTIONS:
                if not request.params.item_id:
                    raise InvalidArgument("an approval click names the card it comes from (item_id)")
                decision = (request.params.item_id, request.params.action.type == APPROVE_ACTION)
                stream = self._runner.run(principal, thread_id=request.params.thread_id, approval=decision)
            case _:
                raise InvalidArgument(f"{request.type} does not start an answer")
        try:
            await stream.started()
        except AlreadyExists:
            # A second click on a decided card: nothing happens, nothing is sent.
            stream.close()
            stream.run_id = ""
            return StartedTurn(stream=stream, prelude=prelude)
        except FailedPrecondition as refused:
            # The reject policy: the message was not saved; the client shows why.
            stream.close()
            return StartedTurn(stream=stream, prelude=[*prelude, sse_error(refused.message)])
        except BaseException:
            stream.close()
            raise
        if message is not None:
            await self._link_attachments(message, context)
        return StartedTurn(stream=stream, prelude=prelude)

    async def _user_message(
        self, request: ThreadsCreateReq | ThreadsAddUserMessageReq, thread: ThreadMetadata, context: RequestContext
    ) -> UserMessageItem:
        """The message a request adds, as ChatKit's server builds it, checked before any run starts.

        Raises:
            InvalidArgument: the message has a NUL character, or names an attachment
                that is not one of the caller's uploads.
        """
        given = request.params.input
        if _has_nul(given.model_dump()):
            raise InvalidArgument("a message cannot contain NUL characters")
        attachments = [await self._own_attachment(attachment_id, context) for attachment_id in given.attachments]
        # The SDK builds the rest of the message; the attachments are the ones resolved above.
        message = await self._server._build_user_message_item(
            given.model_copy(update={"attachments": []}), thread, context
        )
        message.attachments = [attachment.model_copy(update={"thread_id": thread.id}) for attachment in attachments]
        return message

    async def _own_attachment(self, attachment_id: str, context: RequestContext) -> Attachment:
        try:
            return await self._store.load_attachment(attachment_id, context)
        except NotFoundError:
            raise InvalidArgument(
                f"attachment {attachment_id[:100]!r} is not one of your uploads; create it with attachments.create"
                " and upload it before sending the message"
            ) from None

    async def _link_attachments(self, message: UserMessageItem, context: RequestContext) -> None:
        """Record the thread of a started turn's attachments, as ChatKit's server does.

        Only once the run has saved the message: a refused request changes no
        attachment. The message carries its attachments whatever happens here.
        """
        for attachment in message.attachments:
            try:
                await self._store.save_attachment(attachment, context)
            except (SwitchboardError, NotFoundError) as error:
                log.warning(
                    "thread %s: attachment %s kept its previous thread (%s)", message.thread_id, attachment.id, error
                )

    async def _complete_client_tool_call(self, request: ThreadsAddClientToolOutputReq, context: RequestContext) -> None:
        """Record a client tool's output on the pending call (as ChatKit's server does)."""
        items = await self._store.load_thread_items(request.params.thread_id, None, 20, "desc", context, strict=True)
        pending = [i for i in items.data if isinstance(i, ClientToolCallItem) and i.status == "pending"]
        if not pending or pending[0].id != items.data[0].id:
            raise InvalidArgument("the conversation's last item is not a pending client tool call")
        call = pending[0]
        call.output = request.params.result
        call.status = "completed"
        await self._store.save_item(request.params.thread_id, call, context)
        for stale in pending[1:]:
            await self._store.delete_thread_item(request.params.thread_id, stale.id, context)

    async def _continue_after_answer(self, request: ThreadsAddStructuredInputReq, context: RequestContext) -> RunStream:
        """The run that waits on this question (an ``ask_user`` call) resumes with the answer;
        a question nobody waits on continues the thread."""
        values = [v for answer in request.params.input.answers.values() for v in answer.values]
        thread_id, item_id = request.params.thread_id, request.params.item_id
        stream = self._runner.run(context.principal, thread_id=thread_id, approval=(item_id, True), answer=values)
        try:
            await stream.started()
        except FailedPrecondition:
            stream.close()
            return self._runner.run(context.principal, thread_id=thread_id, continue_thread=True)
        return stream

    async def _answer_structured_input(self, request: ThreadsAddStructuredInputReq, context: RequestContext) -> bytes:
        """Record the user's answers to a question item; the event that shows them."""
        item = await self._store.load_item(request.params.thread_id, request.params.item_id, context)
        if not isinstance(item, StructuredInputItem):
            raise InvalidArgument(f"item {request.params.item_id} is not a structured input item")
        try:
            answered = await self._server._apply_structured_input_submission(item, request.params.input)
        except ValueError as error:
            raise InvalidArgument(str(error)) from None
        await self._store.save_item(request.params.thread_id, answered, context)
        event = ThreadItemReplacedEvent(item=answered)
        return sse(event.model_dump_json(by_alias=True, exclude_none=True, context={"exclude_metadata": True}).encode())

    async def relay(self, turn: StartedTurn, context: RequestContext, *, started: bool) -> AsyncIterator[bytes]:
        """The run's events as SSE bytes. A client going away leaves the run going, or, when it
        ``started`` the run and the policy is ``cancel``, cancels it (a joiner never does)."""
        stream = turn.stream
        finished = False
        try:
            for chunk in turn.prelude:
                yield chunk
            if not stream.run_id:
                finished = True
                return
            async for batch in with_keepalive(stream.batches(), KEEPALIVE_SECONDS):
                if batch is None:
                    # A stream waiting for a person can be quiet for minutes: a comment keeps proxies from closing it.
                    yield KEEPALIVE
                    continue
                first_seq, bodies = batch
                for offset, body in enumerate(bodies):
                    seq = first_seq + offset
                    yield sse(body, f"{stream.run_id}:{seq}" if seq else None)
            finished = True
        except SwitchboardError as error:
            finished = True
            log.warning("run %s: stream lost (%s)", stream.run_id, error.message)
            # The run's own stream breaking means its runner went away; a joiner is told why it stopped.
            yield sse_error(RUNNER_LOST if started and error.status == "UNAVAILABLE" else error.message)
        except Exception:
            # Headers are sent: a status can no longer say it, so the stream ends with an error event.
            finished = True
            log.exception("run %s: relaying its events failed", stream.run_id)
            yield sse_error(RELAY_FAILED)
        finally:
            stream.close()
            if started and not finished and stream.run_id and self._on_disconnect == "cancel":
                self._cancel_later(context, stream.run_id)

    def _cancel_later(self, context: RequestContext, run_id: str) -> None:
        async def cancel() -> None:
            try:
                await self._runner.cancel(context.principal, run_id)
            except SwitchboardError as error:
                log.info("could not cancel run %s after its client left (%s)", run_id, error.message)

        task = asyncio.create_task(cancel(), name=f"cancel-{run_id}")
        self._cancels.add(task)
        task.add_done_callback(self._cancels.discard)

    async def join(self, thread_id: str, last_event_id: str | None, context: RequestContext) -> StartedTurn | None:
        """The thread's active run, from after ``last_event_id``; None when it has none."""
        run_id, seq = parse_event_id(last_event_id)
        stream = self._runner.join(context.principal, thread_id=thread_id, run_id=run_id, after_seq=seq)
        try:
            started = await stream.started()
        except BaseException:
            stream.close()
            raise
        if not started:
            stream.close()
            return None
        return StartedTurn(stream=stream, prelude=[])


def _has_nul(value: Any) -> bool:
    """Whether a NUL character is in any string of a JSON-like value (Postgres cannot store one)."""
    pending = [value]  # a loop, not recursion: a tag's data nests as deep as the client likes
    while pending:
        current = pending.pop()
        if isinstance(current, str):
            if "\x00" in current:
                return True
        elif isinstance(current, dict):
            pending.extend(current.keys())
            pending.extend(current.values())
        elif isinstance(current, list | tuple):
            pending.extend(current)
    return False
