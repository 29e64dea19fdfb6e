"""Hand-off over HTTP: the user asks for a person; operators take conversations, reply and hand back.

The same actions as the console, for web dashboards, with an operator's bearer
token. The services enforce who may do what (only the holder replies, nobody
rewrites another author's items); these routes only translate. A thread or an
escalation of another org is 404, a caller without the operator role 403.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

from chatkit.types import ItemsListParams
from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from services.agent_runner.client import Handoff
from services.edge.rest import ID_PATTERN, Context, ThreadId
from services.session_api.client import Escalation
from switchboard.errors import PermissionDenied

if TYPE_CHECKING:
    from services.edge.app import Edge

DEFAULT_REASON = "the user asked for a person"
EscalationId = Annotated[str, Path(pattern=ID_PATTERN, description="an escalation id")]


class EscalateBody(BaseModel):
    """``POST /chatkit/threads/{id}/escalate``: the user asks for a person."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(DEFAULT_REASON, min_length=1, max_length=2000)


class OperatorMessageBody(BaseModel):
    """``POST /api/operator/threads/{id}/messages``."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=8000)


class HandBackBody(BaseModel):
    """``POST /api/operator/threads/{id}/handback``."""

    model_config = ConfigDict(extra="forbid")
    resolution: str = Field("", max_length=2000, description="what was decided, for the record and the agent")


class HandoffOut(BaseModel):
    """Who answers a conversation: ``agent``, ``waiting`` (for a person) or ``human`` (``operator_id``)."""

    thread_id: str
    handled_by: Literal["agent", "waiting", "human"]
    operator_id: str | None
    escalation_id: str | None
    since: datetime | None
    until: datetime | None = Field(description="waiting: when the conversation goes back to the agent")
    session_id: str | None


class EscalationOut(BaseModel):
    """An escalation in the org's queue."""

    id: str
    session_id: str
    thread_id: str
    user_id: str
    reason: str
    status: str
    opened_by: str
    opened_at: datetime
    claimed_by: str | None
    claimed_at: datetime | None
    resolved_by: str | None
    resolved_at: datetime | None
    resolution: str | None


class EscalationsPage(BaseModel):
    """A page of the org's escalations, oldest first."""

    data: list[EscalationOut]
    has_more: bool
    after: str | None


def handoff_out(handoff: Handoff) -> HandoffOut:
    """The REST form of a thread's handler."""
    return HandoffOut(
        thread_id=handoff.thread_id,
        handled_by=handoff.kind,  # type: ignore[arg-type]
        operator_id=handoff.operator_id,
        escalation_id=handoff.escalation_id,
        since=handoff.since,
        until=handoff.until,
        session_id=handoff.session_id,
    )


def escalation_out(e: Escalation) -> EscalationOut:
    """The REST form of an escalation."""
    return EscalationOut(
        id=e.id,
        session_id=e.session_id,
        thread_id=e.thread_id,
        user_id=e.user_id,
        reason=e.reason,
        status=e.status,
        opened_by=e.opened_by,
        opened_at=e.opened_at,
        claimed_by=e.claimed_by,
        claimed_at=e.claimed_at,
        resolved_by=e.resolved_by,
        resolved_at=e.resolved_at,
        resolution=e.resolution or None,
    )


def _operator(context: Context) -> None:
    principal = context.principal
    if not (principal.is_operator and principal.org_id):
        raise PermissionDenied("this needs an operator's token (the operator role and an org)")


def build_operator_router(edge: Edge) -> APIRouter:
    """The hand-off routes, bound to the edge's clients."""
    router = APIRouter()

    @router.post(
        "/chatkit/threads/{thread_id}/escalate",
        tags=["hand-off"],
        summary="Ask for a person",
        description="The conversation waits for a person from the team; the agent stops answering until then.",
    )
    async def escalate(thread_id: ThreadId, context: Context, body: EscalateBody | None = None) -> HandoffOut:
        reason = body.reason if body is not None else DEFAULT_REASON
        return handoff_out(await edge.runner.escalate(context.principal, thread_id=thread_id, reason=reason))

    @router.get("/api/operator/escalations", tags=["hand-off"], summary="The org's escalations, oldest first")
    async def list_escalations(
        context: Context,
        status: Annotated[Literal["open", "claimed", "resolved"] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        after: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    ) -> EscalationsPage:
        _operator(context)
        page = await edge.sessions.list_escalations(context.principal, status=status, limit=limit, after=after or "")
        return EscalationsPage(data=[escalation_out(e) for e in page.items], has_more=page.has_more, after=page.after)

    @router.post(
        "/api/operator/escalations/{escalation_id}/claim",
        tags=["hand-off"],
        summary="Claim an escalation: the operator now handles its conversation",
    )
    async def claim(escalation_id: EscalationId, context: Context) -> HandoffOut:
        _operator(context)
        return handoff_out(await edge.runner.take_over(context.principal, escalation_id=escalation_id))

    @router.post(
        "/api/operator/threads/{thread_id}/takeover",
        tags=["hand-off"],
        summary="Take over a conversation (escalated or not); the agent's running answer stops",
    )
    async def take_over(thread_id: ThreadId, context: Context) -> HandoffOut:
        _operator(context)
        return handoff_out(await edge.runner.take_over(context.principal, thread_id=thread_id))

    @router.post(
        "/api/operator/threads/{thread_id}/messages",
        tags=["hand-off"],
        summary="Reply to the user (only the operator holding the conversation)",
        status_code=201,
        response_description="the ChatKit assistant message as stored",
    )
    async def reply(thread_id: ThreadId, body: OperatorMessageBody, context: Context) -> Response:
        _operator(context)
        item = await edge.runner.post_operator_message(context.principal, thread_id=thread_id, text=body.text)
        return Response(item.model_dump_json(), status_code=201, media_type="application/json")

    @router.post(
        "/api/operator/threads/{thread_id}/handback",
        tags=["hand-off"],
        summary="Give the conversation back to the agent and resolve its escalation",
    )
    async def hand_back(thread_id: ThreadId, context: Context, body: HandBackBody | None = None) -> HandoffOut:
        _operator(context)
        resolution = body.resolution if body is not None else ""
        return handoff_out(await edge.runner.hand_back(context.principal, thread_id=thread_id, resolution=resolution))

    @router.get(
        "/api/operator/threads/{thread_id}/messages",
        tags=["hand-off"],
        summary="A conversation of the org: its items (ChatKit JSON), oldest first by default",
    )
    async def read(
        thread_id: ThreadId,
        context: Context,
        limit: Annotated[int, Query(ge=1, le=100)] = 50,
        after: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
        order: Annotated[Literal["asc", "desc"], Query()] = "asc",
    ) -> Response:
        _operator(context)
        params = ItemsListParams(thread_id=thread_id, limit=limit, after=after, order=order)
        return Response(await edge.chatkit.items_list_json(params, context), media_type="application/json")

    return router
