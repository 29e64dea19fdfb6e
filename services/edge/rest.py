"""The REST endpoints: chat sessions and read-only views of conversations.

Every endpoint authenticates like ``POST /chatkit``; request bodies are
validated models that refuse unknown fields.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from chatkit.types import (
    HiddenContextItem,
    InferenceOptions,
    ItemsListParams,
    ThreadMetadata,
    UserMessageItem,
    UserMessageTagContent,
    UserMessageTextContent,
)
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from services.agent_runner.client import Run
from services.edge.auth import RequestContext, bearer_token
from services.edge.config import EdgeConfig
from services.session_api.client import Session
from switchboard.config import env_str
from switchboard.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from switchboard.principal import Principal
from switchboard.service_auth import ServiceTokenVerifier, check_secret, is_service_token

if TYPE_CHECKING:
    from services.edge.app import Edge

ID_PATTERN = r"^[A-Za-z0-9_\-]{1,128}$"
SessionId = Annotated[str, Path(pattern=ID_PATTERN, description="a session id")]
ThreadId = Annotated[str, Path(pattern=ID_PATTERN, description="a conversation (thread) id")]


class CreateSession(BaseModel):
    """``POST /chatkit/sessions``."""

    model_config = ConfigDict(extra="forbid")
    agent_id: str = Field("", max_length=64, description="the agent that answers (empty: the default)")
    channel: Literal["web", "voice"] = "web"
    metadata: dict[str, Any] = Field(default_factory=dict, description="free-form JSON object kept with the session")
    thread_id: str = Field("", max_length=128, description="a conversation to attach now")


class TurnInput(BaseModel):
    """What a service posts into a conversation."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=20_000)


class StartTurn(BaseModel):
    """``POST /api/threads/{id}/runs``: a message (or a note for the agent) from another service."""

    model_config = ConfigDict(extra="forbid")
    input: TurnInput
    agent: str = Field("", max_length=64, description="the agent that answers (empty: the thread's)")
    role: Literal["user", "system_note"] = Field(
        "user",
        description=(
            "user: a message in the conversation, shown to the user labelled with its source; "
            "system_note: a note only the agent reads (the user sees its answer)"
        ),
    )


class CancelSession(BaseModel):
    """``POST /chatkit/sessions/{id}/cancel``."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=500)


class RecordEvent(BaseModel):
    """``POST /chatkit/sessions/{id}/events``: a UI event for the audit log."""

    model_config = ConfigDict(extra="forbid")
    type: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.\-]*$", examples=["button_click"])
    payload: dict[str, Any] = Field(default_factory=dict)


class HostedOut(BaseModel):
    """A hosted session's OpenAI side: its current OpenAI ChatKit session."""

    openai_session_id: str
    workflow_id: str
    status: Literal["active", "expired", "cancelled"]
    expires_at: datetime
    openai_user: str = Field(description="the stable, opaque id OpenAI knows the user by")


class SessionOut(BaseModel):
    """A chat session."""

    id: str
    user_id: str
    org_id: str | None
    channel: str
    agent_id: str
    status: str
    created_at: datetime
    ended_at: datetime | None
    metadata: dict[str, Any]
    thread_ids: list[str]
    mode: Literal["self_hosted", "hosted"] = "self_hosted"
    hosted: HostedOut | None = None


class ClientSecretOut(BaseModel):
    """A short-lived token for ChatKit's ``getClientSecret``: send it as ``Authorization: Bearer``."""

    token: str
    expires_at: datetime


class CreatedSession(BaseModel):
    """A new session and its client secret.

    ``mode`` "hosted": the agent is an OpenAI ChatKit workflow; the client secret is OpenAI's,
    for ChatKit's ``api.getClientSecret`` against OpenAI (not this edge's ``/chatkit``).
    """

    session: SessionOut
    client_secret: ClientSecretOut
    mode: Literal["self_hosted", "hosted"] = "self_hosted"


