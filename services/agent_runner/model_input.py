"""What the model reads: thread items as Agents SDK input, attachments included.

ChatKit's ``ThreadItemConverter`` leaves attachments to the integration and
replays an assistant message in a shape only the Responses API takes (its
``output_text`` parts in an input message, which the Agents SDK's Chat
Completions converter refuses). ``RunInputConverter`` fills both gaps, for one
run:

- An assistant message is replayed as plain text (``{"role": "assistant",
  "content": "..."}``), which both the Responses API and Chat Completions take.
- An image attachment becomes image input, a ``data:`` URL of its stored bytes
  (never the edge's preview URL: the model server cannot reach it, and it
  needs the user's token), when the model takes images and the bytes really are
  a PNG, JPEG, GIF or WebP image.
- A text-like attachment (``text/*``, JSON, XML, YAML, CSV, source code) is
  inlined up to ``inline_bytes``, cut at a character boundary, with a note when
  it was cut.
- Any other attachment, an image the model cannot take, bytes that are missing
  (never uploaded, deleted, imported without them) or unreadable, becomes a
  note naming the file and its type. An attachment never fails a turn.

Every attachment starts with a text part beginning with ``ATTACHMENT_MARK``, so
the offline model (and a reader of a request) can tell attachments from what
the user typed.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from typing import Any

from agents.items import TResponseInputItem
from chatkit.agents import ThreadItemConverter
from chatkit.store import NotFoundError
from chatkit.types import (
    AssistantMessageItem,
    Attachment,
    HiddenContextItem,
    ImageAttachment,
    ThreadItem,
    UserMessageTagContent,
)
from openai.types.responses import ResponseInputContentParam

from services.thread_store.client import GrpcThreadStore
from switchboard.errors import SwitchboardError
from switchboard.principal import Principal

log = logging.getLogger(__name__)

ATTACHMENT_MARK = "[Attachment"
# How a tag (an @-mention, or the source of a message another service posted) reaches the model.
TAG_MARK = "[Tag @"
DEFAULT_INLINE_BYTES = 32 * 1024
# What the Responses API and Chat Completions take as image input (by the bytes' signature).
_IMAGE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
_TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/xml",
        "application/yaml",
        "application/x-yaml",
        "application/toml",
        "application/csv",
        "application/javascript",
        "application/x-javascript",
        "application/typescript",
        "application/x-sh",
        "application/x-python",
        "application/x-python-code",
        "application/sql",
        "application/x-ndjson",
        "application/ld+json",
        "application/markdown",
    }
)


def media_type(mime_type: str) -> tuple[str, dict[str, str]]:
    """A MIME type as ``type/subtype`` (lower case) and its parameters; anything odd is ``''``."""
    head, *params = mime_type.split(";")
    kind = head.strip().lower()
    if kind.count("/") != 1 or any(c.isspace() for c in kind):
        kind = ""
    parsed: dict[str, str] = {}
    for param in params:
        name, _, value = param.partition("=")
        parsed[name.strip().lower()] = value.strip().strip('"')
    return kind, parsed


def is_text_like(kind: str) -> bool:
    """Whether a media type is text a model can read inline."""
    return kind.startswith("text/") or kind in _TEXT_TYPES or kind.endswith(("+json", "+xml", "+yaml"))


def image_type(content: bytes) -> str | None:
    """The media type of image bytes a model takes (by signature), or None."""
    for signature, kind in _IMAGE_SIGNATURES:
        if content.startswith(signature):
            return kind
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    return None


def describe(attachment: Attachment, size: int | None) -> str:
    """The attachment's header line: ``[Attachment “name”, type, N bytes]``."""
    kind = attachment.mime_type.strip()[:100] or "unknown type"
    sized = f", {size} bytes" if size is not None else ""
    name = " ".join(attachment.name.split())[:200] or attachment.id
    return f"{ATTACHMENT_MARK} “{name}”, {kind}{sized}]"


def _text(text: str) -> ResponseInputContentParam:
    return {"type": "input_text", "text": text}


def inline_text(content: bytes, charset: str | None, limit: int) -> tuple[str, bool]:
    """Up to ``limit`` bytes of a text file as text (undecodable bytes replaced); whether it was cut."""
    cut = len(content) > limit
    head = content[:limit]
    try:
        text = head.decode(charset or "utf-8", errors="replace")
    except LookupError:  # an unknown charset parameter
        text = head.decode("utf-8", errors="replace")
    if cut and text.endswith("\ufffd"):
        text = text.rstrip("\ufffd")  # a character split by the cut
    return text.replace("\x00", ""), cut


