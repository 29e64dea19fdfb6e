"""Export and import a user's threads as JSON Lines, to move data between deployments.

One JSON object a line, each with a ``kind``:

- ``{"kind": "thread", "scope": ..., "thread": <ChatKit ThreadMetadata>}``
- ``{"kind": "item", "thread_id": ..., "item": <ChatKit ThreadItem>}``
- ``{"kind": "attachment", "attachment": <ChatKit Attachment>, "content_base64": ...}``

Threads come before their items, so an import can stream the file.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from services.thread_store.service import ThreadStoreService
from switchboard.errors import InvalidArgument
from switchboard.principal import Principal


@dataclass
class ImportCounts:
    """What an import wrote."""

    threads: int = 0
    items: int = 0
    attachments: int = 0


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


async def import_user(service: ThreadStoreService, principal: Principal, lines: Iterable[str]) -> ImportCounts:
    """Write exported lines as the given user's (upserts: importing twice is harmless).

    Raises:
        InvalidArgument: a line is malformed; its number is in the message.
    """
    counts = ImportCounts()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            kind = record["kind"]
            if kind == "thread":
                await service.save_thread(principal, json.dumps(record["thread"]).encode(), record.get("scope"))
                counts.threads += 1
            elif kind == "item":
                await service.save_item(principal, record["thread_id"], json.dumps(record["item"]).encode())
                counts.items += 1
            elif kind == "attachment":
                raw = record.get("content_base64")
                await service.save_attachment(
                    principal,
                    json.dumps(record["attachment"]).encode(),
                    content=base64.b64decode(raw) if raw is not None else None,
                    set_content=raw is not None,
                )
                counts.attachments += 1
            else:
                raise InvalidArgument(f"unknown kind {kind!r}")
        except (ValueError, KeyError, TypeError, InvalidArgument) as error:
            raise InvalidArgument(f"line {number}: {error}") from None
    return counts
