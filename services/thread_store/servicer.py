"""gRPC servicer of the thread store: protobuf in, domain calls, protobuf out. Nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

from google.protobuf.empty_pb2 import Empty

from services.thread_store.domain import (
    AttachmentRecord,
    ChangeEvent,
    EncodedItems,
    Handler,
    ItemRecord,
    Order,
    ThreadRecord,
    ThreadSortKey,
)
from services.thread_store.service import ThreadStoreService
from switchboard.api.v1 import thread_store_pb2 as pb
from switchboard.api.v1 import thread_store_pb2_grpc
from switchboard.grpc_runtime import ServicerContext
from switchboard.proto_convert import order_from_proto, request_principal, timestamp

_SORTS: dict[int, ThreadSortKey] = {
    pb.THREAD_SORT_UNSPECIFIED: "created_at",
    pb.THREAD_SORT_CREATED_AT: "created_at",
    pb.THREAD_SORT_RECENT_ACTIVITY: "recent_activity",
}


def handler_to_proto(h: Handler) -> pb.Handler:
    """Who answers a thread, as protobuf."""
    message = pb.Handler(kind=h.kind, operator_id=h.operator_id or "", escalation_id=h.escalation_id or "")
    if h.since is not None:
        message.since.CopyFrom(timestamp(h.since))
    if h.until is not None:
        message.until.CopyFrom(timestamp(h.until))
    return message


def thread_to_proto(t: ThreadRecord) -> pb.Thread:
    """A stored thread as protobuf."""
    return pb.Thread(
        id=t.id,
        user_id=t.user_id,
        org_id=t.org_id or "",
        scope=t.scope or "",
        title=t.title or "",
        status=t.status,
        json=t.json,
        created_at=timestamp(t.created_at),
        updated_at=timestamp(t.updated_at),
        revision=t.revision,
        handler=handler_to_proto(t.handler),
    )


def item_to_proto(i: ItemRecord) -> pb.ThreadItem:
    """A stored item as protobuf."""
    return pb.ThreadItem(
        id=i.id,
        thread_id=i.thread_id,
        type=i.type,
        json=i.json,
        created_at=timestamp(i.created_at),
        author=i.author,
    )


class ThreadItemWireCodec:
    """Caches items as serialized ``ThreadItem`` messages: a hot read just concatenates them."""

    # "1": the messages before ``author`` (field 6); such entries are misses, never served.
    format = "2"

    def encode(self, item: ItemRecord) -> bytes:
        """The wire bytes of an item."""
        return bytes(item_to_proto(item).SerializeToString())


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _items_field_head(size: int) -> bytes:
    """The tag and length of one ``items`` entry (field 1, length-delimited) of ``size`` bytes."""
    if size < 0x4000:  # nearly every item: a one- or two-byte length, without the generic loop
        return bytes((0x0A, size)) if size < 0x80 else bytes((0x0A, size & 0x7F | 0x80, size >> 7))
    return b"\x0a" + _varint(size)


def list_items_wire(page: EncodedItems) -> bytes:
    """A serialized ``ListItemsResponse`` built from cached item bytes (fields 1 to 5)."""
    if page.not_modified:
        return b"\x28\x01"  # not_modified = true, and nothing else
    parts: list[bytes] = []
    for blob in page.blobs:
        parts += (_items_field_head(len(blob)), blob)
    if page.has_more:
        parts.append(b"\x10\x01")
    if page.after:
        after = page.after.encode()
        parts += (b"\x1a", _varint(len(after)), after)
    if page.version:
        version = page.version.encode()
        parts += (b"\x22", _varint(len(version)), version)
    return b"".join(parts)


def attachment_to_proto(a: AttachmentRecord) -> pb.Attachment:
    """Stored attachment metadata (and bytes, when loaded) as protobuf."""
    return pb.Attachment(
        id=a.id,
        thread_id=a.thread_id or "",
        mime_type=a.mime_type,
        json=a.json,
        created_at=timestamp(a.created_at),
        has_content=a.has_content,
        content=a.content or b"",
    )


def event_to_proto(e: ChangeEvent) -> pb.ChangeEvent:
    """A change event as protobuf."""
    return pb.ChangeEvent(
        id=e.id,
        type=e.type,
        thread_id=e.thread_id,
        item_id=e.item_id,
        user_id=e.user_id,
        org_id=e.org_id or "",
        revision=e.revision,
        at=timestamp(e.at),
        json=e.json,
    )


class ThreadStoreServicer(thread_store_pb2_grpc.ThreadStoreServicer):
    """Implements ``switchboard.api.v1.ThreadStore``."""

    def __init__(self, service: ThreadStoreService) -> None:
        self._service = service

    async def GetThread(self, request: pb.GetThreadRequest, context: ServicerContext) -> pb.Thread:
        principal = request_principal(request)
        return thread_to_proto(await self._service.load_thread(principal, request.thread_id))

    async def SaveThread(self, request: pb.SaveThreadRequest, context: ServicerContext) -> pb.Thread:
        principal = request_principal(request)
        thread = await self._service.save_thread(principal, request.thread_json, request.scope or None)
        return thread_to_proto(thread)

    async def ListThreads(self, request: pb.ListThreadsRequest, context: ServicerContext) -> pb.ListThreadsResponse:
        principal = request_principal(request)
        page = await self._service.list_threads(
            principal,
            limit=request.limit,
            after=request.after or None,
            order=cast(Order, order_from_proto(request.order, default="desc")),
            sort=_SORTS.get(request.sort, "created_at"),
            scope=request.scope or None,
            org_wide=request.org_wide,
        )
        return pb.ListThreadsResponse(
            threads=[thread_to_proto(t) for t in page.items], has_more=page.has_more, after=page.after or ""
        )

    async def DeleteThread(self, request: pb.DeleteThreadRequest, context: ServicerContext) -> Empty:
        principal = request_principal(request)
        await self._service.delete_thread(principal, request.thread_id)
        return Empty()

    async def AddItem(self, request: pb.WriteItemRequest, context: ServicerContext) -> pb.ThreadItem:
        principal = request_principal(request)
        return item_to_proto(await self._service.save_item(principal, request.thread_id, request.item_json))

    async def SaveItem(self, request: pb.WriteItemRequest, context: ServicerContext) -> pb.ThreadItem:
        principal = request_principal(request)
        return item_to_proto(await self._service.save_item(principal, request.thread_id, request.item_json))

    async def GetItem(self, request: pb.GetItemRequest, context: ServicerContext) -> pb.ThreadItem:
        principal = request_principal(request)
        return item_to_proto(await self._service.load_item(principal, request.thread_id, request.item_id))

    async def ListItems(self, request: pb.ListItemsRequest, context: ServicerContext) -> pb.ListItemsResponse | bytes:
        principal = request_principal(request)
        page = await self._service.list_items(
            principal,
            request.thread_id,
            after=request.after or None,
            limit=request.limit,
            order=cast(Order, order_from_proto(request.order, default="asc")),
            if_none_match=request.if_none_match or None,
        )
        if isinstance(page, EncodedItems):
            return list_items_wire(page)
        return pb.ListItemsResponse(
            items=[item_to_proto(i) for i in page.items], has_more=page.has_more, after=page.after or ""
        )

    async def DeleteItem(self, request: pb.DeleteItemRequest, context: ServicerContext) -> Empty:
        principal = request_principal(request)
        await self._service.delete_item(principal, request.thread_id, request.item_id)
        return Empty()

    async def BeginTurn(self, request: pb.BeginTurnRequest, context: ServicerContext) -> pb.BeginTurnResponse:
        principal = request_principal(request)
        turn = await self._service.begin_turn(
            principal,
            request.thread_id,
            create_thread_json=request.create_thread_json or None,
            scope=request.scope or None,
            user_message_json=request.user_message_json or None,
            retry_after_item_id=request.retry_after_item_id or None,
            session_id=request.session_id or None,
            title_if_empty=request.title_if_empty or None,
            history_limit=request.history_limit,
        )
        reply = pb.BeginTurnResponse(thread=thread_to_proto(turn.thread))
        if isinstance(turn.items, EncodedItems):
            # Cached items are serialized ThreadItem messages already.
            for blob in turn.items.blobs:
                item = reply.items.add()
                item.MergeFromString(blob)
                if not item.author:  # cached by a release before authors: the owner's
                    item.author = turn.thread.user_id
        else:
            reply.items.extend(item_to_proto(i) for i in turn.items)
        return reply

    async def SaveAttachment(self, request: pb.SaveAttachmentRequest, context: ServicerContext) -> pb.Attachment:
        principal = request_principal(request)
        attachment = await self._service.save_attachment(
            principal, request.attachment_json, content=request.content, set_content=request.set_content
        )
        return attachment_to_proto(attachment)

    async def GetAttachment(self, request: pb.GetAttachmentRequest, context: ServicerContext) -> pb.Attachment:
        principal = request_principal(request)
        attachment = await self._service.load_attachment(
            principal, request.attachment_id, include_content=request.include_content
        )
        return attachment_to_proto(attachment)

    async def DeleteAttachment(self, request: pb.DeleteAttachmentRequest, context: ServicerContext) -> Empty:
        principal = request_principal(request)
        await self._service.delete_attachment(principal, request.attachment_id)
        return Empty()

    async def SetHandler(self, request: pb.SetHandlerRequest, context: ServicerContext) -> pb.Thread:
        principal = request_principal(request)
        thread = await self._service.set_handler(
            principal,
            request.thread_id,
            request.kind,
            escalation_id=request.escalation_id or None,
            waiting_seconds=request.waiting_seconds,
            expect_kind=request.expect_kind or None,
        )
        return thread_to_proto(thread)

    async def ExpireWaiting(
        self, request: pb.ExpireWaitingRequest, context: ServicerContext
    ) -> pb.ExpireWaitingResponse:
        threads = await self._service.expire_waiting(request.limit)
        return pb.ExpireWaitingResponse(threads=[thread_to_proto(t) for t in threads])

    async def Watch(self, request: pb.WatchRequest, context: ServicerContext) -> AsyncIterator[pb.ChangeEvent]:
        principal = request_principal(request)
        target = request.WhichOneof("target")
        events = self._service.watch(
            principal,
            thread_id=request.thread_id if target == "thread_id" else None,
            org=target == "org" and request.org,
            since=request.since or None,
        )
        async for event in events:
            yield event_to_proto(event)