class RunInputConverter(ThreadItemConverter):
    """Thread items to model input for one run (see the module docstring).

    Args:
        store: The thread store (attachment bytes).
        principal: Whose attachments (the thread's owner, as the run acts).
        images: Whether the model takes image input.
        inline_bytes: How much of a text-like attachment is inlined.
    """

    def __init__(
        self, store: GrpcThreadStore, principal: Principal, *, images: bool, inline_bytes: int = DEFAULT_INLINE_BYTES
    ) -> None:
        self._store = store
        self._principal = principal
        self._images = images
        self._inline_bytes = max(0, inline_bytes)
        self._loaded: dict[str, tuple[Attachment, bytes | None]] = {}

    async def item_to_input(self, item: ThreadItem, *, is_last_message: bool) -> list[TResponseInputItem]:
        """One item's input items (the history budget counts each item on its own)."""
        # ChatKit's per-item dispatch: to_agent_input is this over a list.
        return await self._thread_item_to_input_item(item, is_last_message=is_last_message)

    async def attachment_to_message_content(self, attachment: Attachment) -> ResponseInputContentParam:
        """Unused: ``user_message_to_input`` calls ``attachment_parts`` (an attachment may take two parts)."""
        parts = await self.attachment_parts(attachment)
        return parts[-1]

    async def attachment_parts(self, attachment: Attachment) -> list[ResponseInputContentParam]:
        """An attachment as content parts: its header, then its content or a note."""
        content = await self._content(attachment)
        header = describe(attachment, len(content) if content is not None else None)
        if content is None:
            return [_text(f"{header} Its content is not available (it was never uploaded, or was removed).")]
        kind, params = media_type(attachment.mime_type)
        if isinstance(attachment, ImageAttachment) or kind.startswith("image/"):
            sniffed = image_type(content)
            if sniffed is None:
                if kind.endswith(("+xml", "+json")):  # an SVG is text
                    return self._inlined(header, content, params.get("charset"))
                return [_text(f"{header} This is not an image the model can read (PNG, JPEG, GIF or WebP).")]
            if not self._images:
                return [_text(f"{header} An image; this model cannot see images, so tell the user if it matters.")]
            url = f"data:{sniffed};base64,{base64.b64encode(content).decode('ascii')}"
            return [_text(header), {"type": "input_image", "image_url": url, "detail": "auto"}]
        if is_text_like(kind):
            return self._inlined(header, content, params.get("charset"))
        return [_text(f"{header} A file of a type the model cannot read; only its name and type are known.")]

    def _inlined(self, header: str, content: bytes, charset: str | None) -> list[ResponseInputContentParam]:
        text, cut = inline_text(content, charset, self._inline_bytes)
        note = f"\n[Only the first {self._inline_bytes} of its {len(content)} bytes are shown.]" if cut else ""
        return [_text(f"{header}\n{text}{note}")]

    async def _content(self, attachment: Attachment) -> bytes | None:
        if attachment.id not in self._loaded:
            try:
                self._loaded[attachment.id] = await self._store.load_attachment_content(attachment.id, self._principal)
            except (NotFoundError, SwitchboardError) as error:
                log.info("attachment %s is not readable for the model (%s)", attachment.id, error)
                self._loaded[attachment.id] = (attachment, None)
        return self._loaded[attachment.id][1]

    async def user_message_to_input(self, item: Any, is_last_message: bool = True) -> Any:
        """ChatKit's conversion, with each attachment's parts (an image is a header and the image)."""
        without = item.model_copy(update={"attachments": []})
        converted = await super().user_message_to_input(without, is_last_message)
        out: list[Any] = converted if isinstance(converted, list) else [converted] if converted else []
        if item.attachments and out:
            parts = [part for attachment in item.attachments for part in await self.attachment_parts(attachment)]
            out[0] = {**out[0], "content": [*out[0]["content"], *parts]}
        return out

    async def tag_to_message_content(self, tag: UserMessageTagContent) -> ResponseInputContentParam:
        """An @-mention: its text and data, as context."""
        data = json.dumps(tag.data, ensure_ascii=False, default=str)[:2000]
        return _text(f"{TAG_MARK}{tag.text}] {data}")

    async def assistant_message_to_input(self, item: AssistantMessageItem) -> TResponseInputItem | None:
        """Plain text, which both the Responses API and Chat Completions take as an assistant turn."""
        text = "".join(part.text for part in item.content)
        return {"type": "message", "role": "assistant", "content": text}

    async def hidden_context_to_input(self, item: HiddenContextItem) -> TResponseInputItem | list[TResponseInputItem]:
        """Hidden context; content that is not text (an imported thread's) as its JSON."""
        if not isinstance(item.content, str):
            item = item.model_copy(update={"content": json.dumps(item.content, ensure_ascii=False, default=str)})
        converted = await super().hidden_context_to_input(item)
        return converted or []


TokenCounter = Callable[[str], int]
# What an image costs in the history budget: about a high-detail 1024x1024 image on OpenAI's models.
IMAGE_TOKENS = 1000
MESSAGE_OVERHEAD_TOKENS = 4


def estimate_tokens(text: str) -> int:
    """About four characters a token: what English text averages on OpenAI's tokenizers."""
    return (len(text) + 3) // 4


def token_counter(model: str | None) -> tuple[TokenCounter, str]:
    """How text is counted for ``model`` (``openai:<name>``): its tokenizer when ``tiktoken`` is
    installed and knows the model, else ``estimate_tokens``; and which one it is."""
    name = (model or "").removeprefix("openai:")
    try:
        import tiktoken  # type: ignore[import-not-found,unused-ignore]

        encoding = tiktoken.encoding_for_model(name)
    except Exception:  # not installed, or a model it does not know (compatible servers' models)
        return estimate_tokens, "estimate"

    def count(text: str) -> int:
        return len(encoding.encode(text, disallowed_special=()))

    return count, f"tiktoken:{encoding.name}"


def input_tokens(items: list[TResponseInputItem], count: TokenCounter) -> int:
    """What input items cost: their text, ``IMAGE_TOKENS`` per image, a little per message."""
    total = 0
    for item in items:
        total += MESSAGE_OVERHEAD_TOKENS
        content = item.get("content") if isinstance(item, dict) else None
        if isinstance(content, str):
            total += count(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "input_image":
                    total += IMAGE_TOKENS
                elif isinstance(part, dict):
                    total += count(str(part.get("text") or ""))
        else:
            # Tool calls and their outputs: what they carry, as JSON.
            total += count(json.dumps(item, default=str))
    return total
