"""``threads import``: the whole file is checked before any of it is written, and a bad line is named."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import uuid
from pathlib import Path

import pytest
from chatkit.types import FileAttachment

from services.thread_store import transfer
from services.thread_store.domain import EncodedItems
from services.thread_store.service import StoreLimits, ThreadStoreService
from services.thread_store.transfer import import_user
from switchboard.errors import InvalidArgument, NotFound
from switchboard.principal import Principal
from tests.thread_store.conftest import RunningThreadStore
from tests.thread_store.helpers import Ctx, assistant_message, new_thread, times, user_message

CREATED = "2026-01-01T00:00:00Z"


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def thread_line(thread_id: str, *, scope: str | None = None, **fields: object) -> str:
    thread = {"id": thread_id, "created_at": CREATED, "status": {"type": "active"}, "metadata": {}, **fields}
    return json.dumps({"kind": "thread", "scope": scope, "thread": thread})


def item_line(thread_id: str, text: str, *, at_second: int = 0, item_id: str | None = None) -> str:
    item = user_message(thread_id, text, at=times(at_second + 1)[-1], item_id=item_id)
    return json.dumps({"kind": "item", "thread_id": thread_id, "item": item.model_dump(mode="json")})


def attachment_line(attachment_id: str, thread_id: str | None, content: bytes | None) -> str:
    attachment = FileAttachment(id=attachment_id, name="notes.txt", mime_type="text/plain", thread_id=thread_id)
    encoded = base64.b64encode(content).decode() if content is not None else None
    return json.dumps(
        {"kind": "attachment", "attachment": attachment.model_dump(mode="json"), "content_base64": encoded}
    )


async def holdings(service: ThreadStoreService, principal: Principal) -> tuple[int, int, int]:
    """The user's threads, items and attachments, counted through the service."""
    threads = await service.list_threads(
        principal, limit=200, after=None, order="asc", sort="created_at", scope=None, org_wide=False
    )
    items = 0
    for thread in threads.items:
        page = await service.list_items(principal, thread.id, after=None, limit=1000, order="asc")
        items += len(page.blobs) if isinstance(page, EncodedItems) else len(page.items)
    attachments = await service.repository.list_user_attachments(user_id=principal.user_id)
    return len(threads.items), items, len(attachments)


def good_file() -> tuple[list[str], str]:
    """A thread with two messages and an attachment with its bytes; and the thread id."""
    thread_id = _id("thr")
    return [
        thread_line(thread_id, scope="case-9", title="moved"),
        item_line(thread_id, "first", at_second=0),
        item_line(thread_id, "second", at_second=1),
        attachment_line(_id("atc"), thread_id, b"hello bytes"),
    ], thread_id


async def test_a_file_whose_last_line_is_bad_writes_nothing(thread_store: RunningThreadStore, user_id: str) -> None:
    service = thread_store.service
    principal = Principal.create(user_id=user_id)
    await import_user(service, principal, good_file()[0])  # the user already has a thread: it must stay as it is
    before = await holdings(service, principal)
    lines, thread_id = good_file()
    lines += [item_line(thread_id, f"m{i}", at_second=i + 2) for i in range(50)]
    lines.append('{"kind": "item", "thread_id": "thr_x", "item": {"id": "msg_1"')  # cut short
    with pytest.raises(InvalidArgument, match=rf"^line {len(lines)}: not valid JSON"):
        await import_user(service, principal, lines)
    assert await holdings(service, principal) == before == (1, 2, 1)


