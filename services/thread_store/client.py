"""Clients of the thread store: ``GrpcThreadStore`` is a ChatKit ``Store`` over gRPC.

This is the thread store's public client module: other services and the
console may import it (and only it, with the generated stubs).

Who answers a thread (the hand-off) travels with every thread this client
returns: a thread that is not the agent's carries its handler in
``metadata["handler"]`` (read it with ``handler_of``). That key is the
store's: the store drops it from every thread it is asked to save, so no
client can forge a hand-off; only ``set_handler`` and ``expire_waiting``
change it.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import grpc
from chatkit.store import NotFoundError, Store, StoreItemType
from chatkit.types import Attachment, Page, ThreadItem, ThreadMetadata, UserMessageItem
from pydantic import TypeAdapter

from services.thread_store.domain import (
    HANDLER_METADATA_KEY,
    ChangeEvent,
    Handler,
    HandlerKind,
    ItemRecord,
    StoredItems,
)
from services.thread_store.versions import ThreadVersions
from switchboard.api.v1 import common_pb2
from switchboard.api.v1 import thread_store_pb2 as pb
from switchboard.api.v1.thread_store_pb2_grpc import ThreadStoreStub
from switchboard.config import env_str
from switchboard.errors import NotFound, SwitchboardError
from switchboard.grpc_client import FROM_ENV, LoopLocalChannels, error_from_rpc
from switchboard.ids import new_id
from switchboard.principal import Caller
from switchboard.proto_convert import from_timestamp, principal_to_proto
from switchboard.service_auth import CallCredentials, InternalCredentials

ITEM_ADAPTER: TypeAdapter[ThreadItem] = TypeAdapter(ThreadItem)
ITEM_LIST_ADAPTER: TypeAdapter[list[ThreadItem]] = TypeAdapter(list[ThreadItem])
ATTACHMENT_ADAPTER: TypeAdapter[Attachment] = TypeAdapter(Attachment)

_ORDERS = {"asc": common_pb2.SORT_ORDER_ASC, "desc": common_pb2.SORT_ORDER_DESC}
# Pages remembered for conditional reads (per store client), and the largest one kept.
HELD_PAGES = 256
# Loop steps after which grpc.aio has handed a unary request to the transport:
# the call starts as a task, whose second step submits the batch (grpcio 1.85,
# measured: with 1 the parse below ran before the request left and overlapped
# nothing; 2 saved the whole parse, 4 no more). A different grpcio may need
# another count; that costs only the overlap, never correctness.
SEND_YIELDS = 2
HELD_PAGE_MAX_BYTES = 512 * 1024


@dataclass(slots=True)
class _HeldPage:
    """A page as the thread store last sent it: its version and its items' JSON, never parsed objects.

    ``speculate``: the last revalidation of this page found it current, so the
    next one parses the JSON while the server checks (see ``load_thread_items``).
    """

    version: str
    items_json: bytes
    has_more: bool
    after: str | None
    speculate: bool = False


@dataclass(frozen=True, slots=True)
class HandledThread:
    """A stored thread and who answers it: what ``set_handler``, ``expire_waiting`` and
    ``load_org_threads`` return.

    Attributes:
        thread: The thread's ChatKit metadata (with ``metadata["handler"]`` unless it is the agent's).
        user_id: The thread's owner.
        org_id: The thread's org, if any.
        revision: The thread's revision (after the change, for a hand-off change).
        handler: Who answers it now.
        updated_at: Its last activity (the last write to it or its items).
    """

    thread: ThreadMetadata
    user_id: str
    org_id: str | None
    revision: int
    handler: Handler
    updated_at: datetime


def handler_from_proto(message: pb.Handler) -> Handler:
    """A ``Handler`` message as the domain type (an unset message is the agent)."""
    kind: HandlerKind = "human" if message.kind == "human" else "waiting" if message.kind == "waiting" else "agent"
    return Handler(
        kind=kind,
        operator_id=message.operator_id or None,
        escalation_id=message.escalation_id or None,
        since=message.since.ToDatetime(tzinfo=UTC) if message.HasField("since") else None,
        until=message.until.ToDatetime(tzinfo=UTC) if message.HasField("until") else None,
    )


def handler_of(thread: ThreadMetadata) -> Handler:
    """Who answers a thread this client returned: its ``metadata["handler"]``, else the agent.

    An agent thread carries no key, so the escalation id an expired wait keeps
    is not there; ``GrpcThreadStore.load_handler`` has it.
    """
    return Handler.from_json(thread.metadata.get(HANDLER_METADATA_KEY))


def change_from_proto(m: pb.ChangeEvent) -> ChangeEvent:
    """A ``ChangeEvent`` of its protobuf form (``servicer.event_to_proto``, reversed)."""
    return ChangeEvent(
        id=m.id,
        type=m.type,
        thread_id=m.thread_id,
        item_id=m.item_id,
        user_id=m.user_id,
        org_id=m.org_id or None,
        revision=m.revision,
        at=from_timestamp(m.at),
        json=m.json,
    )


def thread_metadata(message: pb.Thread) -> ThreadMetadata:
    """A stored thread as ChatKit metadata, with its handler in ``metadata["handler"]`` unless it is the agent."""
    thread = ThreadMetadata.model_validate_json(message.json)
    handler = handler_from_proto(message.handler)
    if handler.kind != "agent":
        thread.metadata[HANDLER_METADATA_KEY] = handler.to_json()
    return thread


def _handled(message: pb.Thread) -> HandledThread:
    return HandledThread(
        thread=thread_metadata(message),
        user_id=message.user_id,
        org_id=message.org_id or None,
        revision=message.revision,
        handler=handler_from_proto(message.handler),
        updated_at=from_timestamp(message.updated_at),
    )


def _thread_not_found(thread_id: str) -> str:
    """The SDK reference store's words for a missing thread."""
    return f"Thread {thread_id} not found"


