"""The agent runner's public client: run a thread's agent, follow, cancel and list runs.

Other services (the edge) import this module and only this one::

    runner = AgentRunnerClient("127.0.0.1:50052")
    run = runner.run(principal, thread_id=..., user_message=item)
    async for event in run:          # chatkit.types.ThreadStreamEvent, in order
        ...
    async for first_seq, bodies in runner.join(principal, thread_id=...).batches():
        ...                          # the SDK's JSON of each event, numbered within the run
    await runner.cancel(principal, thread_id=...)   # from anywhere, any replica
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import grpc
from chatkit.types import AssistantMessageItem, ThreadMetadata, ThreadStreamEvent, UserMessageItem
from pydantic import TypeAdapter

from services.agent_runner.approvals import APPROVAL_ACTIONS, APPROVE_ACTION, REJECT_ACTION
from switchboard.api.v1 import agent_runner_pb2 as pb
from switchboard.api.v1.agent_runner_pb2_grpc import AgentRunnerStub
from switchboard.grpc_client import FROM_ENV, LoopLocalChannels, error_from_rpc
from switchboard.pages import Page
from switchboard.principal import Caller
from switchboard.proto_convert import from_timestamp, optional_timestamp, principal_to_proto
from switchboard.service_auth import CallCredentials

EVENT_ADAPTER: TypeAdapter[ThreadStreamEvent] = TypeAdapter(ThreadStreamEvent)
# The actions of an approval card's buttons, for servers that route clicks to Run(approval=...).
__all__ = [
    "APPROVAL_ACTIONS",
    "APPROVE_ACTION",
    "REJECT_ACTION",
    "AgentRunnerClient",
    "Handoff",
    "Page",
    "Run",
    "RunStream",
]


@dataclass(frozen=True, slots=True)
class Run:
    """One run of a thread's agent (one answer), as the runner reports it.

    ``status``: queued, running, waiting_approval, completed, cancelled, failed or
    interrupted; ``holder``: the replica holding (or that last held) it;
    ``last_seq``: its last event's sequence number.
    """

    id: str
    thread_id: str
    user_id: str
    org_id: str | None
    session_id: str | None
    agent_id: str
    status: str
    error: str
    holder: str | None
    input_item_id: str | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    lease_expires_at: datetime | None
    last_seq: int

    @classmethod
    def from_proto(cls, m: pb.RunInfo) -> Run:
        """From the runner's reply (``servicer.run_info``, reversed)."""
        return cls(
            id=m.id,
            thread_id=m.thread_id,
            user_id=m.user_id,
            org_id=m.org_id or None,
            session_id=m.session_id or None,
            agent_id=m.agent_id,
            status=m.status,
            error=m.error,
            holder=m.holder or None,
            input_item_id=m.input_item_id or None,
            created_at=from_timestamp(m.created_at),
            started_at=optional_timestamp(m, "started_at"),
            ended_at=optional_timestamp(m, "ended_at"),
            lease_expires_at=optional_timestamp(m, "lease_expires_at"),
            last_seq=m.last_seq,
        )


@dataclass(frozen=True)
class Handoff:
    """Who answers a thread: ``agent``, ``waiting`` (for a person) or ``human`` (``operator_id`` holds it)."""

    thread_id: str
    kind: str
    operator_id: str | None = None
    escalation_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    session_id: str | None = None

    @classmethod
    def from_proto(cls, message: pb.Handoff) -> Handoff:
        """From the runner's reply."""
        return cls(
            thread_id=message.thread_id,
            kind=message.kind or "agent",
            operator_id=message.operator_id or None,
            escalation_id=message.escalation_id or None,
            since=optional_timestamp(message, "since"),
            until=optional_timestamp(message, "until"),
            session_id=message.session_id or None,
        )


