"""Attachments through the edge reach the model: an image, a text file, an unknown type, an odd
MIME type, bytes that are not the image they claim, bytes never uploaded. None breaks the thread,
and neither does exporting and importing it."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.e2e.conftest import (
    Stack,
    add_message_request,
    assistant_text,
    bearer,
    create_request,
    new_user,
    post_json,
    runner_behind_edge,
    stream_events,
    upload_attachment,
)
from tests.fake_openai import fake_openai

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
# (name, MIME type, bytes or None for never uploaded)
KINDS: list[tuple[str, str, bytes | None]] = [
    ("dot.png", "image/png", PNG),
    ("notes.txt", "text/plain", b"TEXT-INSIDE-42 and more"),
    ("data.bin", "application/x-weird-thing", b"\x00\x01\x02binary"),
    ("odd.txt", "text/plain; charset=klingon", b"ODD-CHARSET-TEXT"),
    ("fake.png", "image/png", b"this is not a png"),
    ("ghost.pdf", "application/pdf", None),
]


async def _upload_all(http: httpx.AsyncClient, token: str) -> list[str]:
    return [await upload_attachment(http, token, name, mime, content) for name, mime, content in KINDS]


def _threads_command(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATABASE_URL=stack.database_url, REDIS_URL=stack.redis_url)
    return subprocess.run(
        [sys.executable, "-m", "switchboard.cli", "threads", *args],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_every_kind_of_attachment_is_acknowledged_and_the_thread_goes_on_after_export_and_import(
    stack: Stack, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    user = new_user()
    token = stack.token(user)
    thread_id = ""
    for (name, _mime, _content), attachment_id in zip(KINDS, await _upload_all(http, token), strict=True):
        text = f"here is {name}"
        body = (
            create_request(text, [attachment_id])
            if not thread_id
            else add_message_request(thread_id, text, [attachment_id])
        )
        events = await stream_events(http, token, body)
        thread_id = thread_id or events[0].thread.id  # type: ignore[union-attr]
        assert not [e for e in events if e.type == "error"], events
        answer = assistant_text(events)
        assert f"I received 1 attachment: “{name}”" in answer, answer  # the offline model acknowledges it
    # Every later message still works while the attachments are in the history.
    events = await stream_events(http, token, add_message_request(thread_id, "list tasks"))
    assert not [e for e in events if e.type == "error"]
    assert "no open tasks" in assistant_text(events)

    exported = tmp_path / "threads.jsonl"
    done = _threads_command(stack, "export", "--user", user, "--file", str(exported))
    assert done.returncode == 0, done.stderr
    assert (
        "TEXT-INSIDE-42"
        in base64.b64decode(
            next(
                record["content_base64"]
                for record in map(json.loads, exported.read_text().splitlines())
                if record["kind"] == "attachment" and record["attachment"]["name"] == "notes.txt"
            )
        ).decode()
    )
    delete = {"type": "threads.delete", "params": {"thread_id": thread_id}}
    assert (await post_json(http, token, json.dumps(delete).encode())).status_code == 200
    done = _threads_command(stack, "import", "--user", user, "--org", "e2e", "--file", str(exported))
    assert done.returncode == 0, done.stderr
    events = await stream_events(http, token, add_message_request(thread_id, "list tasks"))
    assert not [e for e in events if e.type == "error"], events
    assert "no open tasks" in assistant_text(events)  # the imported thread, its attachments in the history
    listed = {"type": "items.list", "params": {"thread_id": thread_id, "order": "asc", "limit": 50}}
    items = (await post_json(http, token, json.dumps(listed).encode())).json()["data"]
    restored = {a["name"]: a["id"] for i in items if i["type"] == "user_message" for a in i["attachments"]}
    assert sorted(restored) == sorted(name for name, _mime, _content in KINDS)
    download = await http.get(f"/chatkit/attachments/{restored['notes.txt']}", headers=bearer(token))
    assert download.content == b"TEXT-INSIDE-42 and more"


async def test_the_model_reads_each_kind_as_it_can_and_a_note_where_it_cannot(stack: Stack) -> None:
    with (
        fake_openai() as fake,
        runner_behind_edge(
            stack, OPENAI_BASE_URL=fake.url, OPENAI_API_KEY="fake", SWITCHBOARD_MODEL="openai:fake-model"
        ) as edge,
    ):
        token = stack.token(new_user())
        async with httpx.AsyncClient(base_url=edge.url, timeout=30) as http:
            ids = await _upload_all(http, token)
            events = await stream_events(http, token, create_request("all of them", ids))
            thread_id = events[0].thread.id  # type: ignore[union-attr]
            assert assistant_text(events) == "Echo: all of them (1 images)"
            events = await stream_events(http, token, add_message_request(thread_id, "and now?"))
            assert assistant_text(events) == "Echo: and now?"
    user_turn = fake.answered("chat")[-1].body["messages"]
    first = next(m for m in user_turn if m["role"] == "user" and "all of them" in json.dumps(m))
    parts = first["content"]
    texts = [p.get("text", "") for p in parts if p["type"] == "text"]
    images = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert images == ["data:image/png;base64," + base64.b64encode(PNG).decode()]
    joined = "\n".join(texts)
    assert "“notes.txt”, text/plain, 23 bytes]\nTEXT-INSIDE-42 and more" in joined  # inlined
    assert "“data.bin”, application/x-weird-thing, 9 bytes] A file of a type the model cannot read" in joined
    assert "ODD-CHARSET-TEXT" in joined  # an unknown charset is read as UTF-8
    assert "“fake.png”, image/png, 17 bytes] This is not an image the model can read" in joined
    assert "“ghost.pdf”, application/pdf] Its content is not available" in joined
