"""The AgentRunner gRPC servicer: protobuf in, domain calls, protobuf out; nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator

from chatkit.types import ThreadMetadata, UserMessageItem
from pydantic import ValidationError

from services.agent_runner.handoff import HandoffView
from services.agent_runner.runs import RunRecord
from services.agent_runner.service import AgentRunnerService, ApprovalDecision, RunRequest
from switchboard.api.v1 import agent_runner_pb2 as pb
from switchboard.api.v1 import agent_runner_pb2_grpc
from switchboard.errors import InvalidArgument
from switchboard.grpc_runtime import ServicerContext
from switchboard.proto_convert import request_principal, timestamp

MAX_ANSWERS = 10
MAX_ANSWER_CHARS = 1000


def run_request_from_proto(request: pb.RunRequest) -> RunRequest:
    """Validate a Run request."""
    principal = request_principal(request)
    user_message: UserMessageItem | None = None
    which = request.WhichOneof("input")
    if which == "user_message_json":
        try:
            user_message = UserMessageItem.model_validate_json(request.user_message_json)
        except ValidationError as error:
            raise InvalidArgument(
                f"user_message_json is not a ChatKit user message: {error.errors()[0]['msg']}"
            ) from None
    create: ThreadMetadata | None = None
    if request.create_thread_json:
        try:
            create = ThreadMetadata.model_validate_json(request.create_thread_json)
        except ValidationError as error:
            raise InvalidArgument(f"create_thread_json is not a ChatKit thread: {error.errors()[0]['msg']}") from None
    return RunRequest(
        principal=principal,
        thread_id=request.thread_id,
        user_message=user_message,
        retry_after_item_id=request.retry_after_item_id if which == "retry_after_item_id" else None,
        continue_thread=which == "continue_thread" and request.continue_thread,
        agent_id=request.agent_id or None,
        run_id=request.run_id or None,
        create_thread=create,
        scope=request.scope or None,
        approval=ApprovalDecision(
            card_id=request.approval.card_id,
            approve=request.approval.approve,
            answer=tuple(a[:MAX_ANSWER_CHARS] for a in request.approval.answer[:MAX_ANSWERS]),
        )
        if which == "approval"
        else None,
    )


def run_info(record: RunRecord) -> pb.RunInfo:
    """The protobuf form of a run."""
    info = pb.RunInfo(
        id=record.id,
        thread_id=record.thread_id,
        user_id=record.user_id,
        org_id=record.org_id or "",
        session_id=record.session_id or "",
        agent_id=record.agent_id,
        status=record.status,
        error=record.error,
        holder=record.holder or "",
        created_at=timestamp(record.created_at),
        last_seq=record.last_seq,
        input_item_id=record.input_item_id,
    )
    if record.lease_expires_at is not None:
        info.lease_expires_at.CopyFrom(timestamp(record.lease_expires_at))
    if record.started_at is not None:
        info.started_at.CopyFrom(timestamp(record.started_at))
    if record.ended_at is not None:
        info.ended_at.CopyFrom(timestamp(record.ended_at))
    return info


def handoff_info(view: HandoffView) -> pb.Handoff:
    """The protobuf form of a thread's handler."""
    handler = view.handler
    message = pb.Handoff(
        thread_id=view.thread_id,
        kind=handler.kind,
        operator_id=handler.operator_id or "",
        escalation_id=handler.escalation_id or "",
        session_id=view.session_id or "",
    )
    if handler.since is not None:
        message.since.CopyFrom(timestamp(handler.since))
    if handler.until is not None:
        message.until.CopyFrom(timestamp(handler.until))
    return message


class AgentRunnerServicer(agent_runner_pb2_grpc.AgentRunnerServicer):
    """Serves ``switchboard.api.v1.AgentRunner``."""

    def __init__(self, service: AgentRunnerService) -> None:
        self._service = service

    async def Run(self, request: pb.RunRequest, context: ServicerContext) -> AsyncIterator[pb.RunEvents]:
        run = await self._service.start(run_request_from_proto(request))
        # Subscribed before the first yield: the caller sees every event from the start.
        subscription = run.subscribe(0)
        try:
            yield pb.RunEvents(run_id=run.run_id, status=run.status)
            async for batch in subscription.batches():
                yield pb.RunEvents(run_id=run.run_id, first_seq=batch[0][0], events_json=[body for _, body in batch])
            yield pb.RunEvents(run_id=run.run_id, status=run.final_status)
        finally:
            subscription.close()  # the caller went away: the run goes on

    async def Join(self, request: pb.JoinRequest, context: ServicerContext) -> AsyncIterator[pb.RunEvents]:
        principal = request_principal(request)
        joined = await self._service.join(
            principal, thread_id=request.thread_id, run_id=request.run_id or None, after_seq=request.after_seq
        )
        if joined.run is None or joined.batches is None:
            yield pb.RunEvents()
            return
        run_id = joined.run.id
        yield pb.RunEvents(run_id=run_id, status=joined.run.status)
        async for batch in joined.batches:
            yield pb.RunEvents(run_id=run_id, first_seq=batch[0][0], events_json=[body for _, body in batch])
        yield pb.RunEvents(run_id=run_id, status=joined.final_status)

    async def Cancel(self, request: pb.CancelRequest, context: ServicerContext) -> pb.CancelResponse:
        principal = request_principal(request)
        which = request.WhichOneof("target")
        if which is None or not getattr(request, which):
            raise InvalidArgument("name the run_id, thread_id or session_id to cancel")
        run_ids = await self._service.cancel(principal, **{which: getattr(request, which)})
        return pb.CancelResponse(run_ids=run_ids)

    async def GetRun(self, request: pb.GetRunRequest, context: ServicerContext) -> pb.RunInfo:
        principal = request_principal(request)
        return run_info(await self._service.get_run(principal, request.run_id))

    async def ListRuns(self, request: pb.ListRunsRequest, context: ServicerContext) -> pb.ListRunsResponse:
        principal = request_principal(request)
        page = await self._service.list_runs(
            principal, thread_id=request.thread_id, limit=request.limit, after=request.after or None
        )
        return pb.ListRunsResponse(
            runs=[run_info(r) for r in page.items], has_more=page.has_more, after=page.after or ""
        )

    async def Escalate(self, request: pb.EscalateRequest, context: ServicerContext) -> pb.Handoff:
        principal = request_principal(request)
        return handoff_info(await self._service.escalate(principal, thread_id=request.thread_id, reason=request.reason))

    async def TakeOver(self, request: pb.TakeOverRequest, context: ServicerContext) -> pb.Handoff:
        principal = request_principal(request)
        which = request.WhichOneof("target")
        if which is None:
            raise InvalidArgument("name the thread_id or the escalation_id to take over")
        return handoff_info(await self._service.take_over(principal, **{which: getattr(request, which)}))

    async def PostOperatorMessage(
        self, request: pb.OperatorMessageRequest, context: ServicerContext
    ) -> pb.OperatorMessage:
        principal = request_principal(request)
        item = await self._service.post_operator_message(principal, thread_id=request.thread_id, text=request.text)
        return pb.OperatorMessage(item_json=item.model_dump_json().encode())

    async def HandBack(self, request: pb.HandBackRequest, context: ServicerContext) -> pb.Handoff:
        principal = request_principal(request)
        view = await self._service.hand_back(principal, thread_id=request.thread_id, resolution=request.resolution)
        return handoff_info(view)
