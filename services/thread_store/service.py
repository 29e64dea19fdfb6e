"""The thread store's rules: who may read and write what, and how the cache is kept.

This module knows nothing of gRPC; ``servicer.py`` converts to and from protobuf.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from services.thread_store.cache import ThreadCache
from services.thread_store.domain import (
    USER_MESSAGE_TYPE,
    AttachmentRecord,
    EncodedItems,
    ItemRecord,
    Order,
    ThreadRecord,
    ThreadSortKey,
    TurnStart,
    TurnWrites,
    check_id,
    parse_attachment_json,
    parse_item_json,
    parse_thread_json,
    with_turn_metadata,
)
from services.thread_store.feed import ChangeEvent, ChangeFeed, org_stream, thread_stream
from services.thread_store.repository import ThreadRepository
from switchboard.config import env_int
from switchboard.errors import InvalidArgument, NotFound, PermissionDenied, ResourceExhausted, Unavailable
from switchboard.pages import Page, check_limit
from switchboard.principal import Principal
from switchboard.streams import check_stream_id

MAX_THREAD_PAGE = 200
MAX_ITEM_PAGE = 1000
# The one item type an operator may write into a thread of their org that they do not own.
OPERATOR_REPLY_TYPE = "assistant_message"


@dataclass(frozen=True)
class StoreLimits:
    """Size limits on what clients may store (bytes)."""

    max_thread_bytes: int = 256 * 1024
    max_item_bytes: int = 1024 * 1024
    max_attachment_json_bytes: int = 64 * 1024
    max_attachment_bytes: int = 10 * 1024 * 1024

    @classmethod
    def from_env(cls) -> StoreLimits:
        """Read ``SWITCHBOARD_MAX_ITEM_BYTES`` and ``SWITCHBOARD_MAX_ATTACHMENT_BYTES``."""
        return cls(
            max_item_bytes=env_int("SWITCHBOARD_MAX_ITEM_BYTES", cls.max_item_bytes, minimum=1024),
            max_attachment_bytes=env_int("SWITCHBOARD_MAX_ATTACHMENT_BYTES", cls.max_attachment_bytes, minimum=1),
        )


class ThreadStoreService:
    """Threads, items and attachments, per user, with a hot cache and a change feed.

    Args:
        repository: Postgres, the truth.
        cache: The Redis hot cache, or None to read Postgres only.
        feed: The change feed, or None when no Redis is configured.
        limits: Size limits.
    """

    def __init__(
        self,
        repository: ThreadRepository,
        cache: ThreadCache | None,
        feed: ChangeFeed | None,
        limits: StoreLimits | None = None,
    ) -> None:
        self.repository = repository
        self.cache = cache
        self.feed = feed
        self.limits = limits or StoreLimits()

    # -- threads --------------------------------------------------------------

    async def load_thread(self, principal: Principal, thread_id: str) -> ThreadRecord:
        """A thread the principal owns, or (operators) one of its org."""
        check_id(thread_id, "thread_id")
        if self.cache is not None:
            cached = await self.cache.get_thread(user_id=principal.user_id, thread_id=thread_id)
            if cached is not None:
                return cached
        try:
            thread, _items = await self._load_and_fill(principal, thread_id)
        except NotFound:
            return await self._load_as_operator(principal, thread_id)
        return thread

    async def _load_and_fill(
        self, principal: Principal, thread_id: str
    ) -> tuple[ThreadRecord, list[ItemRecord] | None]:
        if self.cache is None or not self.cache.readable:
            thread = await self.repository.load_thread(thread_id=thread_id, user_id=principal.user_id)
            return thread, None
        thread, items = await self.repository.load_thread_with_items(
            thread_id=thread_id, user_id=principal.user_id, max_items=self.cache.max_items
        )
        await self.cache.fill(thread=thread, items=items)
        return thread, items

    async def _load_as_operator(self, principal: Principal, thread_id: str) -> ThreadRecord:
        if not (principal.is_operator and principal.org_id):
            raise NotFound(f"thread {thread_id!r} not found")
        return await self.repository.load_thread(
            thread_id=thread_id, user_id=principal.user_id, operator_org_id=principal.org_id
        )

    async def save_thread(self, principal: Principal, thread_json: bytes, scope: str | None) -> ThreadRecord:
        """Create or update one of the principal's threads."""
        parsed = parse_thread_json(thread_json, max_bytes=self.limits.max_thread_bytes)
        if scope is not None:
            check_id(scope, "scope")
        thread, created = await self.repository.save_thread(
            thread=parsed, user_id=principal.user_id, org_id=principal.org_id, scope=scope
        )
        if self.cache is not None:
            await self.cache.apply(thread=thread, created=created)
        await self._publish("thread.created" if created else "thread.updated", thread, body=thread.json)
        return thread

    async def list_threads(
        self,
        principal: Principal,
        *,
        limit: int,
        after: str | None,
        order: Order,
        sort: ThreadSortKey,
        scope: str | None,
        org_wide: bool,
    ) -> Page[ThreadRecord]:
        """A page of the principal's threads, or (operators, ``org_wide``) of its org's."""
        limit = check_limit(limit, default=20, maximum=MAX_THREAD_PAGE)
        if after:
            check_id(after, "after")
        if scope:
            check_id(scope, "scope")  # the same rule as a thread's scope (no NUL reaches Postgres)
        if org_wide and not (principal.is_operator and principal.org_id):
            raise PermissionDenied("listing an org's threads needs the operator role and an org")
        return await self.repository.list_threads(
            user_id=None if org_wide else principal.user_id,
            org_id=principal.org_id if org_wide else None,
            scope=scope,
            sort=sort,
            order=order,
            after=after,
            limit=limit,
        )

    async def delete_thread(self, principal: Principal, thread_id: str) -> None:
        """Delete one of the principal's threads and all its items."""
        check_id(thread_id, "thread_id")
        thread = await self.repository.delete_thread(thread_id=thread_id, user_id=principal.user_id)
        if self.cache is not None:
            await self.cache.forget(user_id=thread.user_id, thread_id=thread.id)
        await self._publish("thread.deleted", thread)

    # -- items ----------------------------------------------------------------

    async def save_item(self, principal: Principal, thread_id: str, item_json: bytes) -> ItemRecord:
        """Add or update (by id) an item of one of the principal's threads (operators: a reply in their org's)."""
        check_id(thread_id, "thread_id")
        parsed = parse_item_json(item_json, thread_id=thread_id, max_bytes=self.limits.max_item_bytes)
        try:
            thread, item, created = await self.repository.save_item(item=parsed, user_id=principal.user_id)
        except NotFound:
            if not (principal.is_operator and principal.org_id and parsed.type == OPERATOR_REPLY_TYPE):
                raise
            # An operator replies into a thread of their org (the console's take-over),
            # never speaking as the user: only assistant messages. The item is written
            # as the owner's, so the owner's reads and cache see it.
            owner = (await self._load_as_operator(principal, thread_id)).user_id
            thread, item, created = await self.repository.save_item(item=parsed, user_id=owner)
        # The thread row is the owner's, so the cache keys below are the owner's too.
        if self.cache is not None:
            await self.cache.apply(thread=thread, op="put", item=item)
        await self._publish("item.added" if created else "item.updated", thread, item_id=item.id, body=item.json)
        return item

    async def load_item(self, principal: Principal, thread_id: str, item_id: str) -> ItemRecord:
        """One item of a thread the principal may read."""
        check_id(item_id, "item_id")
        await self.load_thread(principal, thread_id)
        return await self.repository.load_item(thread_id=thread_id, item_id=item_id)

    async def list_items(
        self, principal: Principal, thread_id: str, *, after: str | None, limit: int, order: Order
    ) -> Page[ItemRecord] | EncodedItems:
        """A page of the items of a thread the principal may read.

        From the cache the items come already encoded for the transport
        (``EncodedItems``); from Postgres, as records.
        """
        check_id(thread_id, "thread_id")
        limit = check_limit(limit, default=50, maximum=MAX_ITEM_PAGE)
        if after:
            check_id(after, "after")
        if self.cache is not None:
            page = await self.cache.page_items(
                user_id=principal.user_id, thread_id=thread_id, after=after, limit=limit, order=order
            )
            if page is not None:
                return page
        try:
            _thread, items = await self._load_and_fill(principal, thread_id)
        except NotFound:
            await self._load_as_operator(principal, thread_id)
            items = None
        if items is not None and self.cache is not None:
            page = await self.cache.page_items(
                user_id=principal.user_id, thread_id=thread_id, after=after, limit=limit, order=order
            )
            if page is not None:
                return page
        return await self.repository.list_items(thread_id=thread_id, after=after, limit=limit, order=order)

    async def delete_item(self, principal: Principal, thread_id: str, item_id: str) -> None:
        """Delete an item of one of the principal's threads."""
        check_id(thread_id, "thread_id")
        check_id(item_id, "item_id")
        thread = await self.repository.delete_item(thread_id=thread_id, item_id=item_id, user_id=principal.user_id)
        if self.cache is not None:
            await self.cache.apply(thread=thread, op="del", item_id=item_id)
        await self._publish("item.deleted", thread, item_id=item_id)

    # -- turns ----------------------------------------------------------------

    async def begin_turn(
        self,
        principal: Principal,
        thread_id: str,
        *,
        create_thread_json: bytes | None = None,
        scope: str | None = None,
        user_message_json: bytes | None = None,
        retry_after_item_id: str | None = None,
        session_id: str | None = None,
        title_if_empty: str | None = None,
        history_limit: int = 0,
    ) -> TurnStart:
        """Start an agent turn in one of the principal's threads, and return it with its newest items.

        Only the owner starts turns: an operator never speaks as the user, so
        another user's thread is ``NotFound`` whatever the caller's role. The
        whole request is validated before anything is written; the writes are
        one transaction, then reach the cache and the change feed one revision
        at a time, exactly as the single writes (``save_thread``,
        ``save_item``, ``delete_item``) would have sent them.

        Raises:
            InvalidArgument: the request is malformed, or the item to retry
                after is not a user message.
            NotFound: the thread, or the item to retry after, is not the principal's.
        """
        check_id(thread_id, "thread_id")
        if not 0 <= history_limit <= MAX_ITEM_PAGE:
            raise InvalidArgument(f"history_limit must be between 0 and {MAX_ITEM_PAGE}, got {history_limit}")
        if user_message_json and retry_after_item_id:
            raise InvalidArgument("give at most one of user_message_json and retry_after_item_id")
        for value, what in ((scope, "scope"), (session_id, "session_id"), (retry_after_item_id, "retry_after_item_id")):
            if value:
                check_id(value, what)
        if title_if_empty and "\x00" in title_if_empty:
            raise InvalidArgument("title_if_empty contains a NUL character")
        create = None
        if create_thread_json:
            parsed = parse_thread_json(create_thread_json, max_bytes=self.limits.max_thread_bytes)
            if parsed.id != thread_id:
                raise InvalidArgument(f"create_thread_json.id must be the thread_id ({thread_id!r})")
            named = with_turn_metadata(
                parsed.json,
                title_if_empty=title_if_empty,
                session_id=session_id,
                max_bytes=self.limits.max_thread_bytes,
            )
            create = named or parsed
        message = None
        if user_message_json:
            message = parse_item_json(user_message_json, thread_id=thread_id, max_bytes=self.limits.max_item_bytes)
            if message.type != USER_MESSAGE_TYPE:
                raise InvalidArgument(f"user_message_json.type must be {USER_MESSAGE_TYPE!r}, not {message.type!r}")
        if create is None and message is None and not (retry_after_item_id or session_id or title_if_empty):
            thread = await self._load_owned_thread(principal, thread_id)
        else:
            writes = await self.repository.begin_turn(
                thread_id=thread_id,
                user_id=principal.user_id,
                org_id=principal.org_id,
                create=create,
                scope=scope or None,
                message=message,
                retry_after_item_id=retry_after_item_id or None,
                title_if_empty=title_if_empty or None,
                session_id=session_id or None,
                max_thread_bytes=self.limits.max_thread_bytes,
            )
            await self._write_through(writes)
            thread = writes.thread
        return TurnStart(thread=thread, items=await self._newest_items(principal, thread_id, history_limit))

    async def _load_owned_thread(self, principal: Principal, thread_id: str) -> ThreadRecord:
        # The cache is keyed by owner: a hit under the principal's id is theirs.
        if self.cache is not None:
            cached = await self.cache.get_thread(user_id=principal.user_id, thread_id=thread_id)
            if cached is not None:
                return cached
        return await self.repository.load_thread(thread_id=thread_id, user_id=principal.user_id)

    async def _write_through(self, writes: TurnWrites) -> None:
        """Send a turn's committed changes to the cache and the feed, one revision each, in order."""
        if writes.created is not None:
            if self.cache is not None:
                await self.cache.apply(thread=writes.created, created=True)
            await self._publish("thread.created", writes.created, body=writes.created.json)
        # The cache patches a change only on top of exactly the previous revision,
        # so each change goes with its own. Postgres holds no state between them:
        # every step carries the thread as committed, at the step's revision.
        revision = writes.thread.revision - writes.revisions
        for item_id in writes.deleted_item_ids:
            revision += 1
            step = replace(writes.thread, revision=revision)
            if self.cache is not None:
                await self.cache.apply(thread=step, op="del", item_id=item_id)
            await self._publish("item.deleted", step, item_id=item_id)
        if writes.message is not None:
            revision += 1
            step = replace(writes.thread, revision=revision)
            if self.cache is not None:
                await self.cache.apply(thread=step, op="put", item=writes.message)
            event = "item.added" if writes.message_created else "item.updated"
            await self._publish(event, step, item_id=writes.message.id, body=writes.message.json)
        if writes.thread_updated:
            if self.cache is not None:
                await self.cache.apply(thread=writes.thread)
            await self._publish("thread.updated", writes.thread, body=writes.thread.json)

    async def _newest_items(self, principal: Principal, thread_id: str, limit: int) -> list[ItemRecord] | EncodedItems:
        """The newest ``limit`` items of the principal's thread, oldest first; from the cache when warm."""
        if limit == 0:
            return []
        if self.cache is not None:
            page = await self.cache.page_items(
                user_id=principal.user_id, thread_id=thread_id, after=None, limit=limit, order="desc"
            )
            if page is not None:
                return EncodedItems(blobs=page.blobs[::-1], has_more=page.has_more, after=None)
            if self.cache.readable:
                # A miss: fill the cache as list_items does, so the turn's writes patch into it.
                _thread, items = await self._load_and_fill(principal, thread_id)
                if items is not None:
                    return items[-limit:]
        page_records = await self.repository.list_items(thread_id=thread_id, after=None, limit=limit, order="desc")
        return page_records.items[::-1]

    # -- attachments ----------------------------------------------------------

    async def save_attachment(
        self, principal: Principal, attachment_json: bytes, *, content: bytes | None, set_content: bool
    ) -> AttachmentRecord:
        """Create or update one of the principal's attachments (and its bytes)."""
        parsed = parse_attachment_json(attachment_json, max_bytes=self.limits.max_attachment_json_bytes)
        if set_content and content is not None and len(content) > self.limits.max_attachment_bytes:
            raise ResourceExhausted(
                f"attachment is {len(content)} bytes; the limit is {self.limits.max_attachment_bytes}"
            )
        return await self.repository.save_attachment(
            attachment=parsed,
            user_id=principal.user_id,
            org_id=principal.org_id,
            content=content,
            set_content=set_content,
        )

    async def load_attachment(
        self, principal: Principal, attachment_id: str, *, include_content: bool
    ) -> AttachmentRecord:
        """One of the principal's attachments."""
        check_id(attachment_id, "attachment_id")
        return await self.repository.load_attachment(
            attachment_id=attachment_id, user_id=principal.user_id, include_content=include_content
        )

    async def delete_attachment(self, principal: Principal, attachment_id: str) -> None:
        """Delete one of the principal's attachments."""
        check_id(attachment_id, "attachment_id")
        await self.repository.delete_attachment(attachment_id=attachment_id, user_id=principal.user_id)

    # -- change feed ----------------------------------------------------------

    async def watch(
        self, principal: Principal, *, thread_id: str | None, org: bool, since: str | None
    ) -> AsyncIterator[ChangeEvent]:
        """Follow one thread's changes, or (operators) every change in the org.

        The first event is ``watch.started``: the watch is live from then on,
        and its id is where to resume.
        """
        if self.feed is None:
            raise Unavailable("the change feed needs Redis; set REDIS_URL")
        if org:
            if not (principal.is_operator and principal.org_id):
                raise PermissionDenied("watching an org needs the operator role and an org")
            stream = org_stream(principal.org_id)
        elif thread_id:
            thread = await self.load_thread(principal, thread_id)
            stream = thread_stream(thread.user_id, thread.id)
        else:
            raise InvalidArgument("watch needs a thread_id or org")
        if since:
            check_stream_id(since)
        async for event in self.feed.watch(stream, since=since or None):
            yield event

    async def _publish(self, type: str, thread: ThreadRecord, *, item_id: str = "", body: bytes = b"") -> None:
        if self.feed is not None:
            await self.feed.publish(
                type=type,
                user_id=thread.user_id,
                org_id=thread.org_id,
                thread_id=thread.id,
                revision=thread.revision,
                item_id=item_id,
                body=body,
            )
