"""Postgres access for threads, items and attachments.

Every method takes the owner (or the operator's org) and filters by it; a row
of someone else is ``NotFound``, never ``PermissionDenied``, so ids leak
nothing. Methods return domain records, never raw rows.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from services.thread_store.domain import (
    AGENT,
    USER_MESSAGE_TYPE,
    AttachmentRecord,
    Handler,
    HandlerChange,
    ItemRecord,
    Order,
    ParsedAttachment,
    ParsedItem,
    ParsedThread,
    ThreadRecord,
    ThreadSortKey,
    TurnWrites,
    with_turn_metadata,
)
from switchboard.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from switchboard.pages import Page, make_page

QUERIES_DIR = Path(__file__).parent / "queries"


def _handler(row: asyncpg.Record) -> Handler:
    if row["handler"] == "agent" and row["handler_since"] is None and row["handler_escalation"] is None:
        return AGENT  # a thread that was never handed off: no allocation
    return Handler(
        kind=row["handler"],
        operator_id=row["handler_operator"],
        escalation_id=row["handler_escalation"],
        since=row["handler_since"],
        until=row["handler_until"],
    )


def _thread(row: asyncpg.Record) -> ThreadRecord:
    return ThreadRecord(
        id=row["id"],
        user_id=row["user_id"],
        org_id=row["org_id"],
        scope=row["scope"],
        title=row["title"],
        status=row["status"],
        json=row["data"].encode(),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        revision=row["revision"],
        handler=_handler(row),
    )


def _item(row: asyncpg.Record) -> ItemRecord:
    return ItemRecord(
        id=row["id"],
        thread_id=row["thread_id"],
        type=row["type"],
        json=row["data"].encode(),
        created_at=row["created_at"],
        author=row["author"],
    )


def _another_author(item_id: str, thread_id: str) -> PermissionDenied:
    return PermissionDenied(
        f"item {item_id!r} of thread {thread_id!r} was written by another author;"
        " nobody rewrites or deletes another author's item"
    )


def _attachment(row: asyncpg.Record, content: bytes | None = None) -> AttachmentRecord:
    return AttachmentRecord(
        id=row["id"],
        thread_id=row["thread_id"],
        mime_type=row["mime_type"],
        json=row["data"].encode(),
        created_at=row["created_at"],
        has_content=row["has_content"],
        content=content,
    )


class ThreadRepository:
    """Threads, items and attachments in Postgres."""

    def __init__(self, pool: asyncpg.Pool, queries: Any) -> None:
        self._pool = pool
        self._q = queries

    async def _fetchrow(self, sql: str, *args: Any, conn: Any = None) -> asyncpg.Record | None:
        if conn is not None:
            return await conn.fetchrow(sql, *args)
        return await self._pool.fetchrow(sql, *args)

    async def _fetch(self, sql: str, *args: Any, conn: Any = None) -> list[asyncpg.Record]:
        if conn is not None:
            return list(await conn.fetch(sql, *args))
        return list(await self._pool.fetch(sql, *args))

    # -- threads --------------------------------------------------------------

    async def load_thread(self, *, thread_id: str, user_id: str, operator_org_id: str | None = None) -> ThreadRecord:
        """Load a thread its owner may read (or an operator of its org)."""
        row = await self._fetchrow(self._q.get_thread, thread_id, user_id, operator_org_id is not None, operator_org_id)
        if row is None:
            raise NotFound(f"thread {thread_id!r} not found")
        return _thread(row)

    async def save_thread(
        self, *, thread: ParsedThread, user_id: str, org_id: str | None, scope: str | None
    ) -> tuple[ThreadRecord, bool]:
        """Upsert a thread.

        Returns:
            The stored thread and whether it was created now.
        """
        row = await self._fetchrow(
            self._q.upsert_thread,
            thread.id,
            user_id,
            org_id,
            scope or thread.scope,
            thread.title,
            thread.status,
            thread.json.decode(),
            thread.created_at,
            scope,
        )
        if row is None:
            raise NotFound(f"thread {thread.id!r} not found")
        return _thread(row), bool(row["inserted"])

    async def delete_thread(self, *, thread_id: str, user_id: str) -> ThreadRecord:
        """Delete a thread; its items go with it (ON DELETE CASCADE)."""
        row = await self._fetchrow(self._q.delete_thread, thread_id, user_id)
        if row is None:
            raise NotFound(f"thread {thread_id!r} not found")
        return _thread(row)

    async def list_threads(
        self,
        *,
        user_id: str | None,
        org_id: str | None,
        scope: str | None,
        sort: ThreadSortKey,
        order: Order,
        after: str | None,
        limit: int,
        operator_org_id: str | None = None,
    ) -> Page[ThreadRecord]:
        """A page of a user's threads, or of an org's when ``user_id`` is None."""
        cursor_time: datetime | None = None
        cursor_id: str | None = None
        if after:
            cursor = await self._fetchrow(self._q.get_thread, after, user_id or "", org_id is not None, org_id)
            if cursor is None:
                raise InvalidArgument(f"cursor {after!r} is not a thread of this listing")
            cursor_time = cursor["updated_at" if sort == "recent_activity" else "created_at"]
            cursor_id = cursor["id"]
        prefix = "list_threads" if user_id is not None else "list_org_threads"
        kind = "activity" if sort == "recent_activity" else "created"
        sql = getattr(self._q, f"{prefix}_{kind}_{order}")
        owner = user_id if user_id is not None else org_id
        rows = await self._fetch(sql, owner, scope, cursor_time, cursor_id, limit + 1)
        return make_page([_thread(r) for r in rows], limit, lambda t: t.id)

    async def list_user_thread_ids(self, *, user_id: str) -> list[str]:
        """Every thread id of a user, oldest first (for export)."""
        return [r["id"] for r in await self._fetch(self._q.list_user_thread_ids, user_id)]

    # -- items ----------------------------------------------------------------

    async def save_item(self, *, item: ParsedItem, user_id: str) -> tuple[ThreadRecord, ItemRecord, bool]:
        """Upsert an item the owner writes into their thread, bumping the thread's revision.

        Returns:
            The thread after the write, the item, and whether it was created now.

        Raises:
            NotFound: the thread is not the user's.
            PermissionDenied: the item's id is an item of another author.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            thread_row = await self._fetchrow(self._q.touch_thread, item.thread_id, user_id, conn=conn)
            if thread_row is None:
                raise NotFound(f"thread {item.thread_id!r} not found")
            row = await self._upsert_item(conn, item=item, owner_id=user_id, author=user_id)
        return _thread(thread_row), _item(row), bool(row["inserted"])

    async def save_operator_item(
        self,
        *,
        item: ParsedItem,
        operator_id: str,
        org_id: str,
        authorize: Callable[[ThreadRecord], None],
    ) -> tuple[ThreadRecord, ItemRecord, bool]:
        """Upsert an item an operator writes into a thread of their org, as its author.

        ``authorize`` sees the thread as committed last, under its row lock, and
        raises to refuse: a hand-back that commits first is seen, one that
        comes later waits for this write.

        Returns:
            The thread after the write, the item, and whether it was created now.

        Raises:
            NotFound: the thread is not one of the org's.
            PermissionDenied: ``authorize`` refused, or the item's id is an item of another author.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            locked = await self._fetchrow(
                self._q.lock_readable_thread, item.thread_id, operator_id, True, org_id, conn=conn
            )
            if locked is None:
                raise NotFound(f"thread {item.thread_id!r} not found")
            authorize(_thread(locked))
            owner_id = locked["user_id"]
            thread_row = await self._fetchrow(self._q.touch_thread, item.thread_id, owner_id, conn=conn)
            assert thread_row is not None  # locked above
            row = await self._upsert_item(conn, item=item, owner_id=owner_id, author=operator_id)
        return _thread(thread_row), _item(row), bool(row["inserted"])

    async def _upsert_item(self, conn: Any, *, item: ParsedItem, owner_id: str, author: str) -> asyncpg.Record:
        row = await self._fetchrow(
            self._q.upsert_item,
            item.thread_id,
            item.id,
            owner_id,
            item.type,
            item.json.decode(),
            item.created_at,
            author,
            conn=conn,
        )
        if row is None:
            # Raising rolls the revision bump back: nothing changed.
            raise _another_author(item.id, item.thread_id)
        return row

    async def delete_item(self, *, thread_id: str, item_id: str, user_id: str) -> ThreadRecord:
        """Delete an item the owner wrote in their thread, bumping the thread's revision.

        Raises:
            NotFound: the thread or the item is not the user's.
            PermissionDenied: another author (an operator) wrote the item.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            thread_row = await self._fetchrow(self._q.touch_thread, thread_id, user_id, conn=conn)
            if thread_row is None:
                raise NotFound(f"thread {thread_id!r} not found")
            result = await self._fetchrow(self._q.delete_item, thread_id, item_id, user_id, conn=conn)
            # Raising rolls the revision bump back: nothing changed.
            if result is None:
                raise NotFound(f"item {item_id!r} not found in thread {thread_id!r}")
            if not result["deleted"]:
                raise _another_author(item_id, thread_id)
        return _thread(thread_row)

    async def begin_turn(
        self,
        *,
        thread_id: str,
        user_id: str,
        org_id: str | None,
        create: ParsedThread | None,
        scope: str | None,
        message: ParsedItem | None,
        retry_after_item_id: str | None,
        title_if_empty: str | None,
        session_id: str | None,
        max_thread_bytes: int,
    ) -> TurnWrites:
        """Write the start of a turn in one transaction, under the thread's row lock.

        Creates the thread when ``create`` is given and the id is free, locks the
        owner's thread, deletes the items after ``retry_after_item_id``, upserts
        ``message``, and gives the thread a title and session id when it lacks
        them. The revision advances once per change (see ``TurnWrites``). The
        common turn (a message into an existing thread) sends two statements.

        Raises:
            NotFound: the thread (or the item to retry after) is not the user's.
            InvalidArgument: ``retry_after_item_id`` is not a user message.
            FailedPrecondition: another author (an operator) wrote an item after
                ``retry_after_item_id``; nothing is deleted.
            PermissionDenied: the message's id is an item of another author.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            created_row: asyncpg.Record | None = None
            if create is not None:
                created_row = await self._fetchrow(
                    self._q.insert_thread_if_absent,
                    create.id,
                    user_id,
                    org_id,
                    scope or create.scope,
                    create.title,
                    create.status,
                    create.json.decode(),
                    create.created_at,
                    conn=conn,
                )
            row = created_row
            if row is None:
                row = await self._fetchrow(self._q.lock_thread, thread_id, user_id, conn=conn)
            if row is None:
                raise NotFound(f"thread {thread_id!r} not found")
            created = _thread(row) if created_row is not None else None
            # A created thread was inserted with its title and session already.
            revised = (
                None
                if created is not None
                else with_turn_metadata(
                    row["data"].encode(),
                    title_if_empty=title_if_empty,
                    session_id=session_id,
                    max_bytes=max_thread_bytes,
                )
            )
            deleted_ids: list[str] = []
            if retry_after_item_id is not None:
                retried = await self._fetchrow(
                    self._q.delete_items_after, thread_id, retry_after_item_id, USER_MESSAGE_TYPE, user_id, conn=conn
                )
                if retried is None:
                    raise NotFound(f"item {retry_after_item_id!r} not found in thread {thread_id!r}")
                if retried["type"] != USER_MESSAGE_TYPE:
                    kind = retried["type"]
                    raise InvalidArgument(f"retry_after_item_id must name a user message, not a {kind!r} item")
                if retried["blocked"]:
                    raise FailedPrecondition(
                        f"an operator replied after message {retry_after_item_id!r}; it cannot be retried"
                    )
                deleted_ids = list(retried["deleted_ids"])
            revisions = len(deleted_ids) + (message is not None) + (revised is not None)
            title = revised.title if revised is not None else None
            data = revised.json.decode() if revised is not None else None
            saved: ItemRecord | None = None
            saved_created = False
            if message is not None:
                written = await self._fetchrow(
                    self._q.save_turn_message,
                    thread_id,
                    message.id,
                    user_id,
                    message.type,
                    message.json.decode(),
                    message.created_at,
                    revisions,
                    title,
                    data,
                    conn=conn,
                )
                if written is None:  # the thread row is locked: only the item can be missing
                    raise _another_author(message.id, thread_id)
                row = written
                saved = ItemRecord(
                    id=written["item_id"],
                    thread_id=thread_id,
                    type=written["item_type"],
                    json=written["item_data"].encode(),
                    created_at=written["item_created_at"],
                    author=written["item_author"],
                )
                saved_created = bool(written["item_inserted"])
            elif revisions:
                advanced = await self._fetchrow(
                    self._q.advance_thread, thread_id, user_id, revisions, title, data, conn=conn
                )
                assert advanced is not None
                row = advanced
        return TurnWrites(
            thread=_thread(row),
            created=created,
            deleted_item_ids=deleted_ids,
            message=saved,
            message_created=saved_created,
            thread_updated=revised is not None,
        )

    async def load_item(self, *, thread_id: str, item_id: str) -> ItemRecord:
        """Load one item; the caller has checked the thread's ownership."""
        row = await self._fetchrow(self._q.get_item, thread_id, item_id)
        if row is None:
            raise NotFound(f"item {item_id!r} not found in thread {thread_id!r}")
        return _item(row)

    async def list_items(self, *, thread_id: str, after: str | None, limit: int, order: Order) -> Page[ItemRecord]:
        """A page of a thread's items; the caller has checked the thread's ownership."""
        cursor_time: datetime | None = None
        cursor_id: str | None = None
        if after:
            cursor = await self._fetchrow(self._q.item_cursor, thread_id, after)
            if cursor is None:
                raise InvalidArgument(f"cursor {after!r} is not an item of thread {thread_id!r}")
            cursor_time, cursor_id = cursor["created_at"], cursor["id"]
        sql = self._q.list_items_asc if order == "asc" else self._q.list_items_desc
        rows = await self._fetch(sql, thread_id, cursor_time, cursor_id, limit + 1)
        return make_page([_item(r) for r in rows], limit, lambda i: i.id)

    async def load_thread_with_items(
        self, *, thread_id: str, user_id: str, max_items: int
    ) -> tuple[ThreadRecord, list[ItemRecord] | None]:
        """Read a thread and (if it has at most ``max_items``) all its items in one snapshot.

        Used to fill the cache: both reads see the same revision.

        Returns:
            The thread and its items in ascending order, or None for the items
            when the thread has more than ``max_items``.
        """
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            row = await self._fetchrow(self._q.get_thread, thread_id, user_id, False, None, conn=conn)
            if row is None:
                raise NotFound(f"thread {thread_id!r} not found")
            rows = await self._fetch(self._q.list_items_asc, thread_id, None, None, max_items + 1, conn=conn)
        items = [_item(r) for r in rows]
        return _thread(row), (items if len(items) <= max_items else None)

    # -- hand-off -------------------------------------------------------------

    async def change_handler(
        self,
        *,
        thread_id: str,
        user_id: str,
        operator_org_id: str | None,
        decide: Callable[[ThreadRecord], HandlerChange | None],
    ) -> tuple[ThreadRecord, bool]:
        """Change who answers a thread in one transaction, under the thread's row lock.

        ``decide`` sees the thread as committed last and returns the change, None
        when there is nothing to change, or raises to refuse.

        Returns:
            The thread after the change (or as it was), and whether it changed.

        Raises:
            NotFound: the thread is neither the user's nor (operators) one of ``operator_org_id``.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            locked = await self._fetchrow(
                self._q.lock_readable_thread,
                thread_id,
                user_id,
                operator_org_id is not None,
                operator_org_id,
                conn=conn,
            )
            if locked is None:
                raise NotFound(f"thread {thread_id!r} not found")
            change = decide(_thread(locked))
            if change is None:
                return _thread(locked), False
            row = await self._fetchrow(
                self._q.set_handler,
                thread_id,
                change.kind,
                change.operator_id,
                change.escalation_id,
                change.waiting_seconds,
                conn=conn,
            )
        assert row is not None  # locked above
        return _thread(row), True

    async def expire_waiting(self, *, limit: int) -> list[ThreadRecord]:
        """Hand up to ``limit`` threads whose wait ran out back to the agent; each is returned once."""
        return [_thread(r) for r in await self._fetch(self._q.expire_waiting, limit)]

    # -- attachments ----------------------------------------------------------

    async def save_attachment(
        self,
        *,
        attachment: ParsedAttachment,
        user_id: str,
        org_id: str | None,
        content: bytes | None,
        set_content: bool,
    ) -> AttachmentRecord:
        """Upsert attachment metadata (and bytes when ``set_content``)."""
        row = await self._fetchrow(
            self._q.upsert_attachment,
            attachment.id,
            user_id,
            org_id,
            attachment.thread_id,
            attachment.mime_type,
            attachment.json.decode(),
            content if set_content else None,
            set_content,
        )
        if row is None:
            raise NotFound(f"attachment {attachment.id!r} not found")
        return _attachment(row)

    async def load_attachment(self, *, attachment_id: str, user_id: str, include_content: bool) -> AttachmentRecord:
        """Load an attachment of the user."""
        row = await self._fetchrow(self._q.get_attachment, attachment_id, user_id, include_content)
        if row is None:
            raise NotFound(f"attachment {attachment_id!r} not found")
        return _attachment(row, row["content"] if include_content else None)

    async def delete_attachment(self, *, attachment_id: str, user_id: str) -> None:
        """Delete an attachment of the user."""
        if await self._fetchrow(self._q.delete_attachment, attachment_id, user_id) is None:
            raise NotFound(f"attachment {attachment_id!r} not found")

    async def list_user_attachments(self, *, user_id: str) -> list[AttachmentRecord]:
        """Every attachment of a user, with bytes (for export)."""
        rows = await self._fetch(self._q.list_user_attachments, user_id)
        return [_attachment(r, r["content"]) for r in rows]