def _attachment_not_found(attachment_id: str) -> str:
    """The SDK reference store's words for a missing attachment (it calls them files)."""
    return f"File {attachment_id} not found"


def _scope_of(context: Caller) -> str:
    """The scope new threads get: a request context may carry one (``X-Switchboard-Scope``)."""
    scope = getattr(context, "scope", None)
    return scope if isinstance(scope, str) else ""


def thread_json(thread: ThreadMetadata) -> bytes:
    """The JSON of a thread's metadata (a full ``Thread``'s items are not part of it)."""
    return json.dumps(thread.model_dump(mode="json", exclude={"items"}), separators=(",", ":")).encode()


def item_json(item: ThreadItem) -> bytes:
    """The SDK's JSON of a thread item, as ``ChatKitServer`` serializes it for clients
    (by alias, no ``null`` fields), so readers may pass stored items through unchanged."""
    return ITEM_ADAPTER.dump_json(item, by_alias=True, exclude_none=True)


def item_from_json(raw: bytes) -> ThreadItem:
    """A thread item from the SDK's JSON."""
    return ITEM_ADAPTER.validate_json(raw)


def items_from_json(raws: Iterable[bytes]) -> list[ThreadItem]:
    """Thread items from their stored JSON, parsed and validated in one pass.

    Each stored item is exactly one JSON object (the store keeps Postgres
    ``jsonb`` text), so the items joined by commas between brackets are the JSON
    array of them; one ``validate_json`` of the array costs less than one per item.
    """
    return ITEM_LIST_ADAPTER.validate_json(_json_array(raws))


def _json_array(raws: Iterable[bytes]) -> bytes:
    return b"[" + b",".join(raws) + b"]"


