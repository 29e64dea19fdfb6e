"""An OpenAI-compatible model server (a fake one, on localhost) behind a runner and an edge: ten
turns in one thread over Chat Completions and over the Responses API, tools in several, a hand-off
to Billing that sticks and a hand-back, an image and a text file in the history."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    Stack,
    add_message_request,
    assistant_text,
    create_request,
    new_user,
    runner_behind_edge,
    stream_events,
    upload_attachment,
)
from tests.fake_openai import FakeRequest, fake_openai

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
NOTES = b"NOTES-CONTENT-4711: the meeting moved to Thursday."

TURNS: list[tuple[str, str | None]] = [
    ("hello, here is a picture", "image"),
    ("add buy milk", None),
    ("here are my notes", "text"),
    ("list my tasks", None),
    ("I have a billing question", None),
    ("what is my invoice total?", None),
    ("add pay the invoice", None),
    ("back to triage please", None),
    ("list again", None),
    ("thanks, bye", None),
]


def _messages(request: FakeRequest) -> list[dict[str, Any]]:
    """The conversation a request carries (Chat Completions messages or Responses input items)."""
    if request.api == "chat":
        return list(request.body["messages"])
    return list(request.body["input"])


def _system(request: FakeRequest) -> str:
    if request.api == "chat":
        return str(request.body["messages"][0]["content"])
    return str(request.body.get("instructions") or "")


@pytest.mark.parametrize("api", ["chat_completions", "responses"])
async def test_ten_turns_with_tools_attachments_and_a_sticky_handoff_are_all_answered(stack: Stack, api: str) -> None:
    wire = "chat" if api == "chat_completions" else "responses"
    with (
        fake_openai() as fake,
        runner_behind_edge(
            stack,
            OPENAI_BASE_URL=fake.url,
            OPENAI_API_KEY="fake",
            SWITCHBOARD_MODEL="openai:fake-model",
            SWITCHBOARD_MODEL_API=api,
        ) as edge,
    ):
        token = stack.token(new_user())
        async with httpx.AsyncClient(base_url=edge.url, timeout=30) as http:
            thread_id = ""
            answers: list[str] = []
            progress: list[list[str]] = []
            titles: list[str | None] = []
            for text, attach in TURNS:
                ids: list[str] = []
                if attach == "image":
                    ids = [await upload_attachment(http, token, "dot.png", "image/png", PNG)]
                elif attach == "text":
                    ids = [await upload_attachment(http, token, "notes.txt", "text/plain", NOTES)]
                body = create_request(text, ids) if not thread_id else add_message_request(thread_id, text, ids)
                events = await stream_events(http, token, body)
                if not thread_id:
                    thread_id = events[0].thread.id  # type: ignore[union-attr]
                errors = [e for e in events if e.type == "error"]
                assert not errors, (text, errors)
                answers.append(assistant_text(events))
                titles.extend(e.thread.title for e in events if e.type == "thread.updated")  # type: ignore[union-attr]
                progress.append([e.text for e in events if e.type == "progress_update"])  # type: ignore[union-attr]
    assert all(answers), answers  # every turn answered
    # The first turn's title came from the title agent (cleaned of its quotes, label and full stop).
    assert titles and titles[-1] == "Fake hello, here is", titles
    assert sum("You name conversations" in r.text for r in fake.requests) == 1  # asked once, for the first turn
    assert answers[0] == "Echo: hello, here is a picture (1 images)"
    assert answers[1].startswith("Tool result:") and "buy milk" in answers[1]
    assert answers[3].startswith("Tool result:") and "buy milk" in answers[3]
    assert "Billing is answering" in progress[5] and "Billing is answering" in progress[6]  # sticky, and shown
    assert not any("answering" in p for p in progress[8])  # handed back to Triage
    turns = fake.answered(wire)
    assert len(turns) >= 15  # ten turns, and a second call after each tool call or hand-off
    # Who answered turn 6: Billing, without a new hand-off.
    sixth = next(r for r in turns if "what is my invoice total?" in json.dumps(_messages(r)[-1]))
    assert "invoices, payments" in _system(sixth)
    last = turns[-1]
    sent = json.dumps(_messages(last))
    assert "data:image/png;base64," + base64.b64encode(PNG).decode() in sent  # the image, from the stored bytes
    assert "NOTES-CONTENT-4711" in sent  # the text file, inlined
    for text, _attach in TURNS:
        assert text in sent  # every turn is in the history
    assert "Echo: hello, here is a picture (1 images)" in sent  # earlier answers replayed
    assert "add_task done" in sent  # tool calls of earlier turns, as the user saw them
    assistant_turns = [m for m in _messages(last) if m.get("role") == "assistant"]
    assert assistant_turns and all(isinstance(m.get("content"), (str, type(None))) for m in assistant_turns)
    # Within a run, tool calls and their results went back to the model in the API's own shape.
    if wire == "chat":
        assert any(m.get("role") == "tool" for r in turns for m in _messages(r))
        assert any(m.get("tool_calls") for r in turns for m in _messages(r))
    else:
        assert any(m.get("type") == "function_call_output" for r in turns for m in _messages(r))
        assert any(m.get("type") == "function_call" for r in turns for m in _messages(r))
