"""The ChatKit protocol: a ``ChatKitServer`` over the thread store, answered by the agent runner.

- The store is ``GrpcThreadStore``. The requests that answer (create, add a
  message, retry, client tool output, structured input) do not reach the SDK's
  pipeline: ``services.edge.turns`` hands them to the agent runner, the one
  writer of a turn, and relays its events.
- Actions and feedback are recorded as session events in session_api.
- ``threads.list`` is the one listing of threads (``list_threads``, which the
  REST conversations listing uses too): the request's scope only
  (``X-Switchboard-Scope``, or ``metadata.scope`` of the request), by recent
  activity or by creation (``SWITCHBOARD_THREADS_ORDER``).
- ``input.transcribe`` goes to the configured speech-to-text model
  (``services.edge.transcription``), else a clear 400.
- Attachments: two-phase upload. ``attachments.create`` returns an upload URL on
  this edge; the bytes (up to the configured limit) are stored by the thread store.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any, cast

from chatkit.actions import Action
from chatkit.errors import CustomStreamError
from chatkit.server import ChatKitServer, NonStreamingResult, StreamingResult
from chatkit.store import AttachmentStore, Store
from chatkit.types import (
    Attachment,
    AttachmentCreateParams,
    AttachmentUploadDescriptor,
    AudioInput,
    ChatKitReq,
    FeedbackKind,
    FileAttachment,
    ImageAttachment,
    ItemsListParams,
    Page,
    SyncCustomActionResponse,
    ThreadMetadata,
    ThreadsListReq,
    ThreadStreamEvent,
    TranscriptionResult,
    UserMessageItem,
    WidgetItem,
    is_streaming_req,
)
from pydantic import AnyUrl, TypeAdapter

from services.agent_runner.client import AgentRunnerClient
from services.edge.auth import RequestContext, check_scope
from services.edge.config import ThreadsOrder
from services.edge.transcription import NOT_CONFIGURED, Transcriber
from services.session_api.client import SessionApiClient
from services.thread_store.client import ITEM_ADAPTER, GrpcThreadStore
from switchboard.errors import InvalidArgument, ResourceExhausted

log = logging.getLogger(__name__)

SESSION_METADATA_KEY = "session_id"
HIDDEN_ITEM_TYPES = frozenset({"hidden_context_item", "sdk_hidden_context"})
DEFAULT_PAGE_SIZE = 20  # what ChatKitServer uses when the client gives no limit
# Built once: chatkit 1.6.5's process() builds this adapter on every request (about 2 ms).
CHATKIT_REQUEST: TypeAdapter[ChatKitReq] = TypeAdapter(ChatKitReq)
MAX_ACTION_PAYLOAD_BYTES = 16 * 1024
# type/subtype with optional parameters: no spaces, quotes or line breaks (a CRLF would split headers).
MIME_TYPE = re.compile(
    r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}(;[ ]?[a-z0-9_.+-]+=[a-z0-9_.+-]+){0,3}", re.I
)
# Served inline: types a browser shows without running anything. Anything else
# (HTML, SVG, scripts, ...) downloads as a file, so an upload can never run as a page of the edge.
INLINE_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "application/pdf",
        "text/plain",
        "audio/mpeg",
        "audio/wav",
        "video/mp4",
    }
)


def attachment_headers(mime_type: str, name: str) -> dict[str, str]:
    """How an attachment's bytes are served: never sniffed; only safe types inline; others as a download."""
    media = mime_type.split(";", 1)[0].strip().lower()
    safe_name = re.sub(r"[^A-Za-z0-9._ -]", "_", name)[:200] or "attachment"
    headers = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox"}
    if media in INLINE_TYPES:
        headers["Content-Type"] = media
        headers["Content-Disposition"] = f'inline; filename="{safe_name}"'
    else:
        headers["Content-Type"] = "application/octet-stream"
        headers["Content-Disposition"] = f'attachment; filename="{safe_name}"'
    return headers


