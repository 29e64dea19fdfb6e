"""The thread store's rules: who may read and write what, and how the cache is kept.

This module knows nothing of gRPC; ``servicer.py`` converts to and from protobuf.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from services.thread_store.cache import ThreadCache
from services.thread_store.domain import (
    HANDLER_KINDS,
    USER_MESSAGE_TYPE,
    AttachmentRecord,
    ChangeEvent,
    EncodedItems,
    Handler,
    HandlerChange,
    HandlerKind,
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
from services.thread_store.feed import ChangeFeed, org_stream, thread_stream
from services.thread_store.repository import ThreadRepository
from switchboard.config import env_int
from switchboard.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    SwitchboardError,
    Unavailable,
)
from switchboard.pages import Page, check_limit
from switchboard.principal import Principal
from switchboard.streams import check_stream_id

MAX_THREAD_PAGE = 200
MAX_ITEM_PAGE = 1000
# A page version is "<revision>:<40 hex digits>"; anything longer is not one.
MAX_VERSION_LENGTH = 80
# The one item type an operator may write into a thread of their org that they do not own.
OPERATOR_REPLY_TYPE = "assistant_message"
MAX_WAITING_SECONDS = 24 * 3600
MAX_EXPIRE_BATCH = 500
HANDLER_EVENT = "thread.handler"


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

    @contextlib.asynccontextmanager
    async def _outcome_unknown(self, user_id: str, thread_id: str) -> AsyncIterator[None]:
        """Around a write to Postgres: when it fails other than by a refusal of ours (storage cut
        mid-write, so it may have committed without our hearing), the thread's cached state is
        dropped before the error goes back, so no reader is served the state from before it."""
        try:
            yield
        except SwitchboardError:
            raise
        except Exception:
            if self.cache is not None:
                await self.cache.suspect(user_id=user_id, thread_id=thread_id)
            raise

    async def save_thread(self, principal: Principal, thread_json: bytes, scope: str | None) -> ThreadRecord:
        """Create or update one of the principal's threads."""
        parsed = parse_thread_json(thread_json, max_bytes=self.limits.max_thread_bytes)
        if scope is not None:
            check_id(scope, "scope")
        async with self._outcome_unknown(principal.user_id, parsed.id):
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
        """Add or update (by id) an item of one of the principal's threads (operators: a reply in their org's).

        The owner's items are written as the owner's; an operator of the thread's
        org who holds it (handler ``human``, themselves) writes assistant messages
        as their own. Nobody overwrites an item of another author. An item whose
        ``thread_id`` names another thread is stored in this one with its
        ``thread_id`` rewritten, as the SDK's reference store files it.

        Raises:
            NotFound: the thread is neither the principal's nor (operators) one of their org's.
            PermissionDenied: the id is an item of another author, or an operator
                does not hold the thread or writes something else than an assistant message.
        """
        check_id(thread_id, "thread_id")
        parsed = parse_item_json(item_json, thread_id=thread_id, max_bytes=self.limits.max_item_bytes, adopt=True)
        try:
            async with self._outcome_unknown(principal.user_id, thread_id):
                thread, item, created = await self.repository.save_item(item=parsed, user_id=principal.user_id)
        except NotFound:
            if not (principal.is_operator and principal.org_id):
                raise

            def authorize(locked: ThreadRecord) -> None:
                # An operator never speaks as the user, and writes only while holding the thread.
                if parsed.type != OPERATOR_REPLY_TYPE:
                    raise PermissionDenied(
                        f"an operator may write only {OPERATOR_REPLY_TYPE!r} items into a user's thread,"
                        f" not {parsed.type!r}"
                    ) from None
                handler = locked.handler
                if handler.kind != "human" or handler.operator_id != principal.user_id:
                    raise PermissionDenied(
                        "only the operator holding this conversation may write into it; take it over first"
                    ) from None

            thread, item, created = await self.repository.save_operator_item(
                item=parsed, operator_id=principal.user_id, org_id=principal.org_id, authorize=authorize
            )
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
        self,
        principal: Principal,
        thread_id: str,
        *,
        after: str | None,
        limit: int,
        order: Order,
        if_none_match: str | None = None,
    ) -> Page[ItemRecord] | EncodedItems:
        """A page of the items of a thread the principal may read.

        From the cache the items come already encoded for the transport
        (``EncodedItems``, with the thread's version); from Postgres, as records
        (no version: such a page cannot be revalidated). ``if_none_match``: a
        version the caller holds; when the cached page is still at it, the answer
        is ``EncodedItems(not_modified=True)``. Only the principal's own cache
        keys are read, so a version never vouches for a thread the caller may
        not read.
        """
        check_id(thread_id, "thread_id")
        limit = check_limit(limit, default=50, maximum=MAX_ITEM_PAGE)
        if after:
            check_id(after, "after")
        if if_none_match is not None and len(if_none_match) > MAX_VERSION_LENGTH:
            raise InvalidArgument(f"if_none_match is longer than {MAX_VERSION_LENGTH} characters: not a version")
        if self.cache is not None:
            page = await self.cache.page_items(
                user_id=principal.user_id,
                thread_id=thread_id,
                after=after,
                limit=limit,
                order=order,
                if_none_match=if_none_match,
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
                user_id=principal.user_id,
                thread_id=thread_id,
                after=after,
                limit=limit,
                order=order,
                if_none_match=if_none_match,
            )
            if page is not None:
                return page
        return await self.repository.list_items(thread_id=thread_id, after=after, limit=limit, order=order)

    async def delete_item(self, principal: Principal, thread_id: str, item_id: str) -> None:
        """Delete an item the principal wrote in one of their threads (never another author's)."""
        check_id(thread_id, "thread_id")
        check_id(item_id, "item_id")
        async with self._outcome_unknown(principal.user_id, thread_id):
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
            FailedPrecondition: an operator wrote an item after the one to retry after.
            PermissionDenied: the user message's id is an item of another author.
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
            async with self._outcome_unknown(principal.user_id, thread_id):
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

    # -- hand-off -------------------------------------------------------------

    async def set_handler(
        self,
        principal: Principal,
        thread_id: str,
        kind: str,
        *,
        escalation_id: str | None = None,
        waiting_seconds: int = 0,
        expect_kind: str | None = None,
    ) -> ThreadRecord:
        """Change who answers a thread (see ``decide_handler`` for who may do what).

        The rules are checked against the thread as committed last, under its
        row lock; a change is one revision, written through to the cache and
        published as a ``thread.handler`` event. Asking for the current state
        changes nothing.

        Raises:
            InvalidArgument: the request is malformed.
            NotFound: the thread is neither the principal's nor (operators) one of their org's.
            PermissionDenied: the principal may not make this change.
            FailedPrecondition: ``expect_kind`` is not the current kind, or the
                thread is in a state that does not allow the change (another
                operator holds it).
        """
        check_id(thread_id, "thread_id")
        target = _handler_kind(kind, "kind")
        expected = _handler_kind(expect_kind, "expect_kind") if expect_kind else None
        if escalation_id:
            check_id(escalation_id, "escalation_id")
        if target == "waiting":
            if not escalation_id:
                raise InvalidArgument("kind 'waiting' needs the escalation_id it waits for")
            if not 1 <= waiting_seconds <= MAX_WAITING_SECONDS:
                raise InvalidArgument(
                    f"waiting_seconds must be between 1 and {MAX_WAITING_SECONDS} for kind 'waiting',"
                    f" got {waiting_seconds}"
                )
        elif waiting_seconds:
            raise InvalidArgument(f"waiting_seconds applies only to kind 'waiting', not {target!r}")
        if target == "agent" and escalation_id:
            raise InvalidArgument("escalation_id applies only to kinds 'waiting' and 'human'")
        operator_org = principal.org_id if principal.is_operator and principal.org_id else None
        thread, changed = await self.repository.change_handler(
            thread_id=thread_id,
            user_id=principal.user_id,
            operator_org_id=operator_org,
            decide=lambda current: decide_handler(
                principal,
                current,
                target,
                escalation_id=escalation_id or None,
                waiting_seconds=waiting_seconds,
                expect_kind=expected,
            ),
        )
        if changed:
            await self._handler_changed(thread)
        return thread

    async def expire_waiting(self, limit: int) -> list[ThreadRecord]:
        """Hand every thread whose wait for a person ran out back to the agent (up to ``limit``; 0: 100).

        Each keeps its escalation id. Concurrent callers (any replica) never
        return a thread twice.
        """
        limit = check_limit(limit, default=100, maximum=MAX_EXPIRE_BATCH)
        threads = await self.repository.expire_waiting(limit=limit)
        for thread in threads:
            await self._handler_changed(thread)
        return threads

    async def _handler_changed(self, thread: ThreadRecord) -> None:
        if self.cache is not None:
            await self.cache.apply(thread=thread)
        body = json.dumps(thread.handler.to_json(), separators=(",", ":")).encode()
        await self._publish(HANDLER_EVENT, thread, body=body)

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