class GrpcThreadStore(Store[Caller]):
    """A ChatKit ``Store`` whose every method calls the thread store over gRPC.

    Safe to construct at import time: the channel opens on first use, one per
    event loop. ``chatkit.store.NotFoundError`` is raised where the SDK expects
    it; any other failure raises the typed Switchboard error of its status.

    Every method behaves as the SDK's reference store (the SQLite store of
    chatkit-python's tests), messages included (``Thread <id> not found``,
    ``Item <id> not found in thread <id>``, ``File <id> not found``); the
    contract tests in ``tests/thread_store/test_store_contract.py`` pin it.
    Deliberate differences, each stricter and none visible to the SDK's server:
    a write to a thread that is not the caller's is ``NotFoundError`` (the
    reference writes rows nobody can read); ``add_thread_item`` is an upsert
    like ``save_item``, and ``save_item`` inserts a missing item (the interface
    says "upsert"; the reference inserts once, and only updates); attachments
    are read and overwritten only by their owner (the reference has a TODO
    there); an ``after`` cursor that is no item of the thread, or no thread of
    the listing, is ``InvalidArgument`` (the reference raises ``NotFoundError``
    and ``ValueError``); threads and items created at the same instant keep
    one order, by id (the reference's cursor skips such ties).

    Pages of items are read conditionally (see ``load_thread_items``): the
    client keeps each hot page's JSON and its version, and asks whether it is
    still current. A service of the deployment (a process holding the internal
    key, so its calls may act for any user anyway) asks the thread store's
    Redis directly, one small script on one key, instead of calling the thread
    store (``revalidate_in``).

    Args:
        target: ``host:port`` of the thread store.
        timeout: Seconds per call.
        credentials: What each call carries (default: service tokens when this process holds
            ``SWITCHBOARD_INTERNAL_SECRET``, else ``SWITCHBOARD_TOKEN``; see ``switchboard.service_auth``).
        revalidate_in: The Redis URL of the thread store's cache, where held pages are
            revalidated without a call; None: every read calls the thread store. By
            default ``REDIS_URL`` when the credentials are service tokens of the internal key.
    """

    def __init__(
        self,
        target: str,
        *,
        timeout: float = 10.0,
        credentials: CallCredentials | None = FROM_ENV,
        revalidate_in: str | None = FROM_ENV,
    ) -> None:
        self._channels = LoopLocalChannels(target, ThreadStoreStub, audience="thread_store", credentials=credentials)
        self._timeout = timeout
        if revalidate_in is FROM_ENV:
            trusted = isinstance(self._channels.credentials, InternalCredentials)
            revalidate_in = (env_str("REDIS_URL") or None) if trusted else None
        self._versions = ThreadVersions(revalidate_in) if revalidate_in else None
        # Pages for conditional reads: (principal, thread, after, limit, order) -> the last page.
        self._held: OrderedDict[tuple[bytes, str, str, int, str], _HeldPage] = OrderedDict()

    def generate_thread_id(self, context: Caller) -> str:
        return new_id("thread")

    def generate_item_id(self, item_type: StoreItemType, thread: ThreadMetadata, context: Caller) -> str:
        return new_id(item_type)

    def generate_attachment_id(self, mime_type: str, context: Caller) -> str:
        return new_id("attachment")

    @property
    def stub(self) -> ThreadStoreStub:
        """The raw stub for the running loop (for calls the Store interface lacks)."""
        return self._channels.stub()

    @property
    def revalidate_in(self) -> str | None:
        """The Redis URL where held pages are revalidated without a call, if any."""
        return self._versions.url if self._versions is not None else None

    async def close(self) -> None:
        """Close this loop's channel (and Redis client)."""
        await self._channels.close()
        if self._versions is not None:
            await self._versions.close()

    async def _call(self, method: str, request: Any, *, not_found: bool = True, missing: str | None = None) -> Any:
        """Call ``method``; NOT_FOUND is the SDK's ``NotFoundError`` (saying ``missing``) unless ``not_found``."""
        try:
            return await getattr(self.stub, method)(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as error:
            typed = error_from_rpc(error, service="thread_store")
            if not_found and isinstance(typed, NotFound):
                raise NotFoundError(missing or typed.message) from None
            raise typed from None

    # -- threads --------------------------------------------------------------

    async def load_thread(self, thread_id: str, context: Caller) -> ThreadMetadata:
        reply = await self._call(
            "GetThread",
            pb.GetThreadRequest(principal=principal_to_proto(context), thread_id=thread_id),
            missing=_thread_not_found(thread_id),
        )
        return thread_metadata(reply)

    async def save_thread(self, thread: ThreadMetadata, context: Caller) -> None:
        scope = _scope_of(context)
        request = pb.SaveThreadRequest(
            principal=principal_to_proto(context), thread_json=thread_json(thread), scope=scope
        )
        await self._call("SaveThread", request, missing=_thread_not_found(thread.id))

    async def load_threads(self, limit: int, after: str | None, order: str, context: Caller) -> Page[ThreadMetadata]:
        return await self.load_threads_page(limit=limit, after=after, order=order, context=context)

    async def load_threads_page(
        self,
        *,
        limit: int,
        after: str | None,
        order: str,
        context: Caller,
        sort: Literal["created_at", "recent_activity"] = "created_at",
        scope: str | None = None,
    ) -> Page[ThreadMetadata]:
        """``load_threads`` with Switchboard's extras: by recent activity, by scope."""
        reply = await self._call(
            "ListThreads",
            pb.ListThreadsRequest(
                principal=principal_to_proto(context),
                limit=limit,
                after=after or "",
                order=_ORDERS.get(order, common_pb2.SORT_ORDER_DESC),
                sort=pb.THREAD_SORT_RECENT_ACTIVITY if sort == "recent_activity" else pb.THREAD_SORT_CREATED_AT,
                scope=scope or "",
            ),
        )
        return Page(
            data=[thread_metadata(t) for t in reply.threads],
            has_more=reply.has_more,
            after=reply.after or None,
        )

    async def load_org_threads(
        self, context: Caller, *, limit: int = 200, after: str | None = None
    ) -> Page[HandledThread]:
        """A page of the threads of the operator's org, most recently active first (the console).

        Raises:
            PermissionDenied: the caller is no operator of an org.
            InvalidArgument: ``limit`` is out of range, or ``after`` is no thread of the listing.
        """
        reply = await self._call(
            "ListThreads",
            pb.ListThreadsRequest(
                principal=principal_to_proto(context),
                limit=limit,
                after=after or "",
                org_wide=True,
                sort=pb.THREAD_SORT_RECENT_ACTIVITY,
            ),
            not_found=False,
        )
        return Page(data=[_handled(t) for t in reply.threads], has_more=reply.has_more, after=reply.after or None)

    async def delete_thread(self, thread_id: str, context: Caller) -> None:
        """Delete one of the caller's threads and its items; nothing happens when there is none.

        As the SDK's reference store: a delete of a thread that is not there (or
        not the caller's, which is left untouched) is no error.
        """
        try:
            await self._call(
                "DeleteThread", pb.DeleteThreadRequest(principal=principal_to_proto(context), thread_id=thread_id)
            )
        except NotFoundError:
            return

    # -- items ----------------------------------------------------------------

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: Caller, *, strict: bool = False
    ) -> Page[ThreadItem]:
        """A page of a thread's items.

        As the SDK's reference store, a thread that is not there (or not one
        the caller may read) has an empty page: nothing of it is shown, and the
        answer is the one a thread without items gets. ``strict`` raises
        ``NotFoundError`` instead, for callers that must tell the two apart.
        An ``after`` that is no item of the thread is ``InvalidArgument``
        (decision: a bad cursor is the caller's bad input, a 400 at the edge;
        the reference store raises ``NotFoundError`` there).

        A page read before is revalidated, never trusted: in the thread store's
        Redis when this client has it (``revalidate_in``: no call when the page
        is current), else with a conditional ``ListItems``. Either way it is
        served only when the thread's version is the one the page was read at,
        which any write acknowledged before this call has changed, on whichever
        replica it was made.
        """
        principal = principal_to_proto(context)
        key = (principal.SerializeToString(deterministic=True), thread_id, after or "", limit, order)
        held = self._held.pop(key, None)
        if held is not None and self._versions is not None:
            # The question the thread store would answer, asked of its Redis: the same
            # script on the same key (``services.thread_store.versions``), one round trip.
            current = await self._versions.current(user_id=principal.user_id, thread_id=thread_id)
            if current == held.version:
                self._hold(key, held)
                return Page(
                    data=ITEM_LIST_ADAPTER.validate_json(held.items_json), has_more=held.has_more, after=held.after
                )
            if current is not None:
                held = None  # changed (versions never repeat): read the page, parse nothing ahead
        request = pb.ListItemsRequest(
            principal=principal,
            thread_id=thread_id,
            after=after or "",
            limit=limit,
            order=_ORDERS.get(order, common_pb2.SORT_ORDER_ASC),
            if_none_match=held.version if held is not None else "",
        )
        try:
            reply, parsed = await self._conditional_list(request, held)
        except NotFoundError:
            if strict:
                raise NotFoundError(_thread_not_found(thread_id)) from None
            return Page(data=[], has_more=False, after=None)
        if reply.not_modified and held is not None:
            # The server compared our version with the state it would read the
            # page from, in one atomic step: the page we hold is the page it would send.
            held.speculate = True
            self._hold(key, held)
            return Page(
                data=parsed if parsed is not None else ITEM_LIST_ADAPTER.validate_json(held.items_json),
                has_more=held.has_more,
                after=held.after,
            )
        items_json = _json_array(i.json for i in reply.items)
        if reply.version and len(items_json) <= HELD_PAGE_MAX_BYTES:
            self._hold(key, _HeldPage(reply.version, items_json, reply.has_more, reply.after or None))
        return Page(
            data=ITEM_LIST_ADAPTER.validate_json(items_json), has_more=reply.has_more, after=reply.after or None
        )

    async def _conditional_list(
        self, request: pb.ListItemsRequest, held: _HeldPage | None
    ) -> tuple[pb.ListItemsResponse, list[ThreadItem] | None]:
        """``ListItems``, and, when the held page was current last time, that page parsed while the server answers.

        Why a conditional read and not a cache invalidated by the change feed: a
        feed-driven cache serves a page until the feed's message arrives, so a
        reader could see a page older than a write already acknowledged to
        someone. Here every read asks the thread store, which answers "not
        modified" only when the version we hold is the version of the state it
        would serve the page from right now (``ThreadCache.page_items``): a
        write is patched into that state (or invalidates it) before it is
        acknowledged, and every write bumps the revision, so a write
        acknowledged before this call changed the version. A conditional read is
        therefore never staler than a plain read of the same server at the same
        moment: when Redis failed during a write, the cache's repair rules
        (``ThreadCache``) govern both alike. Should the same state be cached
        again with its record encoded otherwise (a refill from Postgres), the
        version differs: that costs one full page, never a stale one.
        Callers never share objects: the held page is JSON, and each
        call parses its own items (the SDK and our callers mutate them, e.g. a
        client tool call's ``output``).

        The parse costs about as much as the round trip, so when the page is
        likely current it runs while the server works (the request is sent
        first; the server is another process), and is dropped when the page
        changed. A page that changed turns speculation off until it is current again.
        """
        try:
            call = self.stub.ListItems(request, timeout=self._timeout)
            parsed: list[ThreadItem] | None = None
            if held is not None and held.speculate:
                for _ in range(SEND_YIELDS):
                    await asyncio.sleep(0)
                parsed = ITEM_LIST_ADAPTER.validate_json(held.items_json)
            reply: pb.ListItemsResponse = await call
        except grpc.aio.AioRpcError as error:
            typed = error_from_rpc(error, service="thread_store")
            if isinstance(typed, NotFound):
                raise NotFoundError(_thread_not_found(request.thread_id)) from None
            raise typed from None
        return reply, parsed

    def _hold(self, key: tuple[bytes, str, str, int, str], page: _HeldPage) -> None:
        self._held[key] = page
        if len(self._held) > HELD_PAGES:
            self._held.popitem(last=False)

    async def load_thread_items_raw(
        self, thread_id: str, after: str | None, limit: int, order: str, context: Caller
    ) -> StoredItems:
        """``load_thread_items`` unparsed: each item's id, type, stored JSON and author, for readers that pass
        the JSON on."""
        reply: pb.ListItemsResponse = await self._call(
            "ListItems",
            pb.ListItemsRequest(
                principal=principal_to_proto(context),
                thread_id=thread_id,
                after=after or "",
                limit=limit,
                order=_ORDERS.get(order, common_pb2.SORT_ORDER_ASC),
            ),
            missing=_thread_not_found(thread_id),
        )
        return StoredItems(
            items=[
                ItemRecord(
                    id=i.id,
                    thread_id=i.thread_id,
                    type=i.type,
                    json=i.json,
                    created_at=from_timestamp(i.created_at),
                    author=i.author,
                )
                for i in reply.items
            ],
            has_more=reply.has_more,
            after=reply.after or None,
            version=reply.version,
        )

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: Caller) -> None:
        request = pb.WriteItemRequest(
            principal=principal_to_proto(context), thread_id=thread_id, item_json=item_json(item)
        )
        await self._call("AddItem", request, missing=_thread_not_found(thread_id))

    async def save_item(self, thread_id: str, item: ThreadItem, context: Caller) -> None:
        request = pb.WriteItemRequest(
            principal=principal_to_proto(context), thread_id=thread_id, item_json=item_json(item)
        )
        await self._call("SaveItem", request, missing=_thread_not_found(thread_id))

    async def load_item(self, thread_id: str, item_id: str, context: Caller) -> ThreadItem:
        request = pb.GetItemRequest(principal=principal_to_proto(context), thread_id=thread_id, item_id=item_id)
        reply = await self._call("GetItem", request, missing=f"Item {item_id} not found in thread {thread_id}")
        return ITEM_ADAPTER.validate_json(reply.json)

    async def delete_thread_item(self, thread_id: str, item_id: str, context: Caller) -> None:
        """Delete an item the caller wrote; nothing happens when it (or its thread) is not there.

        As the SDK's reference store. An item of another author (an operator's
        reply) is still ``PermissionDenied``: nobody deletes another author's items.
        """
        request = pb.DeleteItemRequest(principal=principal_to_proto(context), thread_id=thread_id, item_id=item_id)
        try:
            await self._call("DeleteItem", request)
        except NotFoundError:
            return

    # -- turns ----------------------------------------------------------------

    async def begin_turn(
        self,
        context: Caller,
        *,
        thread_id: str,
        create: ThreadMetadata | None = None,
        scope: str | None = None,
        user_message: UserMessageItem | None = None,
        retry_after_item_id: str | None = None,
        session_id: str | None = None,
        title_if_empty: str | None = None,
        history_limit: int = 0,
    ) -> tuple[ThreadMetadata, list[ThreadItem]]:
        """Start an agent turn in one call (``BeginTurn``): the thread after it and its newest items.

        Args:
            context: The request context (or principal) of the thread's owner.
            thread_id: The thread.
            create: Create the thread with this metadata unless the caller has it already.
            scope: The scope of a created thread; by default the context's, as ``save_thread``.
            user_message: The new user message, saved (upsert by id).
            retry_after_item_id: A user message whose following items are deleted (ChatKit's retry).
            session_id: Recorded as the thread's ``metadata["session_id"]``.
            title_if_empty: The thread's title when it has none.
            history_limit: How many of the newest items to return (0 to 1000).

        Returns:
            The thread (its handler in ``metadata["handler"]`` unless it is the
            agent's: see ``handler_of``), and up to ``history_limit`` of its
            newest items, oldest first.

        Raises:
            NotFoundError: the thread, or the item to retry after, is not the caller's.
            FailedPrecondition: an operator replied after the message to retry after.
            PermissionDenied: the user message's id is an item of another author.
        """
        request = pb.BeginTurnRequest(
            principal=principal_to_proto(context),
            thread_id=thread_id,
            create_thread_json=thread_json(create) if create is not None else b"",
            scope=scope or _scope_of(context),
            user_message_json=item_json(user_message) if user_message is not None else b"",
            retry_after_item_id=retry_after_item_id or "",
            session_id=session_id or "",
            title_if_empty=title_if_empty or "",
            history_limit=history_limit,
        )
        reply: pb.BeginTurnResponse = await self._call("BeginTurn", request)
        return thread_metadata(reply.thread), [ITEM_ADAPTER.validate_json(i.json) for i in reply.items]

    # -- hand-off -------------------------------------------------------------

    async def load_handler(self, thread_id: str, context: Caller) -> Handler:
        """Who answers a thread the caller may read (its owner, or an operator of its org).

        Raises:
            NotFound: the thread is not one the caller may read.
        """
        request = pb.GetThreadRequest(principal=principal_to_proto(context), thread_id=thread_id)
        reply: pb.Thread = await self._call("GetThread", request, not_found=False)
        return handler_from_proto(reply.handler)

    async def thread_owner(self, thread_id: str, context: Caller) -> tuple[str, str | None]:
        """The owner's user id and the org of a thread the caller may read (its owner, or an operator of its org).

        Raises:
            NotFound: the thread is not one the caller may read.
        """
        request = pb.GetThreadRequest(principal=principal_to_proto(context), thread_id=thread_id)
        reply: pb.Thread = await self._call("GetThread", request, not_found=False)
        return reply.user_id, reply.org_id or None

    async def set_handler(
        self,
        principal: Caller,
        thread_id: str,
        kind: HandlerKind,
        *,
        escalation_id: str | None = None,
        waiting_seconds: int = 0,
        expect_kind: HandlerKind | None = None,
    ) -> HandledThread:
        """Change who answers a thread (``SetHandler``); the same state again changes nothing.

        The owner escalates (``waiting``) and withdraws (``agent`` from
        ``waiting``); an operator of the thread's org takes it (``human``, for
        themselves), gives it back (``agent``) or queues it (``waiting`` from ``agent``).

        Args:
            principal: The thread's owner or an operator of its org.
            thread_id: The thread.
            kind: ``agent``, ``waiting`` or ``human``.
            escalation_id: The escalation: required for ``waiting``; for
                ``human``, None keeps the current one; not for ``agent``.
            waiting_seconds: ``waiting``: 1 to 86400 seconds before the thread
                goes back to the agent (``expire_waiting``).
            expect_kind: Change only if the thread's kind is this one now.

        Returns:
            The thread after the change.

        Raises:
            InvalidArgument: the request is malformed.
            NotFound: the thread is neither the principal's nor one of their org's.
            PermissionDenied: the principal may not make this change (the owner
                setting ``human`` or ending a person's hand-off; an operator
                ending another operator's).
            FailedPrecondition: the kind is not ``expect_kind``, another operator
                holds the thread, or it waits for another escalation.
        """
        request = pb.SetHandlerRequest(
            principal=principal_to_proto(principal),
            thread_id=thread_id,
            kind=kind,
            escalation_id=escalation_id or "",
            waiting_seconds=waiting_seconds,
            expect_kind=expect_kind or "",
        )
        reply: pb.Thread = await self._call("SetHandler", request, not_found=False)
        return _handled(reply)

    async def expire_waiting(self, limit: int = 100) -> list[HandledThread]:
        """Hand up to ``limit`` (1 to 500) threads whose wait for a person ran out back to the agent.

        Each keeps its escalation id (the escalation stays in the queue). Any
        replica may call it: concurrent callers never get the same thread.
        """
        reply: pb.ExpireWaitingResponse = await self._call(
            "ExpireWaiting", pb.ExpireWaitingRequest(limit=limit), not_found=False
        )
        return [_handled(t) for t in reply.threads]

    # -- attachments ----------------------------------------------------------

    async def save_attachment(self, attachment: Attachment, context: Caller) -> None:
        request = pb.SaveAttachmentRequest(
            principal=principal_to_proto(context), attachment_json=ATTACHMENT_ADAPTER.dump_json(attachment)
        )
        await self._call("SaveAttachment", request, missing=_attachment_not_found(attachment.id))

    async def save_attachment_content(self, attachment: Attachment, content: bytes, context: Caller) -> None:
        """Store an attachment's metadata and its uploaded bytes."""
        request = pb.SaveAttachmentRequest(
            principal=principal_to_proto(context),
            attachment_json=ATTACHMENT_ADAPTER.dump_json(attachment),
            set_content=True,
            content=content,
        )
        await self._call("SaveAttachment", request, missing=_attachment_not_found(attachment.id))

    async def load_attachment(self, attachment_id: str, context: Caller) -> Attachment:
        request = pb.GetAttachmentRequest(principal=principal_to_proto(context), attachment_id=attachment_id)
        reply = await self._call("GetAttachment", request, missing=_attachment_not_found(attachment_id))
        return ATTACHMENT_ADAPTER.validate_json(reply.json)

    async def load_attachment_content(self, attachment_id: str, context: Caller) -> tuple[Attachment, bytes | None]:
        """An attachment and its stored bytes (None before upload)."""
        request = pb.GetAttachmentRequest(
            principal=principal_to_proto(context), attachment_id=attachment_id, include_content=True
        )
        reply = await self._call("GetAttachment", request, missing=_attachment_not_found(attachment_id))
        return ATTACHMENT_ADAPTER.validate_json(reply.json), (reply.content if reply.has_content else None)

    async def delete_attachment(self, attachment_id: str, context: Caller) -> None:
        """Delete one of the caller's attachments and its bytes; nothing happens when there is none.

        As the SDK's reference store: an attachment created but never saved (or
        another user's, which is left untouched) is no error.
        """
        request = pb.DeleteAttachmentRequest(principal=principal_to_proto(context), attachment_id=attachment_id)
        try:
            await self._call("DeleteAttachment", request)
        except NotFoundError:
            return

    # -- change feed ----------------------------------------------------------

    async def watch(
        self, context: Caller, *, thread_id: str | None = None, org: bool = False, since: str = ""
    ) -> AsyncIterator[ChangeEvent]:
        """Follow a thread's changes, or (operators) the whole org's; the first is ``watch.started``."""
        request = pb.WatchRequest(principal=principal_to_proto(context), since=since)
        if org:
            request.org = True
        elif thread_id:
            request.thread_id = thread_id
        try:
            async for event in self.stub.Watch(request):
                yield change_from_proto(event)
        except grpc.aio.AioRpcError as error:
            raise error_from_rpc(error, service="thread_store") from None


__all__ = [
    "ChangeEvent",
    "GrpcThreadStore",
    "HandledThread",
    "Handler",
    "HandlerKind",
    "ItemRecord",
    "NotFoundError",
    "StoredItems",
    "SwitchboardError",
    "handler_from_proto",
    "handler_of",
    "item_from_json",
    "item_json",
    "items_from_json",
    "thread_json",
    "thread_metadata",
]
