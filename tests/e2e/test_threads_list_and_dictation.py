"""ChatKit's ``threads.list`` (scoped, most recent first) and ``input.transcribe`` through the edge.

Dictation goes to a fake OpenAI-compatible server this test runs on localhost
(``POST /v1/audio/transcriptions``): no network, no key.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from tests.e2e.conftest import (
    EVENTS,
    EdgeReplica,
    Stack,
    add_message_request,
    bearer,
    create_request,
    new_user,
    start_edge,
    stream_events,
)

AUDIO = b"\x1aE\xdf\xa3 not really webm, but bytes the fake server echoes back"


@dataclass
class Transcription:
    """One request the fake server received: its path, headers and form fields."""

    path: str
    authorization: str | None
    fields: dict[str, bytes]
    filenames: dict[str, str | None]
    content_types: dict[str, str]


@dataclass
class FakeSpeechServer:
    """An OpenAI-compatible ``/v1/audio/transcriptions`` on localhost.

    It answers ``{"text": ...}`` with the size of the audio it received, or the
    ``status`` and ``error`` it is told to.
    """

    url: str = ""
    received: list[Transcription] = field(default_factory=list)
    status: int = 200
    error: str = ""
    _httpd: ThreadingHTTPServer | None = None

    def start(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                message = BytesParser(policy=HTTP).parsebytes(
                    b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body
                )
                fields: dict[str, bytes] = {}
                filenames: dict[str, str | None] = {}
                types: dict[str, str] = {}
                for part in message.iter_parts():
                    name = part.get_param("name", header="content-disposition")
                    assert isinstance(name, str)
                    payload = part.get_payload(decode=True)
                    fields[name] = payload if isinstance(payload, bytes) else b""
                    filenames[name] = part.get_filename()
                    types[name] = part.get_content_type()
                server.received.append(
                    Transcription(self.path, self.headers.get("Authorization"), fields, filenames, types)
                )
                if self.path != "/v1/audio/transcriptions":
                    self._answer(404, {"error": {"message": "no such route"}})
                elif server.status != 200:
                    self._answer(server.status, {"error": {"message": server.error, "type": "invalid_request_error"}})
                else:
                    self._answer(200, {"text": f"  heard {len(fields.get('file', b''))} bytes  "})

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture(scope="module")
def speech() -> Iterator[FakeSpeechServer]:
    server = FakeSpeechServer()
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def dictating_edge(stack: Stack, speech: FakeSpeechServer) -> Iterator[EdgeReplica]:
    """An edge whose model is the fake server (``OPENAI_BASE_URL``), listing threads by creation."""
    replica = start_edge(
        stack,
        free_port(),
        OPENAI_BASE_URL=speech.url,
        SWITCHBOARD_TRANSCRIBE_MODEL="whisper-test",
        SWITCHBOARD_THREADS_ORDER="created",
        SWITCHBOARD_TRANSCRIBE_MAX_BYTES="524288",
    )
    yield replica
    replica.process.terminate()
    replica.process.wait(timeout=30)


def _list(params: dict[str, Any] | None = None, **metadata: Any) -> dict[str, Any]:
    return {"type": "threads.list", "params": params or {"limit": 50}, "metadata": metadata}


def _dictation(audio: bytes = AUDIO, mime_type: str = "audio/webm;codecs=opus") -> dict[str, Any]:
    return {
        "type": "input.transcribe",
        "params": {"audio_base64": base64.b64encode(audio).decode(), "mime_type": mime_type},
    }


async def _create(http: httpx.AsyncClient, token: str, text: str, scope: str | None = None) -> str:
    """A new thread (in ``scope``, from ``X-Switchboard-Scope``), once its answer has ended."""
    headers = {**bearer(token), **({"X-Switchboard-Scope": scope} if scope else {})}
    thread_id = ""
    async with http.stream("POST", "/chatkit", content=create_request(text), headers=headers) as reply:
        assert reply.status_code == 200
        async for line in reply.aiter_lines():
            if line.startswith("data: ") and not thread_id:
                event = EVENTS.validate_json(line[len("data: ") :])
                assert event.type == "thread.created"
                thread_id = event.thread.id
    return thread_id


async def _listed(http: httpx.AsyncClient, token: str, body: dict[str, Any], **headers: str) -> list[str]:
    reply = await http.post("/chatkit", json=body, headers={**bearer(token), **headers})
    assert reply.status_code == 200, reply.text
    return [t["id"] for t in reply.json()["data"]]


async def test_threads_list_shows_one_scope_most_recent_activity_first(stack: Stack, http: httpx.AsyncClient) -> None:
    user = new_user()
    token = stack.token(user)
    opportunity, case = f"opp-{uuid.uuid4().hex[:6]}", f"case-{uuid.uuid4().hex[:6]}"
    first = await _create(http, token, "first about the opportunity", opportunity)
    second = await _create(http, token, "second about the opportunity", opportunity)
    other = await _create(http, token, "about the case", case)
    unscoped = await _create(http, token, "about nothing in particular")
    # The first thread is used again: it becomes the most recent.
    await stream_events(http, token, add_message_request(first, "back again"))

    assert await _listed(http, token, _list(), **{"X-Switchboard-Scope": opportunity}) == [first, second]
    assert await _listed(http, token, _list(scope=opportunity)) == [first, second]
    assert await _listed(http, token, _list(scope=case)) == [other]
    assert await _listed(http, token, _list()) == [first, unscoped, other, second]
    # Oldest activity first, and pages that follow the same order.
    page = await http.post(
        "/chatkit", json=_list({"limit": 1, "order": "asc"}, scope=opportunity), headers=bearer(token)
    )
    assert [t["id"] for t in page.json()["data"]] == [second] and page.json()["has_more"] is True
    rest = _list({"limit": 5, "order": "asc", "after": page.json()["after"]}, scope=opportunity)
    assert await _listed(http, token, rest) == [first]
    # The REST listing is the same listing.
    conversations = await http.get(f"/api/conversations?scope={opportunity}", headers=bearer(token))
    assert [c["id"] for c in conversations.json()["data"]] == [first, second]
    # Another user sees none of it, scope or not.
    stranger = stack.token(new_user())
    assert await _listed(http, stranger, _list(scope=opportunity)) == []


@pytest.mark.parametrize(
    ("metadata", "headers", "message"),
    [
        ({"scope": 7}, {}, "metadata.scope must be 1 to 200 printable characters"),
        ({"scope": ""}, {}, "metadata.scope must be 1 to 200 printable characters"),
        ({"scope": "x" * 201}, {}, "metadata.scope must be 1 to 200 printable characters"),
        ({"scope": "a\nb"}, {}, "metadata.scope must be 1 to 200 printable characters"),
        ({"scope": "one"}, {"X-Switchboard-Scope": "two"}, "name different scopes"),
    ],
)
async def test_a_bad_listing_scope_is_a_400(
    stack: Stack, http: httpx.AsyncClient, metadata: dict[str, Any], headers: dict[str, str], message: str
) -> None:
    reply = await http.post("/chatkit", json=_list(**metadata), headers={**bearer(stack.token(new_user())), **headers})
    assert reply.status_code == 400 and message in reply.json()["error"]["message"]


async def test_threads_list_by_creation_when_configured(stack: Stack, dictating_edge: EdgeReplica) -> None:
    token = stack.token(new_user())
    async with httpx.AsyncClient(base_url=dictating_edge.url, timeout=30) as http:
        older = await _create(http, token, "older")
        newer = await _create(http, token, "newer")
        await stream_events(http, token, add_message_request(older, "more"))
        # SWITCHBOARD_THREADS_ORDER=created: activity does not reorder the list.
        assert await _listed(http, token, _list()) == [newer, older]


async def test_dictation_is_transcribed_by_the_configured_server(
    stack: Stack, dictating_edge: EdgeReplica, speech: FakeSpeechServer
) -> None:
    token = stack.token(new_user())
    before = len(speech.received)
    async with httpx.AsyncClient(base_url=dictating_edge.url, timeout=30) as http:
        reply = await http.post("/chatkit", json=_dictation(), headers=bearer(token))
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"text": f"heard {len(AUDIO)} bytes"}
    [request] = speech.received[before:]
    assert request.path == "/v1/audio/transcriptions"
    assert request.fields["model"] == b"whisper-test"
    assert request.fields["file"] == AUDIO
    assert request.filenames["file"] == "dictation.webm" and request.content_types["file"] == "audio/webm"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (_dictation(mime_type="video/webm"), 400, "is not audio dictation accepts"),
        (_dictation(mime_type="text/html"), 400, "is not audio dictation accepts"),
        (_dictation(audio=b""), 400, "audio_base64 is empty"),
        (
            {"type": "input.transcribe", "params": {"audio_base64": "not base64!", "mime_type": "audio/webm"}},
            400,
            "",
        ),
        (_dictation(audio=b"x" * 700_000), 413, "dictation takes at most 524288"),
    ],
    ids=["video", "html", "empty", "bad-base64", "too-large"],
)
async def test_bad_dictation_is_a_clear_4xx_and_never_reaches_the_server(
    stack: Stack,
    dictating_edge: EdgeReplica,
    speech: FakeSpeechServer,
    body: dict[str, Any],
    status: int,
    message: str,
) -> None:
    before = len(speech.received)
    async with httpx.AsyncClient(base_url=dictating_edge.url, timeout=30) as http:
        reply = await http.post("/chatkit", json=body, headers=bearer(stack.token(new_user())))
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["message"] and message in reply.json()["error"]["message"]
    assert len(speech.received) == before


async def test_audio_the_server_cannot_read_is_a_400_with_its_reason(
    stack: Stack, dictating_edge: EdgeReplica, speech: FakeSpeechServer
) -> None:
    speech.status, speech.error = 400, "Audio file might be corrupted or unsupported"
    try:
        async with httpx.AsyncClient(base_url=dictating_edge.url, timeout=30) as http:
            reply = await http.post("/chatkit", json=_dictation(), headers=bearer(stack.token(new_user())))
    finally:
        speech.status, speech.error = 200, ""
    assert reply.status_code == 400
    assert "could not be transcribed: Audio file might be corrupted" in reply.json()["error"]["message"]


async def test_without_a_model_dictation_is_a_400_saying_it_is_not_configured(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    reply = await http.post("/chatkit", json=_dictation(), headers=bearer(stack.token(new_user())))
    assert reply.status_code == 400
    assert "dictation (input.transcribe) is not configured" in reply.json()["error"]["message"]