class EdgeAttachmentStore(AttachmentStore[RequestContext]):
    """Two-phase uploads: metadata now, bytes to ``POST {base_url}/chatkit/attachments/{id}/upload``.

    Args:
        store: Where attachments and their bytes live.
        max_bytes: The largest upload accepted.
    """

    def __init__(self, store: GrpcThreadStore, *, max_bytes: int) -> None:
        self._store = store
        self.max_bytes = max_bytes

    async def create_attachment(self, input: AttachmentCreateParams, context: RequestContext) -> Attachment:
        if not MIME_TYPE.fullmatch(input.mime_type):
            raise InvalidArgument("mime_type must be a media type like 'image/png' or 'application/pdf'")
        if input.size < 0 or input.size > self.max_bytes:
            raise AttachmentTooLarge(f"attachments are limited to {self.max_bytes} bytes; this one is {input.size}")
        if not input.name.strip() or len(input.name) > 255:
            raise InvalidArgument("an attachment needs a name of 1 to 255 characters")
        attachment_id = self._store.generate_attachment_id(input.mime_type, context)
        upload = AttachmentUploadDescriptor(
            url=AnyUrl(f"{context.base_url}/chatkit/attachments/{attachment_id}/upload"), method="POST"
        )
        if input.mime_type.startswith("image/"):
            preview = AnyUrl(f"{context.base_url}/chatkit/attachments/{attachment_id}")
            return ImageAttachment(
                id=attachment_id,
                name=input.name,
                mime_type=input.mime_type,
                upload_descriptor=upload,
                preview_url=preview,
            )
        return FileAttachment(id=attachment_id, name=input.name, mime_type=input.mime_type, upload_descriptor=upload)

    async def delete_attachment(self, attachment_id: str, context: RequestContext) -> None:
        """Nothing to do here: the bytes live with the metadata in the thread store.

        ChatKitServer's ``store.delete_attachment`` that follows removes both, and
        only the caller's (another user's is left untouched). Like the SDK's
        reference store, deleting an attachment that was never saved is no error.
        """


class AttachmentTooLarge(ResourceExhausted):
    """An upload past the configured size limit (HTTP 413)."""