class HostedPageOut(BaseModel):
    """A page of a hosted session's ChatKit objects, as OpenAI's ChatKit API returned them."""

    data: list[dict[str, Any]]
    has_more: bool
    after: str | None


class EventOut(BaseModel):
    """A recorded UI event."""

    id: int
    session_id: str
    type: str
    actor_user_id: str
    payload: dict[str, Any]
    created_at: datetime


class ConversationOut(BaseModel):
    """A conversation (a ChatKit thread)."""

    id: str
    title: str | None
    created_at: datetime
    status: dict[str, Any]
    metadata: dict[str, Any]


class CancelledRuns(BaseModel):
    """The runs a cancel stopped (their open streams end, the partial answers are kept)."""

    cancelled: list[str]


class RunOut(BaseModel):
    """A run: one answer of the agent in a conversation."""

    id: str
    thread_id: str
    session_id: str | None
    agent_id: str
    status: Literal["queued", "running", "waiting_approval", "completed", "cancelled", "failed", "interrupted"]
    error: str | None
    input_item_id: str | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    events: int


class RunsPage(BaseModel):
    """A page of a conversation's runs, newest first."""

    data: list[RunOut]
    has_more: bool
    after: str | None


def run_out(r: Run) -> RunOut:
    """The REST form of a run."""
    return RunOut(
        id=r.id,
        thread_id=r.thread_id,
        session_id=r.session_id,
        agent_id=r.agent_id,
        status=r.status,  # type: ignore[arg-type]
        error=r.error or None,
        input_item_id=r.input_item_id,
        created_at=r.created_at,
        started_at=r.started_at,
        ended_at=r.ended_at,
        events=r.last_seq,
    )


class StartedTurn(BaseModel):
    """The run a service's turn started (or, for a repeated Idempotency-Key, the one it started before)."""

    run: RunOut
    item_id: str
    repeated: bool = Field(description="true when this Idempotency-Key started the run already: nothing new")


class ConversationsPage(BaseModel):
    """A page of conversations, most recent activity first."""

    data: list[ConversationOut]
    has_more: bool
    after: str | None


def session_out(s: Session) -> SessionOut:
    """The REST form of a session."""
    return SessionOut(
        id=s.id,
        user_id=s.user_id,
        org_id=s.org_id,
        channel=s.channel,
        agent_id=s.agent_id,
        status=s.status,
        created_at=s.created_at,
        ended_at=s.ended_at,
        metadata=json.loads(s.metadata_json) if s.metadata_json else {},
        thread_ids=list(s.thread_ids),
        mode="hosted" if s.hosted is not None else "self_hosted",
        hosted=HostedOut(
            openai_session_id=s.hosted.openai_session_id,
            workflow_id=s.hosted.workflow_id,
            status=s.hosted.status(datetime.now(UTC)),  # type: ignore[arg-type]
            expires_at=s.hosted.expires_at,
            openai_user=s.hosted.openai_user,
        )
        if s.hosted is not None
        else None,
    )


def conversation_out(thread: ThreadMetadata) -> ConversationOut:
    """The REST form of a thread."""
    return ConversationOut(
        id=thread.id,
        title=thread.title,
        created_at=thread.created_at,
        status=thread.status.model_dump(mode="json"),
        metadata=thread.metadata,
    )


async def request_context(request: Request) -> RequestContext:
    """The authenticated, rate-limited context of a request (a FastAPI dependency)."""
    context: RequestContext = await request.app.state.edge.context(request)
    return context


Context = Annotated[RequestContext, Depends(request_context)]


