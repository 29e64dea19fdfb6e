"""Export and import a user's threads as JSON Lines, to move data between deployments.

One JSON object a line, each with a ``kind``:

- ``{"kind": "thread", "scope": ..., "thread": <ChatKit ThreadMetadata>}``
- ``{"kind": "item", "thread_id": ..., "item": <ChatKit ThreadItem>}``
- ``{"kind": "attachment", "attachment": <ChatKit Attachment>, "content_base64": ...}``

Threads come before their items, so an import can write the file in order. An
import checks the whole file before it writes any of it.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from services.thread_store.domain import (
    ParsedAttachment,
    ParsedItem,
    ParsedThread,
    check_id,
    parse_attachment_json,
    parse_item_json,
    parse_thread_json,
)
from services.thread_store.service import MAX_ITEM_PAGE, ThreadStoreService
from switchboard.errors import InvalidArgument, NotFound, SwitchboardError
from switchboard.principal import Principal

# How often (in lines) an import reports its progress.
PROGRESS_EVERY = 100
KINDS = ("thread", "item", "attachment")

Progress = Callable[[str, int], None]
"""Told (``"checked"`` or ``"written"``, the line reached) as an import goes."""


@dataclass
class ImportCounts:
    """What an import wrote."""

    threads: int = 0
    items: int = 0
    attachments: int = 0


@dataclass(frozen=True, slots=True)
class ThreadLine:
    """A validated ``thread`` line."""

    number: int
    thread: ParsedThread
    scope: str | None


@dataclass(frozen=True, slots=True)
class ItemLine:
    """A validated ``item`` line."""

    number: int
    item: ParsedItem


@dataclass(frozen=True, slots=True)
class AttachmentLine:
    """A validated ``attachment`` line, with its bytes decoded (None: no bytes in the file)."""

    number: int
    attachment: ParsedAttachment
    content: bytes | None


ImportLine = ThreadLine | ItemLine | AttachmentLine


async def export_user(service: ThreadStoreService, principal: Principal) -> AsyncIterator[str]:
    """Yield the JSON lines of every thread, item and attachment of a user."""
    repository = service.repository
    for thread_id in await repository.list_user_thread_ids(user_id=principal.user_id):
        thread = await repository.load_thread(thread_id=thread_id, user_id=principal.user_id)
        yield json.dumps({"kind": "thread", "scope": thread.scope, "thread": json.loads(thread.json)})
        after: str | None = None
        while True:
            page = await repository.list_items(thread_id=thread_id, after=after, limit=500, order="asc")
            for item in page.items:
                yield json.dumps({"kind": "item", "thread_id": thread_id, "item": json.loads(item.json)})
            if not page.has_more:
                break
            after = page.after
    for attachment in await repository.list_user_attachments(user_id=principal.user_id):
        content = base64.b64encode(attachment.content).decode() if attachment.content is not None else None
        yield json.dumps({"kind": "attachment", "attachment": json.loads(attachment.json), "content_base64": content})


async def import_user(
    service: ThreadStoreService,
    principal: Principal,
    lines: Iterable[str | bytes],
    *,
    progress: Progress | None = None,
) -> ImportCounts:
    """Write exported lines as the given user's (upserts: importing twice is harmless).

    Two passes: ``validate_import`` checks every line first, and only a file
    without an error is written, in file order.

    Args:
        service: The thread store.
        principal: The user the threads are written as.
        lines: The file's lines (bytes are read as UTF-8).
        progress: Told the line reached every ``PROGRESS_EVERY`` lines, while checking and while writing.

    Raises:
        InvalidArgument: a line is malformed; the message starts ``line N:``, and nothing was written.
        SwitchboardError: the store refused a write that no check could foresee (a thread or
            attachment id that another user of this deployment holds); the message starts
            ``line N:``, and the lines before it were written.
    """
    records = await validate_import(service, principal, lines, progress=progress)
    counts = ImportCounts()
    for done, record in enumerate(records, start=1):
        try:
            await _write(service, principal, record, counts)
        except SwitchboardError as error:
            raise type(error)(
                f"line {record.number}: {error.message} (the lines before it were written, none after it)"
            ) from None
        if progress is not None and done % PROGRESS_EVERY == 0:
            progress("written", record.number)
    return counts


async def validate_import(
    service: ThreadStoreService,
    principal: Principal,
    lines: Iterable[str | bytes],
    *,
    progress: Progress | None = None,
) -> list[ImportLine]:
    """Parse and validate every line of an export, writing nothing.

    Each line is checked as the service checks the same write: its JSON, its
    ``kind``, the ChatKit object through the service's own parsers and limits
    (ids, sizes, ``created_at`` between the years 1900 and 9000, no NaN, NUL,
    unpaired surrogate or runaway nesting), an attachment's base64 and size,
    and that each item's thread is an earlier line of the file or already the
    user's, and that the item does not overwrite another author's (an
    operator's reply).

    Returns:
        The validated lines, in file order.

    Raises:
        InvalidArgument: the first bad line, as ``line N: <what>``.
    """
    checker = _ImportChecker(service, principal)
    records: list[ImportLine] = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                records.append(await checker.check(number, line))
            except SwitchboardError as error:
                raise InvalidArgument(f"line {number}: {error.message}") from None
        if progress is not None and number % PROGRESS_EVERY == 0:
            progress("checked", number)
    return records


async def _write(service: ThreadStoreService, principal: Principal, record: ImportLine, counts: ImportCounts) -> None:
    match record:
        case ThreadLine():
            await service.save_thread(principal, record.thread.json, record.scope)
            counts.threads += 1
        case ItemLine():
            await service.save_item(principal, record.item.thread_id, record.item.json)
            counts.items += 1
        case AttachmentLine():
            await service.save_attachment(
                principal, record.attachment.json, content=record.content, set_content=record.content is not None
            )
            counts.attachments += 1


class _ImportChecker:
    """Validates one line at a time, remembering what the lines before made true."""

    def __init__(self, service: ThreadStoreService, principal: Principal) -> None:
        self._service = service
        self._limits = service.limits
        self._user_id = principal.user_id
        self._file_threads: set[str] = set()
        # Per thread an item line writes into: the ids of items another author wrote
        # there (None: the thread is not the user's yet, so it has none).
        self._others_items: dict[str, frozenset[str] | None] = {}

    async def check(self, number: int, line: str | bytes) -> ImportLine:
        record = _load_line(line)
        kind = record.get("kind")
        if kind == "thread":
            return self._thread(number, record)
        if kind == "item":
            return await self._item(number, record)
        if kind == "attachment":
            return self._attachment(number, record)
        raise InvalidArgument(f"kind must be one of {', '.join(map(repr, KINDS))}, not {_short(kind)}")

    def _thread(self, number: int, record: dict[str, Any]) -> ThreadLine:
        scope = record.get("scope")
        if scope is not None:
            if not isinstance(scope, str):
                raise InvalidArgument("scope must be a string or null")
            check_id(scope, "scope")
        raw = _object_json(record, "thread")
        with _in_file_terms():
            thread = parse_thread_json(raw, max_bytes=self._limits.max_thread_bytes)
        self._file_threads.add(thread.id)
        return ThreadLine(number=number, thread=thread, scope=scope)

    async def _item(self, number: int, record: dict[str, Any]) -> ItemLine:
        thread_id = record.get("thread_id")
        if not isinstance(thread_id, str):
            raise InvalidArgument("thread_id must be a string")
        check_id(thread_id, "thread_id")
        raw = _object_json(record, "item")
        with _in_file_terms():
            item = parse_item_json(raw, thread_id=thread_id, max_bytes=self._limits.max_item_bytes)
        others = await self._others_items_of(thread_id)
        if others is None and thread_id not in self._file_threads:
            raise InvalidArgument(
                f"item {item.id!r} is in thread {thread_id!r}, which is neither a thread line above it"
                " nor one of the user's threads"
            )
        if others and item.id in others:
            raise InvalidArgument(
                f"item {item.id!r} of thread {thread_id!r} was written by another author (an operator)"
                " and cannot be overwritten"
            )
        return ItemLine(number=number, item=item)

    def _attachment(self, number: int, record: dict[str, Any]) -> AttachmentLine:
        raw = _object_json(record, "attachment")
        with _in_file_terms():
            attachment = parse_attachment_json(raw, max_bytes=self._limits.max_attachment_json_bytes)
        encoded = record.get("content_base64")
        if encoded is None:
            return AttachmentLine(number=number, attachment=attachment, content=None)
        if not isinstance(encoded, str):
            raise InvalidArgument("content_base64 must be a base64 string or null")
        limit = self._limits.max_attachment_bytes
        if len(encoded) // 4 * 3 > limit + 2:  # refused before decoding it
            raise InvalidArgument(f"the attachment's content is larger than the limit of {limit} bytes")
        try:
            content = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidArgument("content_base64 is not valid base64") from None
        if len(content) > limit:
            raise InvalidArgument(f"the attachment's content is {len(content)} bytes; the limit is {limit}")
        return AttachmentLine(number=number, attachment=attachment, content=content)

    async def _others_items_of(self, thread_id: str) -> frozenset[str] | None:
        if thread_id not in self._others_items:
            self._others_items[thread_id] = await self._load_others_items(thread_id)
        return self._others_items[thread_id]

    async def _load_others_items(self, thread_id: str) -> frozenset[str] | None:
        repository = self._service.repository
        try:
            await repository.load_thread(thread_id=thread_id, user_id=self._user_id)
        except NotFound:
            return None
        others: set[str] = set()
        after: str | None = None
        while True:
            page = await repository.list_items(thread_id=thread_id, after=after, limit=MAX_ITEM_PAGE, order="asc")
            others.update(item.id for item in page.items if item.author != self._user_id)
            if not page.has_more:
                return frozenset(others)
            after = page.after


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number (Postgres jsonb refuses it)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is too large to store")
    return value


def _load_line(line: str | bytes) -> dict[str, Any]:
    try:
        record = json.loads(line, parse_constant=_refuse_constant, parse_float=_finite_float)
    except ValueError as error:
        raise InvalidArgument(f"not valid JSON: {error}") from None
    except RecursionError:
        raise InvalidArgument("the JSON is nested too deeply") from None
    if not isinstance(record, dict):
        raise InvalidArgument('a line must be a JSON object with a "kind"')
    return record


def _object_json(record: dict[str, Any], key: str) -> bytes:
    """The ChatKit object under ``key``, as the JSON bytes the service stores."""
    if not isinstance(record.get(key), dict):
        raise InvalidArgument(f"{key} must be a JSON object")
    try:
        # Compact and not ASCII-escaped: the size limits count what the original client sent.
        return json.dumps(record[key], ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:
        raise InvalidArgument(f"{key} contains an unpaired UTF-16 surrogate, which Postgres cannot store") from None
    except (RecursionError, ValueError):
        raise InvalidArgument(f"{key} is nested too deeply") from None


@contextmanager
def _in_file_terms() -> Iterator[None]:
    """A service parser's refusal, naming the fields as the file does (``thread.created_at``, not ``thread_json.``)."""
    try:
        yield
    except SwitchboardError as error:
        message = error.message
        for wire, file in (("thread_json", "thread"), ("item_json", "item"), ("attachment_json", "attachment")):
            message = message.replace(wire, file)
        raise InvalidArgument(message) from None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
