"""``SwitchboardSession``: the Agents SDK's ``Session`` (agent memory) over a Switchboard thread.

Teams that run the Agents SDK outside the web chat (a voice pipeline, a worker, a
Slack bot) give their runner ``session=SwitchboardSession(thread_id, store, principal)``:
what the agent and the user say goes into the ChatKit thread as ChatKit items
(so the web chat, the console and the audit see the same conversation), and a
thread that began in ChatKit is the agent's history.

It talks to the thread store's gRPC API through ``GrpcThreadStore`` and acts for
one authenticated user: give the store the user's token
(``credentials=BearerCredentials(token)``) or a service token acting for them;
another user's thread is ``NotFoundError``, as everywhere.

Decisions (the mapping between the SDK's input items and ChatKit items):

- A user message with text only becomes a ``user_message``; an assistant message
  with text only an ``assistant_message``: both are what people read. They come
  back in the simple form ``{"role": ..., "content": "<text>"}`` that every model
  API accepts (output ids are not replayed: a Responses API server would look
  them up).
- Every other item (tool calls and their outputs, reasoning, images, system or
  developer messages) is kept exactly, in a ``hidden_context_item`` the chat does
  not show, and comes back as it was added.
- ChatKit items with no agent-input meaning (tasks, widgets, workflows, the
  runner's own hidden context) are left out of ``get_items`` and are never
  popped or cleared; ``clear_session`` deletes only what ``get_items`` returns.
- The thread is created on the first ``add_items`` when it does not exist (its
  title: the first user message).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from agents.memory.session_settings import SessionSettings, resolve_session_limit
from chatkit.store import NotFoundError
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    HiddenContextItem,
    InferenceOptions,
    ThreadItem,
    ThreadMetadata,
    UserMessageItem,
    UserMessageTextContent,
)

from services.thread_store.client import GrpcThreadStore
from switchboard.principal import Principal

AGENTS_ITEM_KEY = "agents_item"
PAGE = 100
TITLE_CHARS = 60


def _text_only(content: Any, kind: str) -> str | None:
    """The text of a message's content when it is text only (a string or ``kind`` parts), else None."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content and all(isinstance(p, dict) and p.get("type") == kind for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    return None


def _to_chatkit(item: Any, thread_id: str, item_id: str, at: datetime) -> ThreadItem:
    """One SDK input item as the ChatKit item that keeps it."""
    if isinstance(item, dict) and item.get("type", "message") == "message":
        role = item.get("role")
        if role == "user" and (text := _text_only(item.get("content"), "input_text")) is not None:
            return UserMessageItem(
                id=item_id,
                thread_id=thread_id,
                created_at=at,
                content=[UserMessageTextContent(text=text)],
                attachments=[],
                inference_options=InferenceOptions(),
            )
        if role == "assistant" and (text := _text_only(item.get("content"), "output_text")) is not None:
            return AssistantMessageItem(
                id=item_id,
                thread_id=thread_id,
                created_at=at,
                content=[AssistantMessageContent(text=text, annotations=[])],
            )
    return HiddenContextItem(id=item_id, thread_id=thread_id, created_at=at, content={AGENTS_ITEM_KEY: item})


def _to_agents(item: ThreadItem) -> Any | None:
    """A ChatKit item as SDK input, or None when it means nothing to a model."""
    if isinstance(item, UserMessageItem):
        text = "".join(c.text for c in item.content if isinstance(c, UserMessageTextContent))
        return {"role": "user", "content": text}
    if isinstance(item, AssistantMessageItem):
        return {"role": "assistant", "content": "".join(c.text for c in item.content)}
    if isinstance(item, HiddenContextItem) and isinstance(item.content, dict) and AGENTS_ITEM_KEY in item.content:
        return item.content[AGENTS_ITEM_KEY]
    return None


class SwitchboardSession:
    """Agent memory in a Switchboard thread (the SDK's ``Session`` protocol).

    Args:
        session_id: The thread's id (created on the first ``add_items`` if missing).
        store: The thread store client, with the user's credentials.
        principal: The user the session acts for.
        session_settings: The SDK's settings (``limit``: the default of ``get_items``).
    """

    def __init__(
        self,
        session_id: str,
        store: GrpcThreadStore,
        principal: Principal,
        *,
        session_settings: SessionSettings | None = None,
    ) -> None:
        self.session_id = session_id
        self.session_settings = session_settings
        self._store = store
        self._principal = principal
        self._lock = asyncio.Lock()

    async def _newest_first(self) -> list[tuple[ThreadItem, Any]]:
        """Every item with an agent meaning, newest first, with its SDK form."""
        found: list[tuple[ThreadItem, Any]] = []
        after: str | None = None
        while True:
            try:
                page = await self._store.load_thread_items(
                    self.session_id, after, PAGE, "desc", self._principal, strict=True
                )
            except NotFoundError:
                return []
            for item in page.data:
                converted = _to_agents(item)
                if converted is not None:
                    found.append((item, converted))
            if not page.has_more or not page.data:
                return found
            after = page.data[-1].id

    async def get_items(self, limit: int | None = None) -> list[Any]:
        """The history, oldest first; with ``limit``, the latest ``limit`` items."""
        wanted = resolve_session_limit(limit, self.session_settings)
        newest = await self._newest_first()
        if wanted is not None and wanted >= 0:
            newest = newest[:wanted]
        return [converted for _item, converted in reversed(newest)]

    async def add_items(self, items: list[Any]) -> None:
        """Append items to the thread, in order (creating the thread on first use)."""
        if not items:
            return
        async with self._lock:
            try:
                await self._store.load_thread(self.session_id, self._principal)
            except NotFoundError:
                await self._store.save_thread(self._new_thread(items), self._principal)
            newest = await self._store.load_thread_items(self.session_id, None, 1, "desc", self._principal)
            start = datetime.now(UTC)
            if newest.data and newest.data[0].created_at >= start:
                start = newest.data[0].created_at + timedelta(microseconds=1)
            for offset, item in enumerate(items):
                at = start + timedelta(microseconds=offset)
                item_id = f"msg_{uuid.uuid4().hex}"
                chatkit_item = _to_chatkit(item, self.session_id, item_id, at)
                await self._store.add_thread_item(self.session_id, chatkit_item, self._principal)

    def _new_thread(self, items: list[Any]) -> ThreadMetadata:
        now = datetime.now(UTC)
        texts = (_to_chatkit(i, self.session_id, "first", now) for i in items)
        first = next((i for i in texts if isinstance(i, UserMessageItem)), None)
        title = None
        if first is not None:
            text = " ".join(c.text for c in first.content if isinstance(c, UserMessageTextContent))
            title = " ".join(text.split())[:TITLE_CHARS] or None
        return ThreadMetadata(id=self.session_id, created_at=datetime.now(UTC), title=title)

    async def pop_item(self) -> Any | None:
        """Remove and return the newest item (None when there is none)."""
        async with self._lock:
            newest = await self._newest_first()
            if not newest:
                return None
            item, converted = newest[0]
            await self._store.delete_thread_item(self.session_id, item.id, self._principal)
            return converted

    async def clear_session(self) -> None:
        """Delete every item ``get_items`` would return (the thread itself stays)."""
        async with self._lock:
            for item, _converted in await self._newest_first():
                await self._store.delete_thread_item(self.session_id, item.id, self._principal)