def build_router(edge: Edge, config: EdgeConfig) -> APIRouter:
    """The REST routes, bound to the edge's clients."""
    router = APIRouter()

    @router.post("/chatkit/sessions", tags=["sessions"], summary="Start a chat session")
    async def create_session(body: CreateSession, context: Context) -> CreatedSession:
        metadata = json.dumps(body.metadata).encode()
        if len(metadata) > config.max_body_bytes:
            raise InvalidArgument("metadata is too large")
        reply = await edge.sessions.create_session(
            context.principal,
            channel=body.channel,
            agent_id=body.agent_id,
            metadata_json=metadata,
            thread_id=body.thread_id,
        )
        secret = ClientSecretOut(token=reply.client_secret.token, expires_at=reply.client_secret.expires_at)
        session = session_out(reply.session)
        return CreatedSession(session=session, client_secret=secret, mode=session.mode)

    @router.get("/chatkit/sessions/{session_id}", tags=["sessions"], summary="A session of the caller")
    async def get_session(session_id: SessionId, context: Context) -> SessionOut:
        return session_out(await edge.sessions.get_session(context.principal, session_id))

    @router.post(
        "/chatkit/sessions/{session_id}/refresh",
        tags=["sessions"],
        summary="A new client secret for the session",
        description=(
            "Call it with the current client secret (or the user's identity-provider token) before the secret "
            "expires: ChatKit's getClientSecret(currentClientSecret). The session stays the same; a cancelled or "
            "ended session cannot refresh (409: start a new session), another user's session is 404."
        ),
    )
    async def refresh_session(session_id: SessionId, context: Context) -> ClientSecretOut:
        secret = await edge.sessions.refresh_session(context.principal, session_id)
        return ClientSecretOut(token=secret.token, expires_at=secret.expires_at)

    @router.get(
        "/chatkit/sessions/{session_id}/hosted/threads",
        tags=["sessions"],
        summary="A hosted session's conversations at OpenAI (read-only)",
        description="The session's user's ChatKit threads, newest first, through OpenAI's ChatKit threads API. "
        "The session's user or an operator of its org; 409 for a self-hosted session (use /api/threads).",
    )
    async def hosted_threads(
        session_id: SessionId,
        context: Context,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        after: Annotated[str, Query(pattern=r"^[A-Za-z0-9_\-]{0,255}$")] = "",
    ) -> HostedPageOut:
        page = await edge.sessions.list_hosted_threads(context.principal, session_id, limit=limit, after=after)
        return HostedPageOut(data=page.items, has_more=page.has_more, after=page.after)

    @router.get(
        "/chatkit/sessions/{session_id}/hosted/threads/{thread_id}/items",
        tags=["sessions"],
        summary="The items of a hosted conversation (read-only)",
    )
    async def hosted_items(
        session_id: SessionId,
        thread_id: ThreadId,
        context: Context,
        limit: Annotated[int, Query(ge=1, le=100)] = 100,
        after: Annotated[str, Query(pattern=r"^[A-Za-z0-9_\-]{0,255}$")] = "",
    ) -> HostedPageOut:
        page = await edge.sessions.list_hosted_items(context.principal, session_id, thread_id, limit=limit, after=after)
        return HostedPageOut(data=page.items, has_more=page.has_more, after=page.after)

    @router.post("/chatkit/sessions/{session_id}/cancel", tags=["sessions"], summary="Cancel a session")
    async def cancel_session(session_id: SessionId, context: Context, body: CancelSession | None = None) -> SessionOut:
        reason = body.reason if body else ""
        session = await edge.sessions.cancel_session(context.principal, session_id, reason=reason)
        # The session's answers stop too (decision: after the session is cancelled,
        # so a run cannot start in it between the two calls).
        await edge.runner.cancel(context.principal, session_id=session_id)
        return session_out(session)

    @router.post(
        "/chatkit/threads/{thread_id}/cancel",
        tags=["chatkit"],
        summary="Stop a conversation's answer",
        description="Cancels the thread's running and queued runs, from any edge replica; open streams end.",
    )
    async def cancel_thread_runs(thread_id: ThreadId, context: Context) -> CancelledRuns:
        return CancelledRuns(cancelled=await edge.runner.cancel(context.principal, thread_id=thread_id))

    service_tokens = _service_tokens()

    async def turn_caller(request: Request) -> tuple[Principal, str | None]:
        """Who starts a turn: the principal the thread is looked up as, and the label of the source
        (None: the thread's own user). A service token for the edge (audience ``edge``) acts for
        the user it names, or as a service with ``runs:write`` bound to an org; anything else
        authenticates as every request does (an operator reaches the threads of their org)."""
        try:
            token = bearer_token(request.headers.get("authorization"))
        except Unauthenticated:
            token = ""  # refused below, as every request is (and counted against the address)
        if service_tokens is not None and token and is_service_token(token):
            credential = service_tokens.verify(token)
            if credential.kind == "on_behalf" and credential.principal is not None:
                return credential.principal, credential.service
            if not credential.allows("runs:write"):
                raise PermissionDenied("this service token lacks the scope 'runs:write'")
            if not credential.org_id:
                raise PermissionDenied(
                    "a service token that starts turns must be bound to an org: switchboard token --service NAME"
                    " --scope runs:write --org ORG"
                )
            finder = Principal(user_id=f"service:{credential.service}", org_id=credential.org_id, roles=("operator",))
            return finder, credential.service
        principal = (await edge.context(request)).principal
        return principal, None

    @router.post(
        "/api/threads/{thread_id}/runs",
        tags=["conversations"],
        summary="Post a message into a user's conversation and start a run",
        status_code=202,
        description=(
            "For other services (a service token with runs:write bound to the thread's org, or acting for the "
            "user) and operators (threads of their org). The message is labelled with its source (an input_tag); "
            "role system_note is a note only the agent reads. The run follows the thread's double-texting policy; "
            "the user's open stream or a later join shows it. With an Idempotency-Key, a repeated call starts "
            "nothing new and answers the first call's run."
        ),
    )
    async def start_turn(
        thread_id: ThreadId,
        body: StartTurn,
        request: Request,
        idempotency_key: Annotated[str | None, Header(max_length=200, pattern=r"^[\x21-\x7e]+$")] = None,
    ) -> StartedTurn:
        finder, source = await turn_caller(request)
        user_id, org_id = await edge.store.thread_owner(thread_id, finder)
        owner = Principal(user_id=user_id, org_id=org_id)
        if source is None and owner.user_id != finder.user_id:
            source = f"operator {finder.user_id}"
        item_id, run_id = f"msg_{uuid.uuid4().hex}", None
        if idempotency_key is not None:
            digest = hashlib.sha256(f"{source or finder.user_id}\n{thread_id}\n{idempotency_key}".encode()).hexdigest()
            item_id, run_id = f"msg_turn_{digest[:32]}", f"run_turn_{digest[:32]}"
            earlier = await _earlier_run(owner, run_id)
            if earlier is not None:
                return StartedTurn(run=run_out(earlier), item_id=item_id, repeated=True)
        now = datetime.now(UTC)
        message: UserMessageItem | None = None
        if body.role == "system_note":
            note = f"Note from {source or 'the user'} (not shown to the user): {body.input.text}"
            await edge.store.add_thread_item(
                thread_id, HiddenContextItem(id=item_id, thread_id=thread_id, created_at=now, content=note), owner
            )
        else:
            content: list[Any] = [UserMessageTextContent(text=body.input.text)]
            if source is not None:
                # ChatKit renders a tag inline as "@source" before the text: "@billing-worker <text>".
                tag = UserMessageTagContent(id=f"source:{source}", text=source, data={"source": source})
                content = [tag, UserMessageTextContent(text=" " + body.input.text)]
            message = UserMessageItem(
                id=item_id,
                thread_id=thread_id,
                created_at=now,
                content=content,
                attachments=[],
                inference_options=InferenceOptions(),
            )
        stream = edge.runner.run(
            owner,
            thread_id=thread_id,
            user_message=message,
            continue_thread=message is None,
            agent_id=body.agent or None,
            run_id=run_id,
        )
        try:
            started = await stream.started()
        except InvalidArgument:
            # The same Idempotency-Key raced another call of it: that call's run is the answer.
            earlier = await _earlier_run(owner, run_id) if run_id else None
            if earlier is None:
                raise
            return StartedTurn(run=run_out(earlier), item_id=item_id, repeated=True)
        finally:
            stream.close()  # the run goes on without a listener
        return StartedTurn(run=run_out(await edge.runner.get_run(owner, started)), item_id=item_id, repeated=False)

    async def _earlier_run(owner: Principal, run_id: str) -> Run | None:
        try:
            return await edge.runner.get_run(owner, run_id)
        except NotFound:
            return None

    @router.get("/api/threads/{thread_id}/runs", tags=["conversations"], summary="A conversation's runs, newest first")
    async def list_runs(
        thread_id: ThreadId,
        context: Context,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        after: Annotated[
            str | None, Query(pattern=r"^[A-Za-z0-9_\-]{1,64}$", description="the last run id of the previous page")
        ] = None,
    ) -> RunsPage:
        page = await edge.runner.list_runs(context.principal, thread_id=thread_id, limit=limit, after=after)
        return RunsPage(data=[run_out(r) for r in page.items], has_more=page.has_more, after=page.after)

    @router.post(
        "/chatkit/sessions/{session_id}/events", tags=["sessions"], summary="Record a UI event", status_code=201
    )
    async def record_event(session_id: SessionId, body: RecordEvent, context: Context) -> EventOut:
        payload = json.dumps(body.payload).encode()
        event = await edge.sessions.record_event(context.principal, session_id, type=body.type, payload_json=payload)
        return EventOut(
            id=event.id,
            session_id=event.session_id,
            type=event.type,
            actor_user_id=event.actor_user_id,
            payload=json.loads(event.payload_json) if event.payload_json else {},
            created_at=event.created_at,
        )

    @router.get("/api/conversations", tags=["conversations"], summary="The caller's conversations, most recent first")
    async def list_conversations(
        context: Context,
        scope: Annotated[
            str | None, Query(max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$", description="only this scope")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        after: Annotated[str | None, Query(pattern=ID_PATTERN, description="the last id of the previous page")] = None,
    ) -> ConversationsPage:
        page = await edge.chatkit.list_threads(
            context, limit=limit, after=after, order="desc", scope=scope, recent=True
        )
        return ConversationsPage(
            data=[conversation_out(t) for t in page.data], has_more=page.has_more, after=page.after
        )

    @router.get(
        "/api/users/{user_id}/conversations",
        tags=["conversations"],
        summary="A user's conversations (only the caller's own: 403 for another user)",
    )
    async def list_user_conversations(
        user_id: Annotated[str, Path(max_length=128)],
        context: Context,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        after: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    ) -> ConversationsPage:
        if user_id != context.user_id:
            raise PermissionDenied("this path names another user")
        return await list_conversations(context, None, limit, after)

    @router.get(
        "/api/conversations/{thread_id}/messages",
        tags=["conversations"],
        summary="A conversation's items (ChatKit JSON), oldest first by default",
        response_description="a page: data (ChatKit thread items), has_more, after",
    )
    async def list_messages(
        thread_id: ThreadId,
        context: Context,
        limit: Annotated[int, Query(ge=1, le=100)] = 50,
        after: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
        order: Annotated[Literal["asc", "desc"], Query()] = "asc",
    ) -> Response:
        params = ItemsListParams(thread_id=thread_id, limit=limit, after=after, order=order)
        return Response(await edge.chatkit.items_list_json(params, context), media_type="application/json")

    return router


def _service_tokens() -> ServiceTokenVerifier | None:
    """The edge's verifier of service tokens for it (audience ``edge``), when it holds the internal key."""
    secret = env_str("SWITCHBOARD_INTERNAL_SECRET")
    return ServiceTokenVerifier(check_secret(secret), audience="edge") if secret else None
