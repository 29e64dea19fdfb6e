"""Builders of ChatKit objects for the thread store tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    InferenceOptions,
    ThreadMetadata,
    UserMessageItem,
    UserMessageTextContent,
)

BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Ctx:
    """A ChatKit request context: what the edge passes to the Store."""

    user_id: str
    org_id: str | None = None
    roles: tuple[str, ...] = field(default_factory=tuple)
    scope: str | None = None
    session_id: str | None = None


def new_thread(*, title: str | None = None, at: datetime | None = None, **metadata: object) -> ThreadMetadata:
    """A thread with a fresh id."""
    return ThreadMetadata(
        id=f"thr_{uuid.uuid4().hex[:12]}", title=title, created_at=at or datetime.now(UTC), metadata=dict(metadata)
    )


def user_message(thread_id: str, text: str, *, at: datetime, item_id: str | None = None) -> UserMessageItem:
    """A user message item."""
    return UserMessageItem(
        id=item_id or f"msg_{uuid.uuid4().hex[:12]}",
        thread_id=thread_id,
        created_at=at,
        content=[UserMessageTextContent(text=text)],
        inference_options=InferenceOptions(),
    )


def assistant_message(thread_id: str, text: str, *, at: datetime, item_id: str | None = None) -> AssistantMessageItem:
    """An assistant message item."""
    return AssistantMessageItem(
        id=item_id or f"msg_{uuid.uuid4().hex[:12]}",
        thread_id=thread_id,
        created_at=at,
        content=[AssistantMessageContent(text=text)],
    )


def times(n: int, *, start: datetime = BASE_TIME) -> list[datetime]:
    """``n`` distinct increasing times."""
    return [start + timedelta(seconds=i) for i in range(n)]