class RunStream:
    """The events of one run (``Run`` or ``Join``).

    ``started()`` waits for the first message: the run id (empty for a ``Join``
    of a thread with no active run) and its status. ``batches()`` yields each
    message's events as (sequence number of the first, the SDK's JSON of each);
    iterating the stream itself yields parsed ``ThreadStreamEvent`` s. After the
    end, ``status`` is the run's final status.
    """

    def __init__(self, call: Any) -> None:
        self._call = call
        self.run_id: str | None = None
        self.status = ""
        self._pending: list[tuple[int, list[bytes]]] = []

    async def started(self) -> str:
        """Wait for the server to accept the run and return its id ('' when a join found none).

        Raises:
            SwitchboardError: the run was refused (e.g. FailedPrecondition: the thread is busy).
        """
        while self.run_id is None:
            if not await self._fill():
                self.run_id = ""
        return self.run_id

    async def _fill(self) -> bool:
        try:
            message = await self._call.read()
        except grpc.aio.AioRpcError as error:
            raise error_from_rpc(error, service="agent_runner") from None
        if message is grpc.aio.EOF:  # type: ignore[attr-defined]
            return False
        if self.run_id is None:
            self.run_id = message.run_id
        if message.status:
            self.status = message.status
        if message.events_json:
            self._pending.append((message.first_seq, list(message.events_json)))
        return True

    async def batches(self) -> AsyncIterator[tuple[int, list[bytes]]]:
        """Each message's events, unparsed, numbered from its first sequence number."""
        await self.started()
        while True:
            while self._pending:
                yield self._pending.pop(0)
            if not await self._fill():
                return

    def __aiter__(self) -> AsyncIterator[ThreadStreamEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[ThreadStreamEvent]:
        async for _first, bodies in self.batches():
            for body in bodies:
                yield EVENT_ADAPTER.validate_json(body)

    def close(self) -> None:
        """Stop reading (the run goes on)."""
        self._call.cancel()


class AgentRunnerClient:
    """A client of the agent runner; safe to build at import time.

    Args:
        target: ``host:port`` of the agent runner.
        timeout: Seconds for unary calls.
        credentials: What each call carries (default: service tokens when this process holds
            ``SWITCHBOARD_INTERNAL_SECRET``, else ``SWITCHBOARD_TOKEN``; see ``switchboard.service_auth``).
    """

    def __init__(self, target: str, *, timeout: float = 10.0, credentials: CallCredentials | None = FROM_ENV) -> None:
        self._channels = LoopLocalChannels(target, AgentRunnerStub, audience="agent_runner", credentials=credentials)
        self._timeout = timeout

    def run(
        self,
        principal: Caller,
        *,
        thread_id: str,
        user_message: UserMessageItem | None = None,
        retry_after_item_id: str | None = None,
        continue_thread: bool = False,
        agent_id: str | None = None,
        run_id: str | None = None,
        create_thread: ThreadMetadata | None = None,
        scope: str | None = None,
        approval: tuple[str, bool] | None = None,
        answer: list[str] | None = None,
    ) -> RunStream:
        """Start a run; iterate the result for its events. ``approval`` is (card id, approve?): a
        click on an approval card, which resumes the run waiting on it (``answer``: the values chosen
        for an ``ask_user`` question)."""
        request = pb.RunRequest(
            principal=principal_to_proto(principal),
            thread_id=thread_id,
            agent_id=agent_id or "",
            run_id=run_id or "",
            scope=scope or "",
        )
        if user_message is not None:
            request.user_message_json = user_message.model_dump_json().encode()
        elif retry_after_item_id is not None:
            request.retry_after_item_id = retry_after_item_id
        elif continue_thread:
            request.continue_thread = True
        elif approval is not None:
            card_id, approve = approval
            request.approval.CopyFrom(pb.ApprovalDecision(card_id=card_id, approve=approve, answer=answer or []))
        if create_thread is not None:
            request.create_thread_json = create_thread.model_dump_json(exclude={"items"}).encode()
        return RunStream(self._channels.stub().Run(request))

    def join(self, principal: Caller, *, thread_id: str, run_id: str | None = None, after_seq: int = 0) -> RunStream:
        """Follow the thread's active run after ``after_seq`` of ``run_id`` (else from its start)."""
        request = pb.JoinRequest(
            principal=principal_to_proto(principal), thread_id=thread_id, run_id=run_id or "", after_seq=after_seq
        )
        return RunStream(self._channels.stub().Join(request))

    async def cancel(
        self,
        principal: Caller,
        run_id: str | None = None,
        *,
        thread_id: str | None = None,
        session_id: str | None = None,
    ) -> list[str]:
        """Cancel a run, a thread's active runs or a session's, wherever they run; the runs stopped.
        An operator naming a session of their org stops its users' runs too; runs and threads are
        the caller's own only.

        Raises:
            NotFound: ``run_id`` names no active run of the principal; ``thread_id`` is not theirs.
        """
        request = pb.CancelRequest(principal=principal_to_proto(principal))
        if run_id is not None:
            request.run_id = run_id
        elif thread_id is not None:
            request.thread_id = thread_id
        elif session_id is not None:
            request.session_id = session_id
        reply: pb.CancelResponse = await self._unary("Cancel", request)
        return list(reply.run_ids)

    async def get_run(self, principal: Caller, run_id: str) -> Run:
        """A run of the principal (operators: of their org)."""
        request = pb.GetRunRequest(principal=principal_to_proto(principal), run_id=run_id)
        return Run.from_proto(await self._unary("GetRun", request))

    async def list_runs(
        self, principal: Caller, *, thread_id: str, limit: int = 20, after: str | None = None
    ) -> Page[Run]:
        """A thread's runs, newest first."""
        request = pb.ListRunsRequest(
            principal=principal_to_proto(principal), thread_id=thread_id, limit=limit, after=after or ""
        )
        reply: pb.ListRunsResponse = await self._unary("ListRuns", request)
        return Page(items=[Run.from_proto(r) for r in reply.runs], has_more=reply.has_more, after=reply.after or None)

    # -- hand-off ----------------------------------------------------------------

    async def escalate(self, principal: Caller, *, thread_id: str, reason: str) -> Handoff:
        """Ask for a person (the thread's owner) or queue the thread for one (an operator of its org)."""
        request = pb.EscalateRequest(principal=principal_to_proto(principal), thread_id=thread_id, reason=reason)
        return Handoff.from_proto(await self._unary("Escalate", request))

    async def take_over(
        self, principal: Caller, *, thread_id: str | None = None, escalation_id: str | None = None
    ) -> Handoff:
        """An operator takes a thread (by thread, or by claiming its escalation).

        Raises:
            FailedPrecondition: another operator holds it.
            NotFound: not a thread (escalation) of the operator's org.
        """
        request = pb.TakeOverRequest(principal=principal_to_proto(principal))
        if escalation_id is not None:
            request.escalation_id = escalation_id
        else:
            request.thread_id = thread_id or ""
        return Handoff.from_proto(await self._unary("TakeOver", request))

    async def post_operator_message(self, principal: Caller, *, thread_id: str, text: str) -> AssistantMessageItem:
        """The holding operator's reply to the user; the item as stored.

        Raises:
            PermissionDenied: the caller does not hold the thread.
        """
        request = pb.OperatorMessageRequest(principal=principal_to_proto(principal), thread_id=thread_id, text=text)
        reply: pb.OperatorMessage = await self._unary("PostOperatorMessage", request)
        return AssistantMessageItem.model_validate_json(reply.item_json)

    async def hand_back(self, principal: Caller, *, thread_id: str, resolution: str = "") -> Handoff:
        """Give the thread back to the agent and resolve its escalation."""
        request = pb.HandBackRequest(
            principal=principal_to_proto(principal), thread_id=thread_id, resolution=resolution
        )
        return Handoff.from_proto(await self._unary("HandBack", request))

    async def _unary(self, method: str, request: Any) -> Any:
        try:
            return await getattr(self._channels.stub(), method)(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as error:
            raise error_from_rpc(error, service="agent_runner") from None

    async def close(self) -> None:
        """Close this loop's channel."""
        await self._channels.close()