def _handler_kind(value: str | None, what: str) -> HandlerKind:
    for kind in HANDLER_KINDS:
        if value == kind:
            return kind
    raise InvalidArgument(f"{what} must be one of {', '.join(map(repr, HANDLER_KINDS))}, not {value!r}")


def decide_handler(
    principal: Principal,
    thread: ThreadRecord,
    kind: HandlerKind,
    *,
    escalation_id: str | None,
    waiting_seconds: int,
    expect_kind: HandlerKind | None,
) -> HandlerChange | None:
    """Who may change a thread's handler to ``kind``, given its current handler.

    ``principal`` is the thread's owner or an operator of its org (anyone else
    never finds the thread):

    - the owner escalates (agent -> waiting) and withdraws (waiting -> agent);
      they never set ``human`` nor end a person's hand-off (PermissionDenied);
    - an operator takes the thread for themselves (-> human, from agent,
      waiting or their own hold; another operator's: FailedPrecondition), gives
      it back (-> agent, from waiting or their own hold; another's:
      PermissionDenied) and queues it (agent -> waiting).

    Going to the agent clears the operator, the deadline and the escalation;
    going to ``human`` without an escalation id keeps the current one.

    Returns:
        The change, or None when the thread is in that state already.

    Raises:
        FailedPrecondition: ``expect_kind`` is not the current kind, or the state does not allow it.
        PermissionDenied: the principal may not make this change.
    """
    current = thread.handler
    if expect_kind is not None and current.kind != expect_kind:
        raise FailedPrecondition(
            f"thread {thread.id!r} is handled by {_describe(current)}, not {expect_kind!r}; nothing changed"
        )
    holder = current.operator_id if current.kind == "human" else None
    if thread.user_id == principal.user_id:
        if kind == "human":
            raise PermissionDenied("only an operator can take over a conversation")
        if holder is not None:
            raise PermissionDenied("a person is answering this conversation; only they can hand it back")
    elif kind == "human":
        if holder is not None and holder != principal.user_id:
            raise FailedPrecondition(f"operator {holder!r} holds thread {thread.id!r}; they must hand it back first")
        return _unless_current(
            current,
            HandlerChange(
                kind="human", operator_id=principal.user_id, escalation_id=escalation_id or current.escalation_id
            ),
        )
    elif holder is not None and holder != principal.user_id:
        raise PermissionDenied(f"operator {holder!r} holds thread {thread.id!r}; only they can hand it back")
    elif holder is not None and kind == "waiting":
        raise FailedPrecondition(f"you hold thread {thread.id!r}: hand it back to the agent instead of queueing it")
    if kind == "agent":
        return _unless_current(current, HandlerChange(kind="agent"))
    if current.kind == "waiting" and current.escalation_id != escalation_id:
        raise FailedPrecondition(
            f"thread {thread.id!r} already waits for a person (escalation {current.escalation_id!r})"
        )
    return _unless_current(
        current, HandlerChange(kind="waiting", escalation_id=escalation_id, waiting_seconds=waiting_seconds)
    )


def _unless_current(current: Handler, change: HandlerChange) -> HandlerChange | None:
    if (current.kind, current.operator_id, current.escalation_id) == (
        change.kind,
        change.operator_id,
        change.escalation_id,
    ):
        return None
    return change


def _describe(handler: Handler) -> str:
    if handler.kind == "human":
        return f"operator {handler.operator_id!r}"
    return "a wait for a person" if handler.kind == "waiting" else "the agent"
