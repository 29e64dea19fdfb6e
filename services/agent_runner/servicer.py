"""The AgentRunner gRPC servicer: protobuf in, domain calls, protobuf out; nothing else."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from chatkit.types import (
    AssistantMessageContentPartTextDelta,
    ThreadItemUpdatedEvent,
    ThreadStreamEvent,
    UserMessageItem,
)
from pydantic import ValidationError

from services.agent_runner.service import AgentRunnerService, RunRequest
from switchboard.api.v1 import agent_runner_pb2 as pb
from switchboard.api.v1 import agent_runner_pb2_grpc
from switchboard.errors import InvalidArgument
from switchboard.grpc_runtime import ServicerContext
from switchboard.proto_convert import principal_from_proto

MAX_BATCH = 256
# How long a message waits for more ready events before it is sent. Far below
# what a reader notices (a frame is 16 ms), long enough that a fast model's
# deltas go out merged instead of one encoding and one write each.
LINGER_SECONDS = 0.002


def event_json(event: ThreadStreamEvent) -> bytes:
    """The SDK's JSON of an event, as ChatKit's server writes it."""
    return event.model_dump_json(by_alias=True, exclude_none=True).encode()


def coalesce_deltas(events: list[ThreadStreamEvent]) -> list[ThreadStreamEvent]:
    """Merge adjacent text deltas of the same content part into one delta.

    Order and text are kept exactly: only consecutive deltas of one item's part
    merge, so the client assembles the same message from fewer events.
    """
    merged: list[ThreadStreamEvent] = []
    for event in events:
        previous = merged[-1] if merged else None
        if (
            isinstance(event, ThreadItemUpdatedEvent)
            and isinstance(event.update, AssistantMessageContentPartTextDelta)
            and isinstance(previous, ThreadItemUpdatedEvent)
            and isinstance(previous.update, AssistantMessageContentPartTextDelta)
            and previous.item_id == event.item_id
            and previous.update.content_index == event.update.content_index
        ):
            delta = previous.update.delta + event.update.delta
            update = AssistantMessageContentPartTextDelta(content_index=event.update.content_index, delta=delta)
            merged[-1] = ThreadItemUpdatedEvent(item_id=event.item_id, update=update)
        else:
            merged.append(event)
    return merged


def run_request_from_proto(request: pb.RunRequest) -> RunRequest:
    """Validate a Run request."""
    principal = principal_from_proto(request.principal, present=request.HasField("principal"))
    user_message: UserMessageItem | None = None
    which = request.WhichOneof("input")
    if which == "user_message_json":
        try:
            user_message = UserMessageItem.model_validate_json(request.user_message_json)
        except ValidationError as error:
            raise InvalidArgument(
                f"user_message_json is not a ChatKit user message: {error.errors()[0]['msg']}"
            ) from None
    return RunRequest(
        principal=principal,
        thread_id=request.thread_id,
        user_message=user_message,
        retry_after_item_id=request.retry_after_item_id if which == "retry_after_item_id" else None,
        agent_id=request.agent_id or None,
        run_id=request.run_id or None,
    )


class AgentRunnerServicer(agent_runner_pb2_grpc.AgentRunnerServicer):  # type: ignore[misc]
    """Serves ``switchboard.api.v1.AgentRunner``."""

    def __init__(self, service: AgentRunnerService) -> None:
        self._service = service

    async def Run(self, request: pb.RunRequest, context: ServicerContext) -> AsyncIterator[pb.RunEvents]:  # type: ignore[override]
        run = await self._service.start(run_request_from_proto(request))
        yield pb.RunEvents(run_id=run.run_id)
        # The run produces into a queue; each message carries whatever is ready
        # (adjacent text deltas merged), so a fast producer is not held to one
        # network write and one JSON encoding per event.
        queue: asyncio.Queue[ThreadStreamEvent | None] = asyncio.Queue()

        async def produce() -> None:
            try:
                async for event in run.events():
                    queue.put_nowait(event)
            finally:
                queue.put_nowait(None)

        producer = asyncio.create_task(produce(), name=f"run-{run.run_id}")
        try:
            done = False
            while not done:
                batch = [await queue.get()]
                deadline = asyncio.get_running_loop().time() + LINGER_SECONDS
                while batch[-1] is not None and len(batch) < MAX_BATCH:
                    if queue.empty():
                        remaining = deadline - asyncio.get_running_loop().time()
                        if remaining <= 0:
                            break
                        try:
                            batch.append(await asyncio.wait_for(queue.get(), remaining))
                        except TimeoutError:
                            break
                    else:
                        batch.append(queue.get_nowait())
                if batch[-1] is None:
                    batch.pop()
                    done = True
                events = coalesce_deltas([e for e in batch if e is not None])
                if events:
                    yield pb.RunEvents(run_id=run.run_id, events_json=[event_json(e) for e in events])
            await producer  # re-raises what the producer could not turn into an event
        finally:
            if not producer.done():
                producer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await producer

    async def Cancel(self, request: pb.CancelRequest, context: ServicerContext) -> pb.CancelResponse:
        principal = principal_from_proto(request.principal, present=request.HasField("principal"))
        if not request.run_id:
            raise InvalidArgument("run_id is required")
        await self._service.registry.cancel(principal, request.run_id)
        return pb.CancelResponse(run_id=request.run_id)