BAD_LINES: list[tuple[str, str, str]] = [
    ("json", "{oops", "not valid JSON"),
    ("not an object", "[1, 2]", "must be a JSON object"),
    ("kind", '{"kind": "folder"}', "kind must be one of 'thread', 'item', 'attachment', not 'folder'"),
    ("no kind", '{"thread": {}}', "kind must be one of"),
    ("no thread", '{"kind": "thread"}', "thread must be a JSON object"),
    ("thread id", thread_line(""), "thread.id must be a non-empty string"),
    ("long id", thread_line("t" * 300), "thread.id is longer than 255 characters"),
    ("scope", thread_line("thr_scope", scope=7), "scope must be a string or null"),  # type: ignore[arg-type]
    ("too early", thread_line("thr_early", created_at="1899-12-31T23:59:59Z"), "outside the years 1900-9000"),
    ("too late", thread_line("thr_late", created_at="9000-01-02T00:00:00+00:00"), "outside the years 1900-9000"),
    ("not a time", thread_line("thr_when", created_at="yesterday"), "thread.created_at 'yesterday' is not an ISO"),
    ("NaN", thread_line("thr_nan").replace('"metadata": {}', '"metadata": {"x": NaN}'), "NaN is not a JSON number"),
    ("huge number", thread_line("thr_inf").replace('"metadata": {}', '"metadata": {"x": 1e999}'), "too large"),
    ("NUL", item_line("THREAD", "a\u0000b"), "NUL character"),
    ("surrogate", item_line("THREAD", "x").replace('"text": "x"', '"text": "\\ud800"'), "unpaired UTF-16 surrogate"),
    ("depth", '{"kind": "thread", "thread": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    ("item thread id", '{"kind": "item", "item": {}}', "thread_id must be a string"),
    (
        "unknown thread",
        item_line("thr_nowhere_to_be_found", "hi"),
        "neither a thread line above it nor one of the user",
    ),
    (
        "other thread",
        item_line("thr_other", "hi").replace('"thread_id": "thr_other"', '"thread_id": "THREAD"', 1),
        "item.thread_id must be the thread written to",
    ),
    ("item size", item_line("THREAD", "x" * (1024 * 1024)), "the limit is 1048576"),
    (
        "no name",
        attachment_line("atc_a", None, None).replace('"name": "notes.txt"', '"name": ""'),
        "attachment.name must be a non-empty string",
    ),
    ("base64", attachment_line("atc_b", None, b"x").replace('"eA=="', '"e!A=="'), "content_base64 is not valid base64"),
    (
        "base64 type",
        attachment_line("atc_c", None, None).replace('"content_base64": null', '"content_base64": 5'),
        "content_base64 must be a base64 string or null",
    ),
]


@pytest.mark.parametrize(
    ("bad", "expected"), [(line, what) for _, line, what in BAD_LINES], ids=[c[0] for c in BAD_LINES]
)
async def test_each_kind_of_bad_line_is_named_by_its_number_and_nothing_is_written(
    thread_store: RunningThreadStore, user_id: str, bad: str, expected: str
) -> None:
    thread_id = _id("thr")
    lines = [thread_line(thread_id), "", bad.replace("THREAD", thread_id), item_line(thread_id, "after")]
    principal = Principal.create(user_id=user_id)
    with pytest.raises(InvalidArgument) as refused:
        await import_user(thread_store.service, principal, lines)
    assert refused.value.message.startswith("line 3: "), refused.value.message
    assert expected in refused.value.message
    assert await holdings(thread_store.service, principal) == (0, 0, 0)


async def test_an_item_before_its_thread_line_is_refused(thread_store: RunningThreadStore, user_id: str) -> None:
    thread_id = _id("thr")
    principal = Principal.create(user_id=user_id)
    with pytest.raises(InvalidArgument, match=r"^line 1: .*neither a thread line above it"):
        await import_user(thread_store.service, principal, [item_line(thread_id, "early"), thread_line(thread_id)])
    assert await holdings(thread_store.service, principal) == (0, 0, 0)


async def test_an_attachment_past_the_size_limit_is_refused_before_anything_is_written(
    thread_store: RunningThreadStore, user_id: str
) -> None:
    small = ThreadStoreService(thread_store.service.repository, None, None, StoreLimits(max_attachment_bytes=10))
    principal = Principal.create(user_id=user_id)
    thread_id = _id("thr")
    for content, expected in ((b"x" * 11, "is 11 bytes; the limit is 10"), (b"x" * 600, "larger than the limit of 10")):
        lines = [thread_line(thread_id), attachment_line(_id("atc"), thread_id, content)]
        with pytest.raises(InvalidArgument, match=rf"^line 2: .*{expected}"):
            await import_user(small, principal, lines)
    assert await holdings(thread_store.service, principal) == (0, 0, 0)


async def test_a_good_file_imports_and_importing_it_twice_is_harmless(
    thread_store: RunningThreadStore, user_id: str
) -> None:
    service = thread_store.service
    principal = Principal.create(user_id=user_id)
    lines, thread_id = good_file()
    attachment_id = json.loads(lines[3])["attachment"]["id"]
    lines.append(attachment_line(_id("atc"), None, None))  # metadata only, no bytes

    first = await import_user(service, principal, lines)
    assert (first.threads, first.items, first.attachments) == (1, 2, 2)
    ctx = Ctx(user_id=user_id)
    stored = await thread_store.store.load_thread_items(thread_id, None, 10, "asc", ctx)
    assert [item.content[0].text for item in stored.data] == ["first", "second"]  # type: ignore[union-attr]
    scoped = await thread_store.store.load_threads_page(limit=5, after=None, order="desc", context=ctx, scope="case-9")
    assert [(t.id, t.title) for t in scoped.data] == [(thread_id, "moved")]
    attachment = await service.load_attachment(principal, attachment_id, include_content=True)
    assert attachment.content == b"hello bytes" and attachment.thread_id == thread_id

    second = await import_user(service, principal, lines)
    assert second == first
    assert await holdings(service, principal) == (1, 2, 2)
    again = await thread_store.store.load_thread_items(thread_id, None, 10, "asc", ctx)
    assert again.data == stored.data


async def test_items_may_go_into_a_thread_the_user_already_has(thread_store: RunningThreadStore, user_id: str) -> None:
    thread = new_thread()
    await thread_store.store.save_thread(thread, Ctx(user_id=user_id))
    principal = Principal.create(user_id=user_id)
    counts = await import_user(thread_store.service, principal, [item_line(thread.id, "later", at_second=3)])
    assert counts.items == 1
    assert await holdings(thread_store.service, principal) == (1, 1, 0)


async def test_an_item_over_an_operators_reply_is_refused_before_anything_is_written(
    thread_store: RunningThreadStore, user_id: str, unique_org: str
) -> None:
    thread = new_thread()
    await thread_store.store.save_thread(thread, Ctx(user_id=user_id, org_id=unique_org))
    operator = Principal.create(user_id="op-" + user_id, org_id=unique_org, roles=("operator",))
    await thread_store.service.set_handler(operator, thread.id, "human")  # takes the conversation over
    reply = assistant_message(thread.id, "an operator's words", at=times(1)[0])
    await thread_store.service.save_item(operator, thread.id, reply.model_dump_json().encode())
    principal = Principal.create(user_id=user_id, org_id=unique_org)
    lines = [item_line(thread.id, "fine", at_second=2), item_line(thread.id, "forged", item_id=reply.id)]
    with pytest.raises(InvalidArgument, match=r"^line 2: .*written by another author"):
        await import_user(thread_store.service, principal, lines)
    assert await holdings(thread_store.service, principal) == (1, 1, 0)  # only the operator's reply


async def test_a_thread_id_another_user_holds_is_refused_with_its_line(
    thread_store: RunningThreadStore, user_id: str
) -> None:
    taken = new_thread()
    await thread_store.store.save_thread(taken, Ctx(user_id="someone-else-" + user_id))
    principal = Principal.create(user_id=user_id)
    with pytest.raises(NotFound, match=r"^line 1: thread .* not found"):
        await import_user(thread_store.service, principal, [thread_line(taken.id), item_line(taken.id, "hi")])
    assert await holdings(thread_store.service, principal) == (0, 0, 0)


async def test_a_long_import_reports_its_progress(
    thread_store: RunningThreadStore, user_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transfer, "PROGRESS_EVERY", 2)
    lines, _ = good_file()
    told: list[tuple[str, int]] = []
    await import_user(
        thread_store.service, Principal.create(user_id=user_id), lines, progress=lambda *p: told.append(p)
    )
    assert told == [("checked", 2), ("checked", 4), ("written", 2), ("written", 4)]


async def _cli(database_url: str, redis_url: str, *args: str) -> tuple[int, str]:
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "SWITCHBOARD_LOG_LEVEL": "WARNING"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchboard.cli", "threads", "import", *args,
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_the_import_command_names_the_bad_line_exits_non_zero_and_writes_nothing(
    thread_store: RunningThreadStore, database_url: str, redis_url: str, user_id: str, tmp_path: Path
) -> None:
    principal = Principal.create(user_id=user_id)
    lines, _ = good_file()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([*lines, thread_line("thr_old", created_at="1850-01-01T00:00:00Z")]) + "\n")
    code, stderr = await _cli(database_url, redis_url, "--user", user_id, "--file", str(bad))
    assert code == 2, stderr
    assert "switchboard threads: line 5: thread.created_at '1850-01-01T00:00:00Z' is outside the years" in stderr
    assert await holdings(thread_store.service, principal) == (0, 0, 0)

    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(lines) + "\n")
    code, stderr = await _cli(database_url, redis_url, "--user", user_id, "--file", str(good))
    assert code == 0, stderr
    assert f"imported 1 thread(s), 2 item(s), 1 attachment(s) as user {user_id!r}" in stderr
    assert await holdings(thread_store.service, principal) == (1, 2, 1)

    code, stderr = await _cli(database_url, redis_url, "--user", user_id, "--file", str(tmp_path / "missing.jsonl"))
    assert code == 2 and "cannot read" in stderr and "No such file" in stderr