class SwitchboardChatKitServer(ChatKitServer[RequestContext]):
    """The edge's ChatKit server.

    Args:
        store: The thread store client.
        attachments: Two-phase uploads.
        runner: The agent runner.
        sessions: session_api.
        threads_order: How ``threads.list`` orders: ``recent`` (last activity first) or ``created``.
        transcriber: Dictation's speech-to-text model; None: not configured (400).
    """

    def __init__(
        self,
        store: GrpcThreadStore,
        attachments: EdgeAttachmentStore,
        runner: AgentRunnerClient,
        sessions: SessionApiClient,
        *,
        threads_order: ThreadsOrder = "recent",
        transcriber: Transcriber | None = None,
    ) -> None:
        # GrpcThreadStore takes any Caller, and a RequestContext is one; the SDK's
        # Store is invariant in its context type, so say so once here.
        super().__init__(cast("Store[RequestContext]", store), attachments)
        self.threads = store
        self.runner = runner
        self.sessions = sessions
        self.threads_order: ThreadsOrder = threads_order
        self.transcriber = transcriber

    async def process(
        self, request: str | bytes | bytearray, context: RequestContext
    ) -> StreamingResult | NonStreamingResult:
        """``ChatKitServer.process`` with the request adapter built once instead of per request.

        It routes exactly as the SDK's does (the pinned openai-chatkit's private
        ``_process_streaming``/``_process_non_streaming``; the e2e tests cover every request type).
        """
        return await self.process_request(CHATKIT_REQUEST.validate_json(request), context)

    async def process_request(
        self, parsed: ChatKitReq, context: RequestContext
    ) -> StreamingResult | NonStreamingResult:
        """``process`` for a request the caller has parsed already (with ``CHATKIT_REQUEST``)."""
        if is_streaming_req(parsed):
            return StreamingResult(self._process_streaming(parsed, context))
        if isinstance(parsed, ThreadsListReq):
            return NonStreamingResult(await self._threads_list_json(parsed, context))
        return NonStreamingResult(await self._process_non_streaming(parsed, context))

    async def list_threads(
        self,
        context: RequestContext,
        *,
        limit: int,
        after: str | None,
        order: str,
        scope: str | None,
        recent: bool,
    ) -> Page[ThreadMetadata]:
        """The caller's threads, of one scope when given: ChatKit's ``threads.list`` and ``GET /api/conversations``.

        Args:
            context: The caller.
            limit: Page size.
            after: The last thread id of the previous page.
            order: ``desc`` (newest first) or ``asc``.
            scope: Only threads of this scope; None: all of the caller's.
            recent: By last activity (any write to the thread or its items) instead of creation time.
        """
        return await self.threads.load_threads_page(
            limit=limit,
            after=after,
            order=order,
            context=context,
            sort="recent_activity" if recent else "created_at",
            scope=scope,
        )

    async def _threads_list_json(self, request: ThreadsListReq, context: RequestContext) -> bytes:
        """``threads.list`` as the SDK answers it, scoped and ordered as configured."""
        params = request.params
        page = await self.list_threads(
            context,
            limit=params.limit or DEFAULT_PAGE_SIZE,
            after=params.after,
            order=params.order,
            scope=listing_scope(context, request.metadata),
            recent=self.threads_order == "recent",
        )
        return self._serialize(
            Page(has_more=page.has_more, after=page.after, data=[self._to_thread_response(t) for t in page.data])
        )

    async def items_list_json(self, params: ItemsListParams, context: RequestContext) -> bytes:
        """``items.list`` without parsing the items: the SDK's page, from stored bytes.

        Items are stored as the SDK serializes them for clients (``GrpcThreadStore``
        writes them so), so the page is the stored bytes joined. The JSON means the
        same as the SDK's; it is not byte-identical (Postgres ``jsonb`` orders keys
        and spaces separators, about 3% more bytes). Hidden context
        items are left out as the SDK does; a user message whose attachments carry
        integration metadata goes through the SDK's serializer, which drops it.
        """
        limit = params.limit or DEFAULT_PAGE_SIZE
        reply = await self.threads.load_thread_items_raw(params.thread_id, params.after, limit, params.order, context)
        parts = []
        for item in reply.items:
            if item.type in HIDDEN_ITEM_TYPES:
                continue
            raw = item.json
            if item.type == "user_message" and b'"metadata"' in raw:
                raw = self._serialize(ITEM_ADAPTER.validate_json(raw))
            parts.append(raw)
        tail = b',"after":' + json.dumps(reply.after).encode() if reply.after else b""
        more = b"true" if reply.has_more else b"false"
        return b'{"data":[' + b",".join(parts) + b'],"has_more":' + more + tail + b"}"

    async def respond(
        self, thread: ThreadMetadata, input_user_message: UserMessageItem | None, context: RequestContext
    ) -> AsyncIterator[ThreadStreamEvent]:
        """Never called: every request that answers goes to the agent runner through ``Turns``."""
        raise CustomStreamError("this request cannot start an answer here", allow_retry=False)
        yield  # an async generator, as the SDK expects

    async def action(
        self, thread: ThreadMetadata, action: Action[str, Any], sender: WidgetItem | None, context: RequestContext
    ) -> AsyncIterator[ThreadStreamEvent]:
        await self._record_action(thread, action, sender, context, kind="action")
        return
        yield  # an async generator: the action is recorded, nothing is streamed

    async def sync_action(
        self, thread: ThreadMetadata, action: Action[str, Any], sender: WidgetItem | None, context: RequestContext
    ) -> SyncCustomActionResponse:
        await self._record_action(thread, action, sender, context, kind="sync_action")
        return SyncCustomActionResponse(updated_item=None)

    async def transcribe(self, audio_input: AudioInput, context: RequestContext) -> TranscriptionResult:
        """Dictation through the configured speech-to-text model; without one, a clear 400."""
        if self.transcriber is None:
            raise InvalidArgument(NOT_CONFIGURED)
        return await self.transcriber.transcribe(audio_input)

    async def add_feedback(
        self, thread_id: str, item_ids: list[str], feedback: FeedbackKind, context: RequestContext
    ) -> None:
        thread = await self.store.load_thread(thread_id, context)
        payload = {"thread_id": thread_id, "item_ids": item_ids, "kind": feedback}
        await self._record(thread, context, "feedback", payload)

    async def _record_action(
        self,
        thread: ThreadMetadata,
        action: Action[str, Any],
        sender: WidgetItem | None,
        context: RequestContext,
        *,
        kind: str,
    ) -> None:
        payload = {
            "thread_id": thread.id,
            "action": action.type,
            "payload": action.payload,
            "item_id": sender.id if sender else None,
            "kind": kind,
        }
        await self._record(thread, context, "button_click", payload)

    async def _record(self, thread: ThreadMetadata, context: RequestContext, type: str, payload: Any) -> None:
        session_id = context.session_id or _str(thread.metadata.get(SESSION_METADATA_KEY))
        if not session_id:
            log.info("%s on thread %s has no session to record it in", type, thread.id)
            return
        body = json.dumps(payload, default=str).encode()
        if len(body) > MAX_ACTION_PAYLOAD_BYTES:
            raise InvalidArgument(f"the action payload is larger than {MAX_ACTION_PAYLOAD_BYTES} bytes")
        await self.sessions.record_event(context.principal, session_id, type=type, payload_json=body)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def listing_scope(context: RequestContext, metadata: dict[str, Any]) -> str | None:
    """The scope a ``threads.list`` asks for: ``X-Switchboard-Scope``, or the request's ``metadata.scope``.

    Both given and different is ambiguous: a 400 rather than a guess.
    """
    requested = metadata.get("scope")
    if requested is None:
        return context.scope
    requested = check_scope(requested, "metadata.scope")
    if context.scope is not None and context.scope != requested:
        raise InvalidArgument("metadata.scope and X-Switchboard-Scope name different scopes; send one")
    return requested
