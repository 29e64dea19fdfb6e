"""Domain types of the thread store and the validation of ChatKit JSON.

ChatKit objects stay the SDK's JSON (bytes) all the way from the client to
Postgres and Redis: the store reads only the fields it indexes (id, type,
thread id, creation time, title, status) and never re-encodes the rest.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from switchboard.errors import InvalidArgument, ResourceExhausted
from switchboard.principal import MAX_ID_LENGTH
from switchboard.streams import WATCH_STARTED

T = TypeVar("T")
Order = Literal["asc", "desc"]
ThreadSortKey = Literal["created_at", "recent_activity"]
HandlerKind = Literal["agent", "waiting", "human"]
HANDLER_KINDS: tuple[HandlerKind, ...] = ("agent", "waiting", "human")
# The item type a turn starts with, and the only one a retry may follow.
USER_MESSAGE_TYPE = "user_message"
# Keys of a thread's ChatKit metadata that only the store writes: readers get the
# thread's handler there (``client.handler_of``), and a client-supplied one is dropped.
HANDLER_METADATA_KEY = "handler"


@dataclass(frozen=True, slots=True)
class Handler:
    """Who answers a thread: the agent, nobody yet (``waiting`` for a person) or a person (``human``).

    Attributes:
        kind: ``agent``, ``waiting`` or ``human``.
        operator_id: ``human``: the operator holding the thread.
        escalation_id: The escalation of the hand-off; kept when a wait runs out.
        since: When the kind last changed (None: never).
        until: ``waiting``: when the thread goes back to the agent.
    """

    kind: HandlerKind = "agent"
    operator_id: str | None = None
    escalation_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def to_json(self) -> dict[str, str | None]:
        """A plain JSON object (times as ISO 8601 strings)."""
        return {
            "kind": self.kind,
            "operator_id": self.operator_id,
            "escalation_id": self.escalation_id,
            "since": self.since.isoformat() if self.since is not None else None,
            "until": self.until.isoformat() if self.until is not None else None,
        }

    @classmethod
    def from_json(cls, value: object) -> Handler:
        """Inverse of ``to_json``; anything that is not a handler object is the agent."""
        if not isinstance(value, dict) or value.get("kind") not in HANDLER_KINDS:
            return cls()
        obj: dict[str, Any] = value

        def text(key: str) -> str | None:
            field = obj.get(key)
            return field if isinstance(field, str) and field else None

        def moment(key: str) -> datetime | None:
            field = text(key)
            try:
                return datetime.fromisoformat(field) if field is not None else None
            except ValueError:
                return None

        return cls(
            kind=obj["kind"],
            operator_id=text("operator_id"),
            escalation_id=text("escalation_id"),
            since=moment("since"),
            until=moment("until"),
        )


AGENT = Handler()


@dataclass(frozen=True, slots=True)
class HandlerChange:
    """A hand-off change decided by the service, written by the repository (which times it)."""

    kind: HandlerKind
    operator_id: str | None = None
    escalation_id: str | None = None
    waiting_seconds: int = 0


@dataclass(frozen=True, slots=True)
class ThreadRecord:
    """A stored thread: its indexed fields and its ChatKit JSON."""

    id: str
    user_id: str
    org_id: str | None
    scope: str | None
    title: str | None
    status: str
    json: bytes
    created_at: datetime
    updated_at: datetime
    revision: int
    handler: Handler = AGENT


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """A stored thread item: its indexed fields, its ChatKit JSON and who wrote it.

    ``author`` is the thread owner's user id for the user's and the agent's
    items, and the operator's for the replies of an operator holding the thread.
    """

    id: str
    thread_id: str
    type: str
    json: bytes
    created_at: datetime
    author: str


@dataclass(frozen=True, slots=True)
class StoredItems:
    """A page of stored items as a client receives them, unparsed: for readers that pass the JSON on.

    ``version``: the thread's version the page reflects, set only for pages read
    from the hot cache (see ``EncodedItems``); empty, the page cannot be revalidated.
    """

    items: list[ItemRecord]
    has_more: bool
    after: str | None
    version: str = ""


@dataclass(frozen=True, slots=True)
class AttachmentRecord:
    """Stored attachment metadata, and its bytes when they were asked for."""

    id: str
    thread_id: str | None
    mime_type: str
    json: bytes
    created_at: datetime
    has_content: bool
    content: bytes | None = None


@dataclass(frozen=True, slots=True)
class EncodedItems:
    """A page of items straight from the cache, each already in the API's wire form.

    The hot path hands these bytes to the transport without decoding them.
    ``version`` is the thread's version the page reflects (see
    ``ThreadCache.page_items``); ``not_modified``: the caller's page of that
    version is current, and nothing else is sent.
    """

    blobs: list[bytes]
    has_more: bool
    after: str | None
    version: str = ""
    not_modified: bool = False


@dataclass(frozen=True, slots=True)
class TurnWrites:
    """What one ``BeginTurn`` transaction changed, in revision order.

    ``created`` is the thread as inserted (its first revision) when the turn
    created it. Each later change took the next revision: every deleted item in
    listing order, then the saved message, then the thread's metadata (title,
    session). ``thread`` is the thread after the last change.
    """

    thread: ThreadRecord
    created: ThreadRecord | None
    deleted_item_ids: list[str]
    message: ItemRecord | None
    message_created: bool
    thread_updated: bool

    @property
    def revisions(self) -> int:
        """How many revisions the changes after the creation took."""
        return len(self.deleted_item_ids) + (self.message is not None) + self.thread_updated


@dataclass(frozen=True, slots=True)
class TurnStart:
    """What ``BeginTurn`` returns: the thread after the turn's writes and its newest items, oldest first.

    From the cache the items come already encoded for the transport (``EncodedItems``).
    """

    thread: ThreadRecord
    items: list[ItemRecord] | EncodedItems


@dataclass(frozen=True, slots=True)
class ParsedThread:
    """The fields the store reads from a ChatKit ``ThreadMetadata``."""

    id: str
    title: str | None
    status: str
    scope: str | None
    created_at: datetime
    json: bytes


@dataclass(frozen=True, slots=True)
class ParsedItem:
    """The fields the store reads from a ChatKit ``ThreadItem``."""

    id: str
    thread_id: str
    type: str
    created_at: datetime
    json: bytes


@dataclass(frozen=True, slots=True)
class ParsedAttachment:
    """The fields the store reads from a ChatKit ``Attachment``."""

    id: str
    thread_id: str | None
    mime_type: str
    json: bytes


def check_id(value: str, what: str) -> str:
    """Validate an id from outside."""
    if not value:
        raise InvalidArgument(f"{what} is empty")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgument(f"{what} is longer than {MAX_ID_LENGTH} characters")
    if "\x00" in value:
        raise InvalidArgument(f"{what} contains a NUL character")
    return value


def parse_datetime(value: Any, what: str) -> datetime:
    """Parse an ISO 8601 time from ChatKit JSON; a time without zone is UTC."""
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        parsed = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument(f"{what} {value[:40]!r} is not an ISO 8601 time") from None
    if not EARLIEST_TIME <= parsed <= LATEST_TIME:
        # Postgres would store 9999-12-31T23:59:59.999999 as infinity, which no reader can use.
        raise InvalidArgument(f"{what} {value[:40]!r} is outside the years {EARLIEST_TIME.year}-{LATEST_TIME.year}")
    return parsed


# A \uD800-\uDFFF escape: half of a surrogate pair, which Postgres refuses alone.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


EARLIEST_TIME = datetime(1900, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(9000, 1, 1, tzinfo=UTC)


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number (Postgres jsonb refuses it)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]}... is too large to store")
    return value


def _load_object(raw: bytes, what: str, max_bytes: int) -> dict[str, Any]:
    if len(raw) > max_bytes:
        raise ResourceExhausted(f"{what} is {len(raw)} bytes; the limit is {max_bytes}")
    if not raw:
        raise InvalidArgument(f"{what} is empty")
    try:
        value = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidArgument(f"{what} is not valid JSON: {error}") from None
    except RecursionError:
        raise InvalidArgument(f"{what} is nested too deeply") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} must be a JSON object")
    if "\\u0000" in raw.decode("utf-8", errors="replace"):
        raise InvalidArgument(f"{what} contains a NUL character, which Postgres cannot store")
    # Valid pairs (emoji) are common; walk the value only when an escape is there.
    if _SURROGATE_ESCAPE.search(raw) and _has_lone_surrogate(value):
        raise InvalidArgument(f"{what} contains an unpaired UTF-16 surrogate escape, which Postgres cannot store")
    return value


def _string_field(obj: dict[str, Any], key: str, what: str, *, required: bool = True) -> str | None:
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{what}.{key} must be a non-empty string")
    return value


def parse_thread_json(raw: bytes, *, max_bytes: int) -> ParsedThread:
    """Validate ChatKit ``ThreadMetadata`` JSON and read its indexed fields."""
    obj = _load_object(raw, "thread_json", max_bytes)
    thread_id = check_id(_string_field(obj, "id", "thread_json") or "", "thread_json.id")
    title = obj.get("title")
    if title is not None and not isinstance(title, str):
        raise InvalidArgument("thread_json.title must be a string or null")
    status = obj.get("status") or {"type": "active"}
    if not isinstance(status, dict) or not isinstance(status.get("type"), str):
        raise InvalidArgument('thread_json.status must be an object like {"type": "active"}')
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise InvalidArgument("thread_json.metadata must be an object")
    scope = metadata.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise InvalidArgument("thread_json.metadata.scope must be a string")
    if HANDLER_METADATA_KEY in metadata:
        # Server-owned: readers see the stored handler there, and nobody forges it.
        # Only this rare case re-encodes the client's JSON.
        obj["metadata"] = {k: v for k, v in metadata.items() if k != HANDLER_METADATA_KEY}
        raw = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    return ParsedThread(
        id=thread_id,
        title=title,
        status=status["type"],
        scope=scope or None,
        created_at=parse_datetime(obj.get("created_at"), "thread_json.created_at"),
        json=raw,
    )


def with_turn_metadata(
    raw: bytes, *, title_if_empty: str | None, session_id: str | None, max_bytes: int
) -> ParsedThread | None:
    """A thread's JSON titled when it has no title and carrying ``metadata.session_id``.

    Returns:
        The changed thread, validated like ``parse_thread_json``, or None when
        it already has a title (or none was given) and that session id.
    """
    if not title_if_empty and not session_id:
        return None
    obj = json.loads(raw)
    changed = False
    if title_if_empty and not obj.get("title"):
        obj["title"] = title_if_empty
        changed = True
    if session_id:
        metadata = obj.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        if metadata.get("session_id") != session_id:
            obj["metadata"] = {**metadata, "session_id": session_id}
            changed = True
    if not changed:
        return None
    return parse_thread_json(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode(), max_bytes=max_bytes)


def parse_item_json(raw: bytes, *, thread_id: str, max_bytes: int, adopt: bool = False) -> ParsedItem:
    """Validate ChatKit ``ThreadItem`` JSON for ``thread_id`` and read its indexed fields.

    Args:
        raw: The item's JSON.
        thread_id: The thread it is written to.
        max_bytes: The largest item accepted.
        adopt: An item whose ``thread_id`` names another thread is stored as an
            item of ``thread_id``, its ``thread_id`` rewritten (the ChatKit
            ``Store`` writes: the SDK's reference store files an item under the
            thread it is added to, whatever the item says, and so does this
            store; rewriting the field keeps every reader's view of the item
            consistent with where it is stored). Without it the mismatch is
            refused (an import file must agree with itself).
    """
    obj = _load_object(raw, "item_json", max_bytes)
    item_id = check_id(_string_field(obj, "id", "item_json") or "", "item_json.id")
    item_type = _string_field(obj, "type", "item_json") or ""
    if obj.get("thread_id") != thread_id:
        if not adopt:
            raise InvalidArgument(f"item_json.thread_id must be the thread written to ({thread_id!r})")
        # Rare: only this case re-encodes the client's JSON.
        obj["thread_id"] = thread_id
        raw = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    return ParsedItem(
        id=item_id,
        thread_id=thread_id,
        type=item_type,
        created_at=parse_datetime(obj.get("created_at"), "item_json.created_at"),
        json=raw,
    )


def parse_attachment_json(raw: bytes, *, max_bytes: int) -> ParsedAttachment:
    """Validate ChatKit ``Attachment`` JSON and read its indexed fields."""
    obj = _load_object(raw, "attachment_json", max_bytes)
    attachment_id = check_id(_string_field(obj, "id", "attachment_json") or "", "attachment_json.id")
    mime_type = _string_field(obj, "mime_type", "attachment_json") or ""
    _string_field(obj, "name", "attachment_json")
    thread_id = _string_field(obj, "thread_id", "attachment_json", required=False)
    return ParsedAttachment(id=attachment_id, thread_id=thread_id, mime_type=mime_type, json=raw)


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One change to a thread or item, or (type ``watch.started``) the start of a watch."""

    id: str
    type: str
    thread_id: str
    item_id: str
    user_id: str
    org_id: str | None
    revision: int
    at: datetime
    json: bytes

    @classmethod
    def started(cls, event_id: str) -> ChangeEvent:
        """The first event of a watch: live from here; ``event_id`` is where to resume."""
        return cls(
            id=event_id,
            type=WATCH_STARTED,
            thread_id="",
            item_id="",
            user_id="",
            org_id=None,
            revision=0,
            at=datetime.now(UTC),
            json=b"",
        )
