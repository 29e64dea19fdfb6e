"""The agent runner's public client: run a thread's agent and read its ChatKit events.

Other services (the edge) import this module and only this one::

    runner = AgentRunnerClient("127.0.0.1:50052")
    run = runner.run(principal, thread_id=..., user_message=item)
    async for event in run:          # chatkit.types.ThreadStreamEvent, in order
        ...
    await runner.cancel(principal, run.run_id)   # from anywhere, any replica
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from chatkit.types import InferenceOptions, ThreadStreamEvent, UserMessageItem
from pydantic import TypeAdapter

from switchboard.api.v1 import agent_runner_pb2 as pb
from switchboard.api.v1.agent_runner_pb2_grpc import AgentRunnerStub
from switchboard.grpc_client import LoopLocalChannels, error_from_rpc
from switchboard.proto_convert import context_to_proto

EVENT_ADAPTER: TypeAdapter[ThreadStreamEvent] = TypeAdapter(ThreadStreamEvent)


class RunStream:
    """The events of one run, as an async iterator; ``run_id`` is known after the first event
    (or after ``started()``)."""

    def __init__(self, call: Any) -> None:
        self._call = call
        self.run_id: str | None = None
        self._buffer: list[bytes] = []

    async def started(self) -> str:
        """Wait for the server to accept the run and return its id.

        Raises:
            SwitchboardError: the run was refused (e.g. FailedPrecondition: the thread is busy).
        """
        while self.run_id is None:
            await self._fill()
        return self.run_id

    async def _fill(self) -> bool:
        try:
            message = await self._call.read()
        except grpc.aio.AioRpcError as error:
            raise error_from_rpc(error, service="agent_runner") from None
        if message is grpc.aio.EOF:  # type: ignore[attr-defined]
            return False
        self.run_id = self.run_id or message.run_id
        self._buffer.extend(message.events_json)
        return True

    def __aiter__(self) -> AsyncIterator[ThreadStreamEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[ThreadStreamEvent]:
        while True:
            while self._buffer:
                yield EVENT_ADAPTER.validate_json(self._buffer.pop(0))
            if not await self._fill():
                return

    def close(self) -> None:
        """Stop reading (the server cancels the run)."""
        self._call.cancel()


class AgentRunnerClient:
    """A client of the agent runner; safe to build at import time.

    Args:
        target: ``host:port`` of the agent runner.
        timeout: Seconds for Cancel.
    """

    def __init__(self, target: str, *, timeout: float = 10.0) -> None:
        self._channels = LoopLocalChannels(target, AgentRunnerStub)
        self._timeout = timeout

    def run(
        self,
        principal: Any,
        *,
        thread_id: str,
        user_message: UserMessageItem | None = None,
        retry_after_item_id: str | None = None,
        inference_options: InferenceOptions | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> RunStream:
        """Start a run; iterate the result for its events."""
        request = pb.RunRequest(
            principal=context_to_proto(principal),
            thread_id=thread_id,
            agent_id=agent_id or "",
            run_id=run_id or "",
        )
        if user_message is not None:
            request.user_message_json = user_message.model_dump_json().encode()
        elif retry_after_item_id is not None:
            request.retry_after_item_id = retry_after_item_id
        if inference_options is not None:
            request.inference_options_json = inference_options.model_dump_json().encode()
        return RunStream(self._channels.stub().Run(request))

    async def cancel(self, principal: Any, run_id: str) -> None:
        """Cancel a run, wherever it runs.

        Raises:
            NotFound: no live run of the principal has this id.
        """
        request = pb.CancelRequest(principal=context_to_proto(principal), run_id=run_id)
        try:
            await self._channels.stub().Cancel(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as error:
            raise error_from_rpc(error, service="agent_runner") from None

    async def close(self) -> None:
        """Close this loop's channel."""
        await self._channels.close()
